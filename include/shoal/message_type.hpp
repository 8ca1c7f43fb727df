// The protocol's message types, numbered as in shoal's wire format
// (lib/wire/codec.hpp draws the packet). The core counts messages by them
// (core_stats::messages_in_by_type); the wire encodes them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shoal {

/// Type numbers are append-only: never renumber or reuse one. `unknown`
/// stands for numbers this build does not know (a newer peer's messages,
/// which are skipped and counted).
enum class message_type : std::uint8_t {
  unknown = 0,
  ping = 1,
  indirect_ping = 2,
  ack = 3,
  nack = 4,
  suspect = 5,
  alive = 6,
  dead = 7,
  left = 8,
  user = 9,
  push_pull = 10,
  broadcast = 11,
};

/// Number of message_type values: the size of the per-type counters.
inline constexpr std::size_t message_type_count = 12;

/// "ping", "indirect_ping", ..., "broadcast"; "unknown" for anything else.
const char* to_string(message_type t) noexcept;

}  // namespace shoal
