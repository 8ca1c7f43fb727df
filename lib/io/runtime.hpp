// shoal::io::runtime: one core on one strand, over UDP, TCP and a timer.
//
// clang-format off
//   UDP receive  -> core.handle_packet -------+
//   UDP errors   -> core.handle_unreachable --+
//   TCP session  -> core.handle_stream -------+                      +-> UDP send queue
//   stream reply -> core.handle_stream_reply -+-> pending -> drain() +-> stream clients (TCP)
//   tick timer   -> core.tick ----------------+   outbox             +-> callbacks
//   facade calls -> core.set_tags, ... -------+                      +-> tick timer re-armed
// clang-format on
//
// The core is guarded by a mutex held only for the call into it; everything
// it asks for is appended to one pending outbox under the same mutex and
// drained on the strand in order. So facade calls never wait for the strand,
// and callbacks (run by drain() without the mutex) may call them.
//
// Sockets, timers, sessions and the bookkeeping below marked "strand" are
// only touched on the strand. Sockets use the error_code overloads
// throughout. Timers are the exception: Boost 1.74 deprecates their
// error_code overloads, and cancel() and expires_*() on a valid timer cannot
// fail.
//
// Where runtime's members are defined, one concept per file:
//   runtime.cpp     lifecycle (start: bind, advertise, create the core; stop: close
//                   everything) and the strand's loop (drain the outbox into sends,
//                   streams, events and user data; the tick timer at the core's next
//                   deadline); logging (warn_limited, fail)
//   udp.cpp         the UDP receive loop (per-source rate limit, size bound, open_in,
//                   core.handle_packet), the socket's ICMP error queue, the send queue
//   streams.cpp     TCP: the acceptor, serving a peer's request (serve_stream), starting
//                   and finishing the core's exchanges; and the tcp_session and
//                   stream_client classes that run them (io/streams.hpp)
//   membership.cpp  seeds (resolved, retried while alone), join() and the exchanges it
//                   waits for, leave() and its wait for the departure to be sent
//   api.cpp         the facade's any-thread queries and changes (members, tags,
//                   broadcast, send_to, force_leave, subscriptions, stats)
//   envelope.cpp    seal_out/open_in around the core's bytes; the keyring and the
//                   facade's key operations
// Beside them, used by the runtime: net.hpp (Asio aliases, address conversions,
// log_sink, SHOAL_LOG), security (the envelope's format, the keyring class), compress
// (raw deflate), icmp (reading the error queue), rate_limit.hpp (packets per source),
// seeds (parsing "host:port"), framing.hpp (the TCP frame header); inbound (open and
// decode in one call, for fuzz targets) and node.cpp (shoal::node, forwarding here).
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <shoal/node.hpp>

#include "io/net.hpp"
#include "io/rate_limit.hpp"
#include "io/security.hpp"

namespace shoal::io {

class tcp_session;
class stream_client;

/// runtime_stats, counted from any thread.
struct runtime_counters {
#define SHOAL_FIELD_(name, help) std::atomic<std::uint64_t> name{0};
  SHOAL_RUNTIME_COUNTERS(SHOAL_FIELD_)
#undef SHOAL_FIELD_

  runtime_stats snapshot() const {
    runtime_stats s;
#define SHOAL_LOAD_(name, help) s.name = name.load(std::memory_order_relaxed);
    SHOAL_RUNTIME_COUNTERS(SHOAL_LOAD_)
#undef SHOAL_LOAD_
    return s;
  }
};

/// How much longer than its own bound a blocking facade call (stop, join,
/// leave) waits for the strand.
inline constexpr auto blocking_grace = std::chrono::seconds(2);

inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) {
  c.fetch_add(n, std::memory_order_relaxed);
}

