// The receive path of one UDP datagram or TCP frame, up to the point where
// the protocol acts on it, as one call:
//
//   label -> decrypt -> decompress (open_packet, io/security.hpp)
//         -> wire decode (wire::decode_packet, wire/codec.hpp)
//
// The runtime runs the same steps split in two (runtime::open_in, then
// core::handle_packet or handle_stream, which decode); this function puts
// them together for fuzz targets and tests, so every decoder of untrusted
// bytes can be reached from one entry point. Never throws on any input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <system_error>
#include <vector>

#include "io/security.hpp"
#include "wire/codec.hpp"

namespace shoal::io {

struct inbound_result {
  open_status status = open_status::ok;  ///< the envelope's verdict
  bool compressed = false;               ///< the body arrived compressed
  std::error_code decode_error;          ///< the codec's verdict, when status is ok
  std::vector<wire::message> messages;   ///< when both are ok
  wire::decode_counters counters;        ///< what the codec counted
};

/// Opens `data` under `label` and `keys` (plaintext accepted or not, a
/// compressed body inflated to at most `max_plain` bytes), then decodes the
/// core's packet under `lim`.
inbound_result decode_inbound(std::span<const std::uint8_t> data, std::string_view label,
                              const keyring& keys, bool accept_plaintext, std::size_t max_plain,
                              const wire::limits& lim);

}  // namespace shoal::io
