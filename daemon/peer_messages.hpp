// Messages between shoald daemons (daemon/PROTOCOL.md, "Daemon-to-daemon
// messages"): carried inside the library's user broadcasts and direct user
// messages, so they are bytes from the network, decoded here with bounded
// sizes and checked field by field. Each is a msgpack array whose first
// element names its kind and whose second is an id:
//   user event    ["shoal.event", id, origin, ltime, name, payload, flags]
//   key request   ["shoal.keys", qid, origin, op, key or nil]
//   key reply     ["shoal.keys.reply", qid, name, error, [key...], primary or nil]
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
inline constexpr std::size_t max_error_bytes = 256;       // a key reply's error text
inline constexpr std::size_t max_reply_keys = 64;         // keys listed in a key reply

struct user_event {
  std::uint64_t id = 0;
  std::string origin;
  std::uint64_t ltime = 0;
  std::string name;
  bytes payload;
  std::uint64_t flags = 0;  ///< 0 today; receivers ignore bits they do not know
  bool operator==(const user_event&) const = default;
};

struct key_request {
  std::uint64_t qid = 0;
  std::string origin;
  std::string op;                     ///< list, install, use or remove
  std::optional<encryption_key> key;  ///< all but list
  bool operator==(const key_request&) const = default;
};

struct key_reply {
  std::uint64_t qid = 0;
  std::string name;
  std::string error;  ///< empty: the operation succeeded
  std::vector<encryption_key> keys;
  std::optional<encryption_key> primary;
  bool operator==(const key_reply&) const = default;
};

using message = std::variant<user_event, key_request, key_reply>;

/// The message's bytes. Fields over the bounds above are the caller's bug:
/// they would not decode on the other side (key replies list at most
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
