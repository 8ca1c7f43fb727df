// A small synchronous client of shoald's Unix-socket protocol (PROTOCOL.md):
// POSIX sockets and poll(), no Asio, no threads. Used by shoalctl and the
// daemon tests; written from PROTOCOL.md alone.
//
// Two layers:
//  - `connection`: a connected socket that sends and receives frames (or raw
//    bytes, for tests that misbehave on purpose), every wait bounded by a
//    deadline;
//  - `client`: the protocol on top: handshake, `call(cmd, args)` returning
//    the result or the daemon's error, and stream events.
//
// Values are nlohmann::json: msgpack maps, arrays, strings and integers map
// one to one (msgpack bin becomes a json binary). Frames to the daemon are
// nlohmann's to_msgpack; frames from the daemon are unpacked with bounded
// sizes and nesting (msgpack-c) before conversion (to_json below).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "frame.hpp"

namespace shoal::daemon {

using json = nlohmann::json;
using client_clock = std::chrono::steady_clock;

/// Failures on the client's side of the socket. The daemon's own errors are
/// `daemon_error` values, never these. None of them changes the daemon.
enum class client_errc {
  socket_missing = 1,  ///< no file at the socket path (shoald not running, or another path)
  connection_refused,  ///< the file exists but nothing listens on it (a stale socket)
  permission_denied,   ///< the socket's mode or directory forbids us (default mode 0600)
  daemon_busy,         ///< the daemon's listen backlog is full
  bad_socket_path,     ///< empty, or too long for a Unix socket address
  not_a_socket,        ///< the path exists but is not a socket
  timed_out,           ///< nothing (or not all of a frame) arrived before the deadline
  connection_closed,   ///< the daemon closed the connection
  frame_too_large,     ///< the daemon announced a frame over the client's limit
  bad_reply,           ///< a frame that does not follow PROTOCOL.md
  handshake_failed,    ///< the handshake's result is not the version we asked for
  stream_ended,        ///< next_event() with no open stream left
};

const std::error_category& client_category() noexcept;
inline std::error_code make_error_code(client_errc e) noexcept {
  return {static_cast<int>(e), client_category()};
}

}  // namespace shoal::daemon

template <>
struct std::is_error_code_enum<shoal::daemon::client_errc> : std::true_type {};

namespace shoal::daemon {

/// An error reply from the daemon (PROTOCOL.md "Error codes").
struct daemon_error {
  std::uint64_t id = 0;  ///< 0 for connection-level errors
  std::string code;      ///< e.g. "not_found", "unknown_command"
  std::string message;
};

/// Converts one unpacked msgpack value into json. Maps must have string keys,
/// ext values are refused and nesting is bounded; false (with `out`
/// unspecified) otherwise. Kept rather than json::from_msgpack, which has no
/// bound on nesting (it recurses once per level: a 16 MiB frame of nested
/// arrays would exhaust the stack) and reads ext values as binaries.
bool to_json(const msgpack::object& o, json& out, int depth_left = 32);

/// Encodes one frame: length prefix and the msgpack of `v` (json::to_msgpack:
/// integers in their shortest form, a double as float32 when that is exact,
/// map keys as str). `v` holds no discarded value (a failed parse's result).
std::vector<std::uint8_t> encode_frame(const json& v);

/// Encodes a request frame {"id", "cmd", "args"} (args omitted when null).
std::vector<std::uint8_t> encode_request(std::uint64_t id, std::string_view cmd, const json& args);

/// A connected Unix stream socket speaking frames. Move-only; closes on destruction.
class connection {
 public:
  connection() = default;
  ~connection();
  connection(connection&& o) noexcept;
  connection& operator=(connection&& o) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Connects to `path` within `timeout`. On failure returns a closed
  /// connection and sets `ec` (a client_errc when the cause is recognised,
  /// else the system error).
  static connection open(const std::string& path, std::chrono::milliseconds timeout,
                         std::error_code& ec, std::size_t max_frame = client_max_frame_bytes);

  bool is_open() const noexcept { return fd_ >= 0; }
  int native_handle() const noexcept { return fd_; }
  void close() noexcept;
  /// Half-closes: the daemon sees end of file, we can still read.
  void shutdown_write() noexcept;

  /// Writes all of `bytes` before `deadline`.
  std::error_code write(std::span<const std::uint8_t> bytes, client_clock::time_point deadline);
  std::error_code write_frame(const json& v, client_clock::time_point deadline) {
    const auto f = encode_frame(v);
    return write(f, deadline);
  }

  /// Reads the next frame's payload. Errors: timed_out, connection_closed
  /// (end of file; also when it comes in the middle of a frame),
  /// frame_too_large, or a system error.
  std::error_code read_raw(std::vector<std::uint8_t>& payload, client_clock::time_point deadline);
  /// Reads the next frame as json (bad_reply when it is no msgpack map with
  /// string keys).
  std::error_code read(json& out, client_clock::time_point deadline);

