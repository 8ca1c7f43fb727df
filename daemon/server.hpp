// The Unix-socket side of shoald (daemon/PROTOCOL.md): the listening socket,
// one session per client, framing, handshake, event streams and
// backpressure. Commands other than handshake/stream/stop go to a
// request_handler. Everything runs on one io_context thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <msgpack.hpp>

#include <shoal/events.hpp>

#include "frame.hpp"
#include "peer_messages.hpp"

namespace shoal::daemon {

using writer = msgpack::packer<msgpack::sbuffer>;

/// Packs `s` as a msgpack str.
void write_str(writer& w, std::string_view s);

/// What one `stream` request asked for: membership event types (empty and
/// no user or query filter: everything), user events and queries, all or by
/// name.
struct stream_filter {
  std::set<event_type> types;
  bool all_user = false;
  std::set<std::string> user_names;
  bool all_queries = false;
  std::set<std::string> query_names;
  std::uint64_t seq = 0;  ///< the last event's sequence number on this stream
  /// Coalescing window for user events sent with `coalesce` (0: off), and
  /// the events held in it by name: the last one and when it is due.
  std::chrono::milliseconds coalesce{0};
  struct held_event {
    peer::user_event ev;
    std::uint64_t time_ms = 0;
    std::chrono::steady_clock::time_point due;
  };
  std::map<std::string, held_event> held;
  bool everything() const {
    return types.empty() && !all_user && user_names.empty() && !all_queries && query_names.empty();
  }
  bool wants(event_type t) const { return everything() || types.count(t) != 0; }
  bool wants_user(const std::string& name) const {
    return everything() || all_user || user_names.count(name) != 0;
  }
  bool wants_query(const std::string& name) const {
    return everything() || all_queries || query_names.count(name) != 0;
  }
};

/// A query delivered to local subscribers (the `query` stream type): the
/// query and the handle a client answers it with (`respond`).
struct local_query {
  std::uint64_t handle = 0;
  const peer::query* q = nullptr;
  std::uint64_t deadline_ms = 0;  ///< Unix time after which `respond` is refused
};

struct server_limits {
  std::size_t max_connections = 64;
  std::size_t max_frame_bytes = 65536;
  std::size_t stream_backlog = 1024;
  std::size_t max_streams = 16;
  std::chrono::milliseconds frame_timeout{10000};
  std::chrono::milliseconds lagged_linger{5000};
};

/// The socket API's counters, each as X(name, help), in the manner of
/// SHOAL_CORE_COUNTERS: the struct, its visitor, shoalctl stats ("daemon"),
/// /metrics (shoal_socket_*) and docs/metrics.md come from this list.
#define SHOAL_SERVER_COUNTERS(X)                                                                \
  X(connections, "clients accepted and served")                                                 \
  X(connections_rejected, "clients refused: over max_connections")                              \
  X(frames_in, "request frames read")                                                           \
  X(frames_out, "reply and event frames written")                                               \
  X(bad_frames, "frames that were not a msgpack map with an id")                                \
  X(bad_requests, "requests refused as bad_request")                                            \
  X(frames_too_large, "frames over the frame bound; the connection is closed")                  \
  X(frames_timed_out, "frames started that never completed within frame_timeout")               \
  X(unknown_commands, "requests naming no command the daemon knows")                            \
  X(streams_lagged, "connections cut off for falling behind their event stream")                \
  X(read_only_refused, "requests refused on the read-only socket (read_only)")                  \
  X(user_events_sent, "user events this daemon's clients sent (the event command)")             \
  X(user_events_delivered,                                                                      \
    "user events delivered to this daemon's user streams (each event once)")                    \
  X(user_events_duplicate, "user events that arrived again and were dropped")                   \
  X(user_events_rejected, "malformed user events and event states from other daemons, ignored") \
  X(user_events_replayed, "user events delivered from a peer's recent events (join --replay)")  \
  X(user_events_coalesced, "user events replaced on a stream by a later one of the same name")  \
  X(queries_sent, "queries this daemon's clients sent (the query command)")                     \
  X(queries_received, "queries from any member (this one's included) that matched here")        \
  X(queries_duplicate, "queries that arrived again and were dropped")                           \
  X(queries_rejected, "malformed queries, replies and unknown messages from other daemons")     \
  X(query_responses, "responses this daemon sent to queries (clients and built-ins)")           \
  X(query_replies_late, "acks and responses that came after their query ended")

struct server_stats {
#define SHOAL_FIELD_(name, help) std::uint64_t name = 0;
  SHOAL_SERVER_COUNTERS(SHOAL_FIELD_)
#undef SHOAL_FIELD_
};

/// Calls f(name, help, value) for every counter of SHOAL_SERVER_COUNTERS.
template <class F>
void visit_counters(const server_stats& s, F&& f) {
#define SHOAL_VISIT_(name, help) f(#name, help, s.name);
  SHOAL_SERVER_COUNTERS(SHOAL_VISIT_)
#undef SHOAL_VISIT_
}

class session;

/// Domain commands. Return false for an unknown command. The handler
/// replies exactly once (now or later) through session::reply/error; the
/// session reads no further request until it did.
class request_handler {
 public:
  virtual ~request_handler() = default;
  virtual bool on_request(const std::shared_ptr<session>& s, std::uint64_t id, std::string_view cmd,
                          const msgpack::object& args) = 0;
  /// The members as they are now, sorted by name (`stream` with snapshot).
  virtual std::vector<member> snapshot() = 0;
};

/// One request frame, checked for the envelope (PROTOCOL.md "Requests and
/// replies"). Sans-IO: the session and the fuzzer both use it. On failure
/// `code` names the error (`bad_frame`: id is 0; `bad_request`: id is set).
struct parsed_request {
  msgpack::object_handle handle;
  std::uint64_t id = 0;
  std::string_view cmd;                   ///< points into handle
  const msgpack::object* args = nullptr;  ///< a map (empty when omitted)
  const char* code = nullptr;
  std::string message;
};
parsed_request parse_request(std::span<const std::uint8_t> frame);

/// Writes a member map (PROTOCOL.md "member").
void write_member(writer& w, const member& m);
const char* status_name(member_state s) noexcept;
const char* event_name(event_type t) noexcept;

class server;

class session : public std::enable_shared_from_this<session> {
 public:
  session(server& srv, boost::asio::local::stream_protocol::socket sock);
  void start();
  /// Success reply: `fill` writes the result value (exactly one msgpack value).
  void reply(std::uint64_t id, const std::function<void(writer&)>& fill);
  void error(std::uint64_t id, std::string_view code, std::string_view message);
  /// Delivers an event to this session's matching streams.
  void publish(const event& ev, std::uint64_t time_ms);
  void publish_user(const peer::user_event& ev, std::uint64_t time_ms);
  /// Delivers the held (coalesced) events that are due; re-arms its timer.
  void flush_held();
  /// Delivers a query to this session's matching streams; returns how many.
  std::size_t publish_query(const local_query& lq, std::uint64_t time_ms);
  /// An intermediate frame of the request `id` still in progress (a query's
  /// acks and responses): {"id": id, "event": <fill>}.
  void push(std::uint64_t id, const std::function<void(writer&)>& fill);
  bool is_closed() const { return closed_ || closing_; }
  void close();
  std::size_t stream_count() const { return streams_.size(); }

