// The 4-byte length prefix in front of every message on shoal's byte streams:
// the TCP push-pull streams between nodes (lib/io) and the Unix socket between
// shoald and its clients (daemon/PROTOCOL.md).
//
//   +--------+--------+--------+--------+==========================+
//   |       length (u32, big-endian)    |  length bytes of payload |
//   +--------+--------+--------+--------+==========================+
//
// Only the prefix is shared: what a frame holds, which lengths are allowed
// (0, a maximum) and what happens to a stream after a bad length are each
// stream's own rules, checked by its reader.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace shoal {

/// Bytes of the length prefix.
inline constexpr std::size_t frame_header_size = 4;

/// A length prefix as it travels.
using frame_header = std::array<std::uint8_t, frame_header_size>;

/// The prefix announcing a payload of `length` bytes (most significant byte first).
constexpr frame_header encode_frame_header(std::uint32_t length) noexcept {
  return {static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
          static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)};
}

/// The payload length a prefix announces. Any value decodes: bounding it is
/// the reader's job.
constexpr std::uint32_t decode_frame_header(
    std::span<const std::uint8_t, frame_header_size> h) noexcept {
  return (std::uint32_t{h[0]} << 24) | (std::uint32_t{h[1]} << 16) | (std::uint32_t{h[2]} << 8) |
         std::uint32_t{h[3]};
}

}  // namespace shoal
