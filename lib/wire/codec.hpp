// The wire format: bytes <-> messages. Never throws; bad bytes give an errc.
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
//     2 indirect_ping [2, seq, target, target_addr, source, source_addr, want_nack]
//     3 ack           [3, seq, digest]
//     4 nack          [4, seq]
//     5 suspect       [5, incarnation, node, from, refused (bool, optional:
//                      sent only when true)]
//     6 alive         [6, incarnation, node, addr, tags, protocol]
//     7 dead          [7, incarnation, node, from]
//     8 left          [8, incarnation, node]
//     9 user          [9, payload (bin)]
//    10 push_pull     [10, join (bool), source, [member...], user_state (bin)]
//        member = [name, addr, incarnation, state (0 alive, 1 suspect,
//                  2 dead, 3 left), tags, protocol]
//   addr = bin of 6 bytes (IPv4 + port BE) or 18 bytes (IPv6 + port BE)
//   tags = msgpack map str -> str
//
// Unknown message types are skipped (a newer peer may send them) and
// counted; missing fields are an error; extra trailing fields are ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <system_error>
#include <vector>

#include <shoal/errc.hpp>
#include "wire/messages.hpp"

namespace shoal::wire {

inline constexpr std::uint8_t magic = 0x53;
inline constexpr std::uint8_t version = 1;
inline constexpr std::size_t header_size = 6;

/// Bounds applied while decoding; anything over them is rejected.
struct limits {
  std::size_t max_packet_bytes = 65536;
  std::size_t max_messages = 1024;
  std::size_t max_name_length = 128;
  std::size_t max_tag_bytes = 512;  ///< sum of key and value lengths
  std::size_t max_payload_bytes = 65536;
  std::size_t max_members = 65536;  ///< entries of one push_pull
};

/// Per-reason counters the decoder bumps.
struct decode_counters {
  std::uint64_t truncated = 0, bad_magic = 0, unsupported_version = 0, unsupported_flags = 0,
                malformed = 0, too_large = 0, too_many_messages = 0, field_too_long = 0,
                unknown_type = 0;
};

/// Appends one encoded message (no packet header) to `out`. Every message
/// starts with a fixarray header, then its type number as a positive fixint.
void encode_message(const message& m, std::vector<std::uint8_t>& out);

/// The type number of a message encoded by encode_message(); 0 when
/// `encoded` does not start as encode_message() starts messages.
std::uint8_t encoded_type(std::span<const std::uint8_t> encoded) noexcept;

/// Builds packets: header, then messages appended raw (already encoded with
/// encode_message), then finish() patches the count.
class packet_builder {
 public:
  /// Starts a packet in `out` (cleared first). When `type_counts` is not
  /// empty, each message added bumps type_counts[its type number] (type
  /// numbers past its end bump [0]).
  explicit packet_builder(std::vector<std::uint8_t>& out,
                          std::span<std::uint64_t> type_counts = {});
  /// Appends one encoded message.
  void add_encoded(std::span<const std::uint8_t> encoded);
  void add(const message& m);
  std::size_t size() const noexcept { return out_.size(); }
  std::size_t count() const noexcept { return count_; }
  /// Writes the count into the header. Call once, last.
  void finish();

 private:
  void count_type(std::uint8_t t) noexcept {
    if (!type_counts_.empty()) ++type_counts_[t < type_counts_.size() ? t : 0];
  }
  std::vector<std::uint8_t>& out_;
  std::span<std::uint64_t> type_counts_;
  std::size_t count_ = 0;
};

/// Encodes a whole packet holding `msgs`.
std::vector<std::uint8_t> encode_packet(std::span<const message> msgs);

/// Decodes a packet into `out` (cleared first). On error `out` may hold the
/// messages decoded before the bad one; the caller should drop them all.
/// Bumps `counters` for the reason of a failure and for each skipped unknown
/// type. Never throws.
std::error_code decode_packet(std::span<const std::uint8_t> data, const limits& lim,
                              std::vector<message>& out, decode_counters& counters);

}  // namespace shoal::wire
