// shoal's wire format: bytes <-> messages. Never throws; bad bytes give an
// errc. The core reaches it only through wire::format (format.hpp), whose
// shoal_format() wraps these functions; tests, fuzzers and benchmarks call
// them directly. Files: encode.cpp, decode.cpp (with msgpack_reader.hpp),
// format.cpp (the interface and packet_builder).
//
// A packet (UDP datagram, or the payload of one stream exchange):
//
//    0        1        2        3        4        5
//   +--------+--------+--------+--------+--------+--------+------ ... ------+
//   | magic  | version| flags  | 0xdc   | count (u16, BE) | message 1 .. n  |
//   | 0x53'S'| 0x01   | 0x00   | msgpack array16 header  |                 |
//   +--------+--------+--------+--------+--------+--------+------ ... ------+
//
//   flags: must be 0 in version 1 (bits are reserved for compression,
//          encryption and a cluster label, which the runtime layer adds).
//   bytes 3..5 are a msgpack array16 header, so bytes 3.. are one msgpack
//   array of `count` messages. A compound packet is simply count > 1: the
//   first message is the one the packet was sent for (ping, ack, ...), the
//   rest are piggybacked updates, packed until the next would pass the MTU.
//
//   message = msgpack array [type (uint), field 1, field 2, ...]
//     1 ping          [1, seq, target, source, source_addr]
//     2 indirect_ping [2, seq, target, target_addr, source, source_addr, want_nack,
//                      nack_timeout_ms (optional: how long the relay waits
//                      before it nacks)]
//     3 ack           [3, seq, digest]
//     4 nack          [4, seq, refused (bool, optional: sent only when true)]
//     5 suspect       [5, incarnation, node, from, refused (bool, optional:
//                      sent only when true), refused_paths (optional, after
//                      refused)]
//     6 alive         [6, incarnation, node, addr, tags, protocol]
//     7 dead          [7, incarnation, node, from]
//     8 left          [8, incarnation, node]
//     9 user          [9, payload (bin)]
//    10 push_pull     [10, join (bool), source, [member...], user_state (bin)]
//    11 broadcast     [11, id (u64), origin, payload (bin)]
//        member = [name, addr, incarnation, state (0 alive, 1 suspect,
//                  2 dead, 3 left), tags, protocol]
//   addr = bin of 6 bytes (IPv4 + port BE) or 18 bytes (IPv6 + port BE)
//   tags = msgpack map str -> str
//
// Unknown message types are skipped (a newer peer may send them) and
// counted; missing fields are an error; extra trailing fields are ignored,
// so an optional field is only ever added at the end, and older decoders skip
// it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include <shoal/errc.hpp>
#include "wire/format.hpp"
#include "wire/messages.hpp"

namespace shoal::wire {

inline constexpr std::uint8_t magic = 0x53;
inline constexpr std::uint8_t version = 1;
inline constexpr std::size_t header_size = 6;
/// Byte 3 of the header: msgpack's array16 marker.
inline constexpr std::uint8_t array16 = 0xdc;

/// What the decoder counts beside the error it returns: messages of a type
/// this build does not know, skipped. (A failure's reason is the returned
/// error code; the caller counts it: core_stats::invalid_*.)
struct decode_counters {
  std::uint64_t unknown_type = 0;
};

/// Appends one encoded message (no packet header) to `out`. Every message
/// starts with a fixarray header, then its type number as a positive fixint.
void encode_message(const message& m, std::vector<std::uint8_t>& out);

/// The type number of a message encoded by encode_message(); 0 when
/// `encoded` does not start as encode_message() starts messages.
std::uint8_t encoded_type(std::span<const std::uint8_t> encoded) noexcept;

/// The type number of a packet's first message, without decoding it; 0 when
/// the packet does not start like one of ours.
std::uint8_t first_type(std::span<const std::uint8_t> packet) noexcept;

/// Encodes a whole packet holding `msgs` (also the body of a stream
/// exchange).
std::vector<std::uint8_t> encode_packet(std::span<const message> msgs);

/// Decodes a packet into `out` (cleared first). On error `out` may hold the
/// messages decoded before the bad one; the caller should drop them all.
/// Any prefix of a good packet gives errc::truncated. Bumps
/// counters.unknown_type for each skipped message of an unknown type. Never
/// throws.
std::error_code decode_packet(std::span<const std::uint8_t> data, const limits& lim,
                              std::vector<message>& out, decode_counters& counters);

}  // namespace shoal::wire
