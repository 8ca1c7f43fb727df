// Names of public enumerators, exactly as spelled in the headers.
#include <shoal/events.hpp>
#include <shoal/member.hpp>
#include <shoal/message_type.hpp>

namespace shoal {

const char* to_string(member_state s) noexcept {
  switch (s) {
    case member_state::alive:
      return "alive";
    case member_state::suspect:
      return "suspect";
    case member_state::dead:
      return "dead";
    case member_state::left:
      return "left";
  }
  return "unknown";
}

const char* to_string(event_type t) noexcept {
  switch (t) {
    case event_type::member_joined:
      return "member_joined";
    case event_type::member_updated:
      return "member_updated";
    case event_type::member_suspected:
      return "member_suspected";
    case event_type::member_alive:
      return "member_alive";
    case event_type::member_failed:
      return "member_failed";
    case event_type::member_left:
      return "member_left";
    case event_type::member_reaped:
      return "member_reaped";
  }
  return "unknown";
}

const char* to_string(message_type t) noexcept {
  switch (t) {
    case message_type::unknown:
      return "unknown";
    case message_type::ping:
      return "ping";
    case message_type::indirect_ping:
      return "indirect_ping";
    case message_type::ack:
      return "ack";
    case message_type::nack:
      return "nack";
    case message_type::suspect:
      return "suspect";
    case message_type::alive:
      return "alive";
    case message_type::dead:
      return "dead";
    case message_type::left:
      return "left";
    case message_type::user:
      return "user";
    case message_type::push_pull:
      return "push_pull";
    case message_type::broadcast:
      return "broadcast";
  }
  return "unknown";
}

}  // namespace shoal
