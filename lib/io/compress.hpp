// Compression for the runtime's envelope (io/security.hpp sets the flag):
// raw deflate (RFC 1951, no zlib or gzip wrapper) through zlib.
//
// Why deflate: the packets are small (a UDP packet is at most
// udp_buffer_size, 1400 bytes on a LAN) and full of repeated short strings
// (names, tag keys, addresses); deflate's Huffman coding and 32 KiB window do
// well on both, it is in every Debian system already (zlib1g), and a raw
// stream costs no header or checksum bytes (the envelope has its own length,
// and encryption authenticates the bytes). LZ4 would be faster but gains
// little on packets this size; zstd needs a dictionary to shine on them.
//
// Why in lib/io and not lib/wire: compression must run before encryption
// (ciphertext does not compress), and both belong to the envelope the
// runtime puts around the core's bytes. The core and the simulator never
// pay for it, and shoal::core does not link zlib.
//
// Contexts are expensive to create (hundreds of KB), cheap to reset; a
// process-wide pool lends them out for one call at a time, so their number
// follows the threads compressing at once, not the number of nodes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include <shoal/core.hpp>

namespace shoal::io {

/// Packets shorter than this are never compressed: deflate cannot win back
/// its own framing on them (pings and acks are 20 to 60 bytes).
inline constexpr std::size_t min_compress_size = 96;

/// The raw deflate form of `in` when it is shorter than `below` bytes;
/// nullopt when it is not (compression stops as soon as the output reaches
/// `below`, so incompressible input costs at most one pass).
std::optional<bytes> deflate_below(std::span<const std::uint8_t> in, std::size_t below);

/// Inflates one complete raw deflate stream. nullopt when `in` is not one
/// (corrupt, truncated, or followed by trailing bytes) or when it would
/// inflate to more than `max_out` bytes: the output never grows past
/// `max_out`, so a zip bomb costs at most that much memory and the time to
/// produce it.
std::optional<bytes> inflate_bounded(std::span<const std::uint8_t> in, std::size_t max_out);

}  // namespace shoal::io