 private:
  friend class server;
  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void process();
  void dispatch(const std::vector<std::uint8_t>& frame);
  /// Queues a frame; past stream_backlog frames waiting the client is cut
  /// off (lag), unless `unbounded` (a snapshot: at most one frame per member).
  void enqueue(std::vector<std::uint8_t> frame, bool unbounded = false);
  void push_out(std::vector<std::uint8_t> frame, bool unbounded);
  void pop_out();
  void do_write();
  void lag();
  void arm_frame_timer();
  void finish_request();

  server& srv_;
  boost::asio::local::stream_protocol::socket sock_;
  boost::asio::steady_timer frame_timer_;
  boost::asio::steady_timer linger_timer_;
  boost::asio::steady_timer coalesce_timer_;
  bool coalesce_armed_ = false;
  std::uint64_t coalesce_gen_ = 0;
  void write_user_event(std::uint64_t sid, stream_filter& f, const peer::user_event& ev,
                        std::uint64_t time_ms);
  frame_reader reader_;
  std::array<std::uint8_t, 16384> rbuf_{};
  std::deque<std::vector<std::uint8_t>> out_;
  std::deque<bool> out_unbounded_;     ///< per frame of out_: a snapshot frame
  std::size_t unbounded_waiting_ = 0;  ///< snapshot frames in out_ (not counted in the backlog)
  std::size_t queued_bytes_ = 0;       ///< bytes of the frames in out_
  bool lagged_ = false;                ///< cut off: nothing more is queued
  bool writing_ = false;
  bool reading_ = false;
  bool busy_ = false;     ///< a request awaits its reply
  bool closing_ = false;  ///< write what is queued, then close
  bool closed_ = false;
  bool handshaken_ = false;
  bool read_only_ = false;                          ///< accepted on a read-only socket
  std::map<std::uint64_t, stream_filter> streams_;  ///< stream id -> what it asked for
};

class server {
 public:
  server(boost::asio::io_context& ctx, server_limits limits, request_handler& handler,
         std::shared_ptr<spdlog::logger> log);
  /// Creates the socket file (replacing a stale one only when no live
  /// daemon answers on it), with `mode` and optionally `group`. Returns ""
  /// or the reason it failed.
  /// May be called again for more sockets; `read_only` sockets serve only
  /// the commands that read (PROTOCOL.md "Read-only socket").
  std::string listen(const std::string& path, unsigned mode, const std::string& group,
                     bool read_only = false);
  /// Stops accepting, closes every session and removes the socket file.
  void close();
  void publish(const event& ev);
  /// Delivers a user event (events.cpp) to every session's matching streams.
  void publish_user(const peer::user_event& ev);
  /// Delivers a query to every session's matching streams; returns how many
  /// streams got it.
  std::size_t publish_query(const local_query& lq);

  std::size_t connections() const { return sessions_.size(); }
  std::size_t streams() const;
  const server_stats& stats() const { return stats_; }
  const server_limits& limits() const { return limits_; }
  request_handler& handler() { return handler_; }
  spdlog::logger& log() { return *log_; }
  server_stats& mutable_stats() { return stats_; }
  void forget(session* s) { sessions_.erase(s); }
  boost::asio::io_context& context() { return ctx_; }

 private:
  struct listener {
    explicit listener(boost::asio::io_context& ctx) : acceptor(ctx) {}
    boost::asio::local::stream_protocol::acceptor acceptor;
    std::string path;
    bool read_only = false;
  };
  void do_accept(listener& l);

  boost::asio::io_context& ctx_;
  server_limits limits_;
  request_handler& handler_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::unique_ptr<listener>> listeners_;
  std::map<session*, std::weak_ptr<session>> sessions_;
  server_stats stats_;
};

}  // namespace shoal::daemon
