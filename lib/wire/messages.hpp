// Typed protocol messages. Their encoding is in codec.hpp.
//
// Type numbers are append-only: never renumber or reuse one. New fields go at
// the end of a message's array; decoders ignore fields they do not know.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include <shoal/address.hpp>
#include <shoal/member.hpp>
#include <shoal/message_type.hpp>

namespace shoal::wire {

/// The type numbers are the public shoal::message_type (append-only).
using msg_type = shoal::message_type;

/// Direct probe. `target` lets a node that reused an address ignore pings
/// meant for someone else.
struct ping {
  std::uint32_t seq = 0;
  std::string target;
  std::string source;
  address source_addr;
  friend bool operator==(const ping&, const ping&) = default;
};

/// "Please ping target for me" (SWIM indirect probe, Lifeguard nack).
struct indirect_ping {
  std::uint32_t seq = 0;  ///< the requester's sequence number
  std::string target;
  address target_addr;
  std::string source;
  address source_addr;
  bool want_nack = true;
  /// How long the relay waits for the target before it nacks, ms, so the
  /// nack reaches the requester before its probe period ends (Lifeguard).
  /// 0: not sent (older requesters); the relay then uses its own estimate.
  std::uint32_t nack_timeout_ms = 0;
  friend bool operator==(const indirect_ping&, const indirect_ping&) = default;
};

/// Answer to ping (or forwarded answer of an indirect probe). Carries the
/// sender's view digest.
struct ack {
  std::uint32_t seq = 0;
  std::uint64_t digest = 0;
  friend bool operator==(const ack&, const ack&) = default;
};

/// Sent by an indirect prober whose target did not answer in time, or
/// refused its ping.
struct nack {
  std::uint32_t seq = 0;
  /// The relay's ping drew ICMP port unreachable from the target's host: a
  /// path of its own that refused. On the wire only when true.
  bool refused = false;
  friend bool operator==(const nack&, const nack&) = default;
};

struct suspect {
  std::uint64_t incarnation = 0;
  std::string node;
  std::string from;
  /// `from` probed `node` and at least one path (its own ping, or a relay's)
  /// drew ICMP port unreachable: nothing listens on the port. On the wire
  /// only when true (optional fourth field), with refused_paths after it.
  bool refused = false;
  /// Distinct paths (the accuser's own and its relays') whose pings were
  /// refused, none answered (optional fifth field; 1 when only the fourth
  /// came, from an older sender).
  std::uint32_t refused_paths = 0;
  friend bool operator==(const suspect&, const suspect&) = default;
};

struct alive {
  std::uint64_t incarnation = 0;
  std::string node;
  address addr;
  tag_map tags;
  std::uint8_t protocol = protocol_version;
  friend bool operator==(const alive&, const alive&) = default;
};

struct dead {
  std::uint64_t incarnation = 0;
  std::string node;
  std::string from;
  friend bool operator==(const dead&, const dead&) = default;
};

/// A member announcing its own graceful departure.
struct left {
  std::uint64_t incarnation = 0;
  std::string node;
  friend bool operator==(const left&, const left&) = default;
};

/// An opaque user payload for the receiver alone: core::send_to(), and the
/// broadcasts of nodes that predate `broadcast` (they are delivered, not
/// passed on).
struct user {
  std::vector<std::uint8_t> payload;
  friend bool operator==(const user&, const user&) = default;
};

/// One member in a push-pull state: exactly the public snapshot type, so the
/// encoding of a member lives in one place.
using member_state_entry = shoal::member;

/// Full state exchange over a stream (anti-entropy, join).
struct push_pull {
  bool join = false;
  std::string source;
  std::vector<member_state_entry> members;
  std::vector<std::uint8_t> user_state;
  friend bool operator==(const push_pull&, const push_pull&) = default;
};

/// A user broadcast that spreads to every member (epidemic): each receiver
/// delivers it once (by id) and passes it on like a membership update.
struct broadcast {
  std::uint64_t id = 0;  ///< random, chosen by the origin; the de-duplication key
  std::string origin;    ///< the member that broadcast it
  std::vector<std::uint8_t> payload;
  friend bool operator==(const broadcast&, const broadcast&) = default;
};

using message = std::variant<ping, indirect_ping, ack, nack, suspect, alive, dead, left, user,
                             push_pull, broadcast>;

msg_type type_of(const message& m) noexcept;

}  // namespace shoal::wire
