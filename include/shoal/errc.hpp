// shoal's error codes: expected failures, returned as std::error_code.
#pragma once

#include <system_error>

namespace shoal {

/// Every enumerator says whether the failed call changed any state.
enum class errc {
  ok = 0,
  // -- bad input from the network (junk, never a caller bug; state unchanged) --
  truncated = 1,            ///< the bytes end in the middle of a header or message
  bad_magic = 2,            ///< not a shoal packet
  unsupported_version = 3,  ///< wire version we do not speak
  unsupported_flags = 4,    ///< header flags (compression, encryption) we cannot handle
  malformed = 5,            ///< msgpack is invalid or a field has the wrong type
  too_large = 6,            ///< over a configured size limit
  too_many_messages = 7,    ///< a compound packet with more messages than allowed
  field_too_long = 8,       ///< a name, tag or payload over its configured bound
  // -- caller errors (state unchanged) --
  invalid_argument = 20,  ///< an argument breaks a documented bound
  not_running = 21,       ///< the node has left or was never joined
  queue_full = 22,        ///< a bounded queue is full; the item was dropped
  // -- caller errors about a named member (state unchanged) --
  unknown_member = 23,     ///< no member by that name in this node's view
  member_not_failed = 24,  ///< force_leave: the member is alive, suspect or already left
  member_down = 25,        ///< send_to: the member is dead or left
};

const std::error_category& shoal_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), shoal_category()};
}

}  // namespace shoal

template <>
struct std::is_error_code_enum<shoal::errc> : std::true_type {};
