// Messages between shoald daemons (daemon/PROTOCOL.md, "Daemon-to-daemon
// messages"): carried inside the library's user broadcasts and direct user
// messages, so they are bytes from the network, decoded here with bounded
// sizes and checked field by field. Each is a msgpack array whose first
// element names its kind and whose second is an id:
//   user event    ["shoal.event", id, origin, ltime, name, payload, flags]
//   query         ["shoal.query", qid, origin, ltime, name, payload, flags,
//                  timeout_ms, node pattern, [[tag, pattern]...]]
//   query reply   ["shoal.query.reply", qid, from, kind, payload]
//   prune         ["shoal.prune", id, origin, member]
// and the daemon's push-pull user state (recent user events, for replay):
//   event state   ["shoal.state", 1, ltime, [[id, origin, ltime, name, payload, flags]...]]
// The payloads of the built-in queries are encoded here too: the cluster key
// operations (`_shoal.keys`: key_op in the query, key_result in a response).
// decode(encode(m)) == m for every message encode accepts; decode of any
// bytes never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include <shoal/node.hpp>

namespace shoal::daemon::peer {

inline constexpr std::size_t max_name_bytes = 256;        // origin and member names
inline constexpr std::size_t max_event_name_bytes = 128;  // a user event's name
inline constexpr std::size_t max_error_bytes = 256;       // a key result's error text
inline constexpr std::size_t max_reply_keys = 64;         // keys listed in a key result
inline constexpr std::size_t max_pattern_bytes = 256;     // a query filter's pattern
inline constexpr std::size_t max_tag_filters = 16;        // tag filters of one query
inline constexpr std::size_t max_tag_key_bytes = 128;     // a tag filter's key

/// User event flags (bits of user_event::flags).
inline constexpr std::uint64_t event_flag_coalesce = 1;  ///< receivers may coalesce by name

struct user_event {
  std::uint64_t id = 0;
  std::string origin;
  std::uint64_t ltime = 0;
  std::string name;
  bytes payload;
  std::uint64_t flags = 0;  ///< event_flag_*; receivers ignore bits they do not know
  bool operator==(const user_event&) const = default;
};

/// Query flags (bits of query::flags).
inline constexpr std::uint64_t query_flag_ack = 1;  ///< matching members acknowledge

struct query {
  std::uint64_t qid = 0;
  std::string origin;
  std::uint64_t ltime = 0;
  std::string name;
  bytes payload;
  std::uint64_t flags = 0;  ///< query_flag_*; receivers ignore bits they do not know
  std::uint64_t timeout_ms = 0;
  std::string node_pattern;  ///< "" matches every name
  std::vector<std::pair<std::string, std::string>>
      tag_patterns;  ///< (tag, pattern), all must match
  bool operator==(const query&) const = default;
};

enum class reply_kind : std::uint8_t { ack = 0, response = 1 };

struct query_reply {
  std::uint64_t qid = 0;
  std::string from;
  reply_kind kind = reply_kind::ack;
  bytes payload;  ///< empty for acks
  bool operator==(const query_reply&) const = default;
};

/// `force-leave --prune`: every daemon forgets the failed or left member.
struct prune {
  std::uint64_t id = 0;
  std::string origin;
  std::string member;
  bool operator==(const prune&) const = default;
};

using message = std::variant<user_event, query, query_reply, prune>;

inline constexpr std::size_t max_state_events = 64;    // events in one event state
inline constexpr std::size_t max_state_bytes = 16384;  // an encoded event state

/// What a daemon sends with every push-pull (shoal::node::set_user_state):
/// its Lamport clock and its most recent user events, newest last, so that a
/// member joining with replay can deliver what it missed.
struct event_state {
  std::uint64_t ltime = 0;
  std::vector<user_event> events;
  bool operator==(const event_state&) const = default;
};

/// At most max_state_events events and max_state_bytes in all: the oldest
/// are left out first.
bytes encode(const event_state& s);
bool decode(std::span<const std::uint8_t> data, event_state& out);

/// Payload of the built-in `_shoal.keys` query: [op, key or nil].
struct key_op {
  std::string op;                     ///< list, install, use or remove
  std::optional<encryption_key> key;  ///< all but list
  bool operator==(const key_op&) const = default;
};

/// Payload of a `_shoal.keys` response: [error, [key...], primary or nil].
struct key_result {
  std::string error;  ///< empty: the operation succeeded
  std::vector<encryption_key> keys;
  std::optional<encryption_key> primary;
  bool operator==(const key_result&) const = default;
};

bytes encode(const key_op& k);
bytes encode(const key_result& r);
/// Never throw; false for anything but a well-formed payload within bounds.
bool decode(std::span<const std::uint8_t> data, key_op& out);
bool decode(std::span<const std::uint8_t> data, key_result& out);

/// The message's bytes. Fields over the bounds above are the caller's bug:
/// they would not decode on the other side (key results list at most
/// max_reply_keys keys; more are left out).
bytes encode(const message& m);

enum class decode_status {
  ok,
  malformed,     ///< not one of our messages' shapes, or a field out of bounds
  unknown_kind,  ///< a well-formed array of a kind this build does not know
};

/// Decodes one message of at most `max_bytes`; never throws. `kind`, when
/// given, receives the kind string whenever the bytes are an array that
/// starts with one (also for malformed and unknown messages), else "".
decode_status decode(std::span<const std::uint8_t> data, message& out,
                     std::size_t max_bytes = 65536, std::string* kind = nullptr);

}  // namespace shoal::daemon::peer