class runtime : public std::enable_shared_from_this<runtime> {
 public:
  /// `owned` is set when the node runs its own thread on `ctx`.
  runtime(node_config cfg, net::io_context& ctx, std::shared_ptr<net::io_context> owned);
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  // ---- the facade (any thread; see node.hpp) ----
  // runtime.cpp
  std::error_code start();
  void stop();
  bool running() const;
  std::uint16_t port() const { return port_.load(); }
  // membership.cpp
  join_result join(const std::vector<std::string>& seeds);
  std::error_code leave(duration timeout);
  // api.cpp
  std::vector<member> members() const;
  std::size_t count(member_state s) const;
  member local_member() const;
  std::optional<member> find(const std::string& name) const;
  std::error_code set_tags(tag_map tags);
  std::error_code broadcast(bytes payload);
  std::error_code send_to(const std::string& name, bytes payload);
  std::error_code force_leave(const std::string& name);
  std::error_code prune(const std::string& name);
  void set_user_state(bytes state);
  node::subscription subscribe(node::event_handler handler);
  void unsubscribe(node::subscription id);
  void on_user_message(node::user_message_handler handler);
  void on_user_state(node::user_state_handler handler);
  int health_score() const;
  std::uint64_t digest() const;
  node_stats stats() const;
  // envelope.cpp
  std::error_code install_key(const encryption_key& key);
  std::error_code use_key(const encryption_key& key);
  std::error_code remove_key(const encryption_key& key);
  std::vector<encryption_key> list_keys() const;

  // ---- for sessions and stream clients (strand) ----
  const strand_type& strand() const { return strand_; }
  const node_config& cfg() const { return cfg_; }
  const log_sink& log() const { return log_; }
  runtime_counters& counters() { return counters_; }
  bool closed() const { return closed_; }
  // streams.cpp
  /// A peer's request: the core's reply (empty: close without one).
  bytes serve_stream(const address& from, std::span<const std::uint8_t> request);
  void session_done(std::uint64_t session_id, bool ok);
  void stream_done(std::uint64_t client_id, std::uint64_t stream_id, const address& peer,
                   const error_code& ec, std::span<const std::uint8_t> reply);
  /// Largest TCP frame either side accepts or sends, and the bound on an
  /// inflated stream body.
  std::size_t max_frame() const;
  // envelope.cpp
  /// Compresses (when enabled and it shrinks them) and seals bytes to send
  /// under the label and the primary key, in place; a no-op for a plain
  /// cluster without compression.
  void seal_out(bytes& data);
  /// Opens received bytes: true with `data` pointing at the core's bytes
  /// (possibly in `storage`), or false after counting and logging the drop.
  /// A compressed body inflates to at most `max_plain` bytes.
  bool open_in(std::span<const std::uint8_t>& data, bytes& storage, const address& from,
               const char* channel, std::size_t max_plain);
  // runtime.cpp
  /// Logs a warning a peer (or the network) can provoke, "<what> <detail>":
  /// at warn at most once per 10 s per `what`, at debug in between.
  /// `detail` returns the rest of the line; it is called only when the line
  /// is written, so a flood of dropped packets builds no strings.
  template <std::invocable Detail>
  void warn_limited(const char* what, const Detail& detail) {
    const auto lvl = warning_level(what);
    SHOAL_LOG(log_, lvl, "{} {}", what, detail());
  }
  /// Logs a failed operation (operation_aborted is not a failure).
  void fail(const error_code& ec, const char* what) const;

 private:
  struct join_op;
  struct leave_waiter;
  struct resolve_batch;
  using resolved_handler = std::function<void(std::vector<address>, std::error_code)>;

  // runtime.cpp
  std::error_code bind_sockets();
  error_code open_and_bind(const net::ip::address& ip, std::uint16_t port);
  std::optional<net::ip::address> route_source(bool v6);
  /// warn_limited()'s level for `what` now; counts the line against the
  /// rate limit of its `what`.
  spdlog::level::level_enum warning_level(const char* what);

  // runtime.cpp (strand)
  void on_started();
  void do_close();
  void post_drain();
  void drain();
  void dispatch(outbox& batch);
  void deliver_events(std::vector<event>& events);
  void deliver_user_data(std::vector<user_message>& messages, std::vector<bytes>& states);
  void arm_tick(time_point at);
  void on_tick(const error_code& ec, std::uint64_t generation);
  // udp.cpp (strand)
  void do_receive();
  void on_receive(const error_code& ec, std::size_t n);
  void do_wait_error();
  void on_error_ready(const error_code& ec);
  void read_error_queue();
  void enqueue_send(outgoing_packet p);
  void do_send();
  void on_send(const error_code& ec, std::size_t n);
  // streams.cpp (strand)
  void do_accept();
  void on_accept(const error_code& ec, tcp::socket socket);
  void start_stream(stream_request req);
  void finish_stream(std::uint64_t stream_id, const error_code& ec,
                     std::span<const std::uint8_t> reply);
  // membership.cpp (strand)
  void do_resolve(const std::vector<std::string>& names, resolved_handler done);
  void on_resolve(const error_code& ec, const udp::resolver::results_type& results,
                  const std::shared_ptr<resolve_batch>& batch, std::uint64_t id,
                  const std::string& name);
  void add_resolved(resolve_batch& batch, const address& a) const;
  void finish_resolve(resolve_batch& batch);
  void do_join(std::vector<std::string> seeds, std::shared_ptr<join_op> op);
  void on_join_resolved(std::vector<address> addrs, std::error_code ec,
                        const std::shared_ptr<join_op>& op);
  void complete_join(const std::shared_ptr<join_op>& op, std::error_code ec);
  void join_in_background();
  void add_seed_names(const std::vector<std::string>& seeds);
  void arm_seed_retry();
  void on_seed_retry(const error_code& ec);
  void check_leave();
  bool alone() const;

