// Stream framing: every message on a TCP connection is a 4-byte big-endian
// length followed by that many bytes.
//
//   +--------+--------+--------+--------+=========================+
//   |        length (u32, big-endian)   |  length bytes (a packet) |
//   +--------+--------+--------+--------+=========================+
//
// A connection carries one request and one reply. The length is bounded by
// config::max_push_pull_bytes on both sides; a responder with nothing to say
// closes the connection without writing a frame.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace shoal::io {

inline constexpr std::size_t frame_header_size = 4;
using frame_header = std::array<std::uint8_t, frame_header_size>;

inline frame_header encode_frame_header(std::uint32_t length) {
  return {static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
          static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)};
}

inline std::uint32_t decode_frame_header(const frame_header& h) {
  return (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) | (std::uint32_t{h[2]} << 8) |
         std::uint32_t{h[3]};
}

}  // namespace shoal::io
