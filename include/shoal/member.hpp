// Members of a cluster as the user sees them: snapshots, never live references.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include <shoal/address.hpp>

namespace shoal {

/// The four states of SWIM as shoal uses them. `left` is a graceful departure;
/// `dead` is a failure detected by the protocol.
enum class member_state : std::uint8_t { alive = 0, suspect = 1, dead = 2, left = 3 };

const char* to_string(member_state s) noexcept;

/// Key/value metadata a member advertises. Bounded by config::max_tags and
/// config::max_tag_bytes (counted by tag_bytes()).
using tag_map = std::map<std::string, std::string>;

/// What each tag costs beyond its key and value against max_tag_bytes: a tag
/// takes far more memory than its bytes (a map node, two strings), so
/// hundreds of empty tags must not fit where a few real ones do.
inline constexpr std::size_t tag_overhead_bytes = 16;

/// The size tags count against config::max_tag_bytes: every key and value,
/// plus tag_overhead_bytes per tag.
inline std::size_t tag_bytes(const tag_map& tags) noexcept {
  std::size_t n = 0;
  for (const auto& [k, v] : tags) n += k.size() + v.size() + tag_overhead_bytes;
  return n;
}

/// The protocol level this build speaks, which every member advertises
/// (member::protocol). Levels: 1, the view digest covers each member's name,
/// state and incarnation; 2, it also covers its tags and protocol, and a
/// member refutes an alive about itself at its own incarnation whose tags or
/// protocol are not its own. Two members use the digest of the lower of
/// their levels with each other, so mixed clusters agree.
inline constexpr std::uint8_t protocol_version = 2;

/// A member as seen at one moment by one node.
struct member {
  std::string name;
  address addr;
  /// Orders claims about this member; only the member itself raises it.
  std::uint64_t incarnation = 0;
  member_state state = member_state::alive;
  tag_map tags;
  std::uint8_t protocol = protocol_version;
  /// Shown dead although the protocol has it back: it fails and returns too
  /// often, and its return is held until it has been stable for a while
  /// (config::flap_half_life). Only in snapshots; never on the wire.
  bool damped = false;

  friend bool operator==(const member&, const member&) = default;
};

}  // namespace shoal
