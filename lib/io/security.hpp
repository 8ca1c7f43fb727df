// The runtime's envelope around the core's bytes: a cluster label,
// compression and authenticated encryption with a keyring. The core never
// sees any of it; it produces and consumes plaintext packets and stream
// bodies, and the runtime seals what it sends and opens what it receives (UDP
// packets and both TCP frames, request and reply).
//
// Outer format (only when a label, a key or compression is in use):
//
//   +------+-------+===================+==========================================+
//   | 0x01 | flags | label (if bit1)   | nonce (24) + ciphertext (if bit0)         |
//   +------+-------+===================+==========================================+
//                    1 byte length,      or, without bit0, the body itself
//                    then that many bytes
//
//   flags: bit0 encrypted, bit1 labeled, bit2 compressed; the other bits
//   must be 0.
//   body: the core's packet, or with bit2 its raw deflate stream
//   (io/compress.hpp). Compression runs first and encryption seals its
//   output: ciphertext would not compress.
//
// A plain, unlabeled, uncompressed packet is the core's packet unchanged, so
// plain clusters interoperate with older nodes. Core packets start with 0x53
// ('S'), the outer format with 0x01: the first byte tells them apart.
//
// Compression is used only when it makes the packet smaller (it is tried on
// packets of at least min_compress_size bytes), and every node opens
// compressed packets whatever its own setting, so nodes with compression on
// and off mix freely. Opening inflates at most the caller's bound (the
// largest packet or frame it accepts): a stream that would inflate beyond it
// (a zip bomb), or that is not valid raw deflate, is dropped
// (decompress_failed). Compressing before encrypting lets an observer learn
// how compressible a packet was from its length; a user whose own payloads
// mix secrets with attacker-chosen bytes should turn compression off
// (node_config::compression).
//
// Cipher: XChaCha20-Poly1305-IETF (libsodium crypto_aead_xchacha20poly1305_ietf),
// with the outer header (version, flags, label) as additional data, so the
// label and the flags cannot be swapped. Its 192-bit nonce is drawn at
// random for every packet: random nonces that long never collide in
// practice, so no counter has to be kept, persisted or coordinated between
// restarts and keys (with a 96-bit nonce, random nonces would be unsafe after
// ~2^32 messages per key).
//
// Keys are 32 bytes. The keyring's primary key seals; every installed key
// opens, primary first, so a key can be rotated under traffic: install the
// new key on every node, then make it primary on every node, then remove the
// old one everywhere. Key bytes are never logged.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include <shoal/core.hpp>

namespace shoal::io {

inline constexpr std::uint8_t outer_version = 0x01;
inline constexpr std::uint8_t flag_encrypted = 0x01;
inline constexpr std::uint8_t flag_labeled = 0x02;
inline constexpr std::uint8_t flag_compressed = 0x04;
inline constexpr std::size_t key_size = 32;
inline constexpr std::size_t nonce_size = 24;
inline constexpr std::size_t tag_size = 16;
inline constexpr std::size_t max_label_size = 255;

using key_bytes = std::array<std::uint8_t, key_size>;

/// Keys that open packets; the first (primary) also seals. Not thread-safe:
/// the runtime swaps immutable copies.
class keyring {
 public:
  keyring() = default;
  /// `keys` in order, duplicates dropped; the first is primary.
  explicit keyring(const std::vector<key_bytes>& keys);

  bool empty() const { return keys_.empty(); }
  std::size_t size() const { return keys_.size(); }
  /// Adds a key (no-op when installed). The first key installed is primary.
  void install(const key_bytes& k);
  /// Makes an installed key primary; false when it is not installed.
  bool use(const key_bytes& k);
  /// Removes a key; false when it is the primary or not installed.
  bool remove(const key_bytes& k);
  /// The keys, primary first.
  const std::vector<key_bytes>& list() const { return keys_; }
  /// The primary key (nullptr when empty).
  const key_bytes* primary() const { return keys_.empty() ? nullptr : &keys_.front(); }

 private:
  std::vector<key_bytes> keys_;
};

/// Bytes added by seal() for `label` (0 for a plain cluster).
std::size_t seal_overhead(std::string_view label, const keyring& keys, bool compressed = false);

/// The packet to send: `body` unchanged when `label` is empty, `keys` has
/// none and it is not compressed; otherwise the outer format, encrypted with
/// the primary key if there is one. `compressed` says that `body` is the raw
/// deflate of the core's packet. `label` must be at most max_label_size bytes.
bytes seal(std::span<const std::uint8_t> body, std::string_view label, const keyring& keys,
           bool compressed = false);

enum class open_status : std::uint8_t {
  ok,
  label_mismatch,      ///< another label, or a label missing or unexpected
  decrypt_failed,      ///< no installed key opens it (or its outer header is malformed)
  plaintext_rejected,  ///< unencrypted while a keyring is set and plaintext is not accepted
  decompress_failed,   ///< compressed, but not valid raw deflate or inflating past the bound
};

const char* to_string(open_status s);

struct open_result {
  open_status status = open_status::ok;
  bytes plain;              ///< the core's bytes when status is ok
  bool compressed = false;  ///< they arrived compressed
};

/// The largest UDP datagram: the bound on an inflated packet.
inline constexpr std::size_t max_datagram_size = 65536;

/// Opens a received packet under this node's label and keyring; a
/// compressed body inflates to at most `max_plain` bytes.
open_result open_packet(std::span<const std::uint8_t> data, std::string_view label,
                        const keyring& keys, bool accept_plaintext,
                        std::size_t max_plain = max_datagram_size);

/// open_packet() when only the bytes matter: nullopt for anything not ok.
std::optional<bytes> open(std::span<const std::uint8_t> data, std::string_view label,
                          const keyring& keys, bool accept_plaintext = false,
                          std::size_t max_plain = max_datagram_size);

}  // namespace shoal::io