  /// Bytes received and not yet returned as a frame.
  std::size_t buffered() const { return reader_.buffered(); }

 private:
  explicit connection(int fd, std::size_t max_frame) : fd_(fd), reader_(max_frame) {}
  std::error_code fill(client_clock::time_point deadline);

  int fd_ = -1;
  frame_reader reader_{client_max_frame_bytes};
};

/// Human-readable description of a client-side error, naming the socket
/// path and what to do for the connect errors.
std::string describe(const std::error_code& ec, const std::string& socket_path);

/// The outcome of one request.
struct reply {
  std::error_code ec;                 ///< the exchange failed on our side or in transit
  std::optional<daemon_error> error;  ///< the daemon answered with an error
  json result;                        ///< the result, when ok()

  bool ok() const noexcept { return !ec && !error; }
};

/// A frame of an open stream.
struct stream_message {
  enum class kind { event, lagged };
  kind what = kind::event;
  std::uint64_t stream = 0;  ///< the id of the `stream` request
  json body;                 ///< the event map, or {"dropped": n} for lagged
};

/// The protocol on top of a connection. Not thread-safe; one caller at a time.
class client {
 public:
  struct options {
    std::string socket_path = "/run/shoal/shoald.sock";
    /// Bound on connecting and on each request's reply.
    std::chrono::milliseconds timeout{10000};
    std::size_t max_frame = client_max_frame_bytes;
    /// Stream events that may wait in the client while a call is in flight;
    /// older ones are dropped past it (counted by local_events_dropped()).
    std::size_t max_queued_events = 100000;
  };

  /// Connects and handshakes (protocol_version). `out.ec` is set when the
  /// socket could not be reached or the exchange broke, `out.error` when the
  /// daemon refused (e.g. too_many_connections, unsupported_version); on
  /// success `out.result` is the handshake result.
  static std::optional<client> connect(const options& opt, reply& out);
  /// The handshake alone, on a connection opened already (`opt.socket_path`
  /// is then only used in messages).
  static std::optional<client> handshake(connection conn, const options& opt, reply& out);

  /// Sends {"id", "cmd", "args"} and waits for its reply; stream events that
  /// arrive meanwhile are queued for next_event(). `args` null: omitted.
  reply call(std::string_view cmd, const json& args = nullptr);
  reply call(std::string_view cmd, const json& args, std::chrono::milliseconds timeout);

  /// `members` with `args` (filters), every page: follows `next` with
  /// `after` until the daemon has no more, and returns {"members": [all]}.
  reply members(const json& args = json::object());

  /// Sends a `query` (args as PROTOCOL.md: name, payload, node, tags,
  /// timeout_ms, ack) and calls `on_progress` with each ack or response
  /// event ({"type": "ack"|"response", "from", "payload"}) as it arrives;
  /// returns the final summary. `wait` bounds the whole exchange (give it
  /// more than the query's timeout).
  reply query(const json& args, const std::function<void(const json&)>& on_progress,
              std::chrono::milliseconds wait);

  /// Opens a stream of `types` (empty: every type). On success `id` is its id.
  /// `snapshot`: the stream starts with one {"type": "member"} event per
  /// current member and a {"type": "snapshot_end"} event (list-then-watch
  /// with nothing slipping between); every event carries a `seq`.
  /// `coalesce_ms` > 0: user events sent with coalesce are held that long
  /// and only the last of each name is delivered.
  reply open_stream(const std::vector<std::string>& types, std::uint64_t& id, bool snapshot = false,
                    std::uint64_t coalesce_ms = 0);
  /// Closes a stream; no event of it is delivered afterwards.
  reply stop_stream(std::uint64_t id);

  /// The next event or lagged notice of any open stream, waiting at most
  /// `timeout`. A lagged notice ends its stream (the daemon then closes the
  /// connection). Errors: timed_out, connection_closed, stream_ended, bad_reply.
  std::error_code next_event(stream_message& out, std::chrono::milliseconds timeout);

  const json& handshake_result() const noexcept { return hello_; }
  std::size_t open_streams() const noexcept { return streams_.size(); }
  std::uint64_t local_events_dropped() const noexcept { return local_dropped_; }
  connection& conn() noexcept { return conn_; }

 private:
  client(connection c, const options& o) : conn_(std::move(c)), opt_(o) {}
  reply exchange(std::string_view cmd, const json& args, client_clock::time_point deadline,
                 const std::function<void(const json&)>* progress = nullptr);
  /// Classifies a frame that is not the awaited reply: queues stream frames,
  /// false for anything else.
  bool take_stream_frame(const json& frame, std::error_code& ec);

  connection conn_;
  options opt_;
  json hello_;
  std::uint64_t next_id_ = 1;
  std::set<std::uint64_t> streams_;
  std::deque<stream_message> queued_;
  std::uint64_t local_dropped_ = 0;
};

}  // namespace shoal::daemon
