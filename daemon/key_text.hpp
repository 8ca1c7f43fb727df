// Encryption keys as text: the base64 that keyring files, the `keys` command
// and `shoalctl keygen` use, and new random keys. libsodium does the work;
// shoald and shoalctl both use these (no second copy).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <shoal/node.hpp>

namespace shoal::daemon {

/// Standard base64 (RFC 4648 alphabet `+/`) with `=` padding: 44 characters.
std::string base64_encode(const encryption_key& key);

/// A key from its base64. Accepted, as shoald always has: the 43 characters of
/// 32 bytes in the standard alphabet, followed by any number of `=` (none
/// included), the unused low bits of the last character not checked.
/// Refused (nullopt): any other character (whitespace, line ends, the URL-safe
/// `-_`, `=` before the end), and any other length.
std::optional<encryption_key> base64_decode_key(std::string_view text);

/// A new key from the system's random source; nullopt when libsodium cannot
/// be initialised.
std::optional<encryption_key> random_key();

}  // namespace shoal::daemon
