// Seeds as the user writes them: "host:port", "1.2.3.4:port", "[v6]:port",
// a bare IPv6 literal, or a host alone (then the default port applies).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shoal::io {

struct seed_spec {
  std::string host;  ///< a DNS name or a numeric address, without brackets
  std::uint16_t port = 0;
};

/// nullopt when the text is empty, the brackets do not match or the port is
/// not a number in 1..65535.
std::optional<seed_spec> parse_seed(std::string_view text, std::uint16_t default_port);

}  // namespace shoal::io
