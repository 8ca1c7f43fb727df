// The socket protocol's names for member states and event types
// (daemon/PROTOCOL.md): the one table every part of shoald and shoalctl reads.
// They differ from the library's to_string() on purpose: a dead member is
// "failed", as Serf says it, and events drop their "member_" prefix.
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include <shoal/events.hpp>
#include <shoal/member.hpp>

namespace shoal::daemon {

/// Indexed by member_state.
inline constexpr std::array<std::string_view, 4> status_names = {"alive", "suspect", "failed",
                                                                 "left"};
/// Indexed by event_type.
inline constexpr std::array<std::string_view, 7> event_names = {
    "joined", "updated", "suspected", "alive", "failed", "left", "reaped"};

static_assert(static_cast<std::size_t>(member_state::left) + 1 == status_names.size());
static_assert(static_cast<std::size_t>(event_type::member_reaped) + 1 == event_names.size());

inline std::optional<member_state> parse_status(std::string_view s) noexcept {
  for (std::size_t i = 0; i < status_names.size(); ++i)
    if (status_names[i] == s) return static_cast<member_state>(i);
  return std::nullopt;
}

inline std::optional<event_type> parse_event(std::string_view s) noexcept {
  for (std::size_t i = 0; i < event_names.size(); ++i)
    if (event_names[i] == s) return static_cast<event_type>(i);
  return std::nullopt;
}

}  // namespace shoal::daemon