  std::shared_ptr<net::io_context> owned_ctx_;  // first: destroyed last
  node_config cfg_;
  log_sink log_;
  strand_type strand_;

  // ---- lifecycle (start_mu_) ----
  enum class phase : std::uint8_t { idle, running, stopped };
  std::mutex start_mu_;
  std::atomic<phase> phase_{phase::idle};
  std::thread thread_;
  std::unique_ptr<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::atomic<std::uint16_t> port_{0};

  // ---- the core and what it asked for (mu_) ----
  mutable std::mutex mu_;
  std::optional<core> core_;
  outbox pending_;
  bytes early_user_state_;  // set_user_state() before start()
  std::atomic<bool> drain_posted_{false};

  // ---- the keyring (keys_mu_): immutable snapshots, swapped on change ----
  mutable std::mutex keys_mu_;
  std::shared_ptr<const keyring> keys_;
  std::shared_ptr<const keyring> keyring_snapshot() const;

  // ---- callbacks (cb_mu_) ----
  std::mutex cb_mu_;
  std::map<node::subscription, std::shared_ptr<node::event_handler>> subscribers_;
  node::subscription next_subscription_ = 1;
  std::shared_ptr<node::user_message_handler> user_message_handler_;
  std::shared_ptr<node::user_state_handler> user_state_handler_;

  runtime_counters counters_;
  std::atomic<std::size_t> session_count_{0}, stream_count_{0};

  // ---- strand ----
  bool closed_ = false;
  bool leaving_ = false;
  family family_ = family::v4;
  address advertise_;
  strand_udp_socket udp_;
  tcp::acceptor acceptor_;
  strand_timer tick_timer_;
  std::uint64_t tick_generation_ = 0;
  std::optional<time_point> tick_armed_at_;
  strand_timer accept_retry_timer_;
  strand_timer seed_timer_;
  bool seed_timer_armed_ = false;
  strand_timer leave_timer_;
  std::vector<std::uint8_t> receive_buffer_;
  source_rate_limiter rate_limiter_;  ///< strand only
  udp::endpoint sender_;
  std::deque<outgoing_packet> send_queue_;
  bool sending_ = false;
  bool send_retried_ = false;       // the front packet failed once on an ICMP error
  bool icmp_errors_ = false;        // the socket queues ICMP errors (set before on_started)
  bool error_read_posted_ = false;  // read_error_queue() waits on the strand
  std::unordered_map<std::uint64_t, std::weak_ptr<tcp_session>> sessions_;
  std::unordered_map<std::uint64_t, std::weak_ptr<stream_client>> clients_;
  std::uint64_t next_io_id_ = 1;
  std::unordered_map<std::uint64_t, std::shared_ptr<udp::resolver>> resolvers_;
  std::vector<std::string> seed_names_;
  std::set<address> seeds_given_;  // addresses already handed to core.join
  std::set<std::shared_ptr<join_op>> join_ops_;
  std::unordered_map<std::uint64_t, std::shared_ptr<join_op>> join_streams_;  // core stream id
  std::vector<std::shared_ptr<leave_waiter>> leave_waiters_;
  std::map<std::string, rate_limit, std::less<>> warnings_;
};

/// A join() call waiting for its exchanges (strand).
struct runtime::join_op {
  explicit join_op(const strand_type& s) : timer(s) {}
  std::promise<join_result> promise;
  join_result result;
  std::set<std::uint64_t> streams;  // core stream ids still in flight
  std::error_code last_error;
  strand_timer timer;  // bounds resolution plus exchanges
  bool done = false;
};

/// A leave() call waiting for the departure to be sent (strand).
struct runtime::leave_waiter {
  std::promise<std::error_code> promise;
  time_point deadline;
};

}  // namespace shoal::io
