// Membership events a node emits, each with the member's snapshot.
#pragma once

#include <cstdint>

#include <shoal/member.hpp>

namespace shoal {

enum class event_type : std::uint8_t {
  member_joined,     ///< first seen alive (and confirmed), or alive again after dead/left
  member_updated,    ///< address or tags changed
  member_suspected,  ///< alive -> suspect
  member_alive,      ///< suspect -> alive: the member refuted the suspicion
  member_failed,     ///< -> dead: the failure detector declared it failed
  member_left,       ///< -> left: the member departed gracefully
  member_reaped,     ///< forgotten: dead or left for longer than reconnect_timeout
};

const char* to_string(event_type t) noexcept;

struct event {
  event_type type;
  member who;
};

}  // namespace shoal
