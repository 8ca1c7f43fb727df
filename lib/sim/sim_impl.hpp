// The simulator's internals: one class, sim_impl, behind shoal::sim::simulator
// (include/shoal/sim.hpp). Three layers, as in the public header: events,
// network, nodes. One file per concept:
//
//   event_queue.hpp  the events: compact records in a heap ordered by virtual
//                    time, then insertion order (ev, ev_kind, event_queue).
//   network.hpp      the network model: which link drops what (loss, blocks,
//                    partitions), without time or randomness.
//   engine.cpp       the clock and the dispatch: run_until, step, at; driving
//                    a core (acquire an outbox, call the core, after_call
//                    drains it and schedules its next tick); ticks; the side
//                    tables that hold payloads and callbacks.
//   transport.cpp    what crosses the network: UDP packets (delay, loss,
//                    partitions), ICMP port unreachable from refusing hosts,
//                    streams (the TCP retransmission model, RST, deadlines),
//                    and the network's fault settings.
//   lifecycle.cpp    nodes: names and addresses, join, bootstrap, converged
//                    start, crash, restart, leave, pause, resume, slowness.
//   observers.cpp    bookkeeping on the cores' events: event counts, crash
//                    records (first suspicion, all dead), false positives;
//                    the sums of the metrics (traffic, view changes).
//   simulator.cpp    the public facade, and the vocabulary tests speak:
//                    full_mesh, converged, status_everywhere, wait_*.
//
// A core is only ever driven through acquire() / after_call(), which lets the
// simulator's hooks (on_event, on_packet) re-enter it safely.
#pragma once

#include <shoal/sim.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sim/event_queue.hpp"
#include "sim/network.hpp"

namespace shoal::sim::detail {

/// A time before anything happened (for "last changed at").
inline constexpr std::int64_t never = std::numeric_limits<std::int64_t>::min() / 2;

struct node_state {
  std::string name;
  address addr;
  std::optional<core> c;
  node_status status = node_status::idle;
  bool paused = false;
  bool healthy = true;
  bool tick_pending = false;
  std::uint16_t life = 0;
  std::uint32_t same_time_ticks = 0;
  std::int64_t tick_at = 0;
  std::uint64_t tick_gen = 0;
  std::uint64_t pause_gen = 0;
  std::int64_t slow = 0;  // ns added to every input
  // The last end of a fault injected on the node itself: a restart (not the
  // first start), a resume, its slowness lowered. Starts the grace.
  std::int64_t last_up = never;
  // The last end of a fault that cut it off: a partition it is in healed, a
  // loss of 1 that applies to it removed or changed. Starts the grace.
  std::int64_t last_net = never;
  std::uint32_t crash_track = no_track;
  std::optional<bool> host_up;  // crash(n, host_up); none: network_config says
  std::vector<node_id> seeds;
  std::vector<ev> deferred;  // inputs that arrived while paused
  std::vector<std::uint64_t> pending_streams;

  static constexpr std::uint32_t no_track = ~std::uint32_t{0};
  bool has_core() const noexcept {
    return c.has_value() && (status == node_status::running || status == node_status::leaving);
  }
  bool process_gone() const noexcept {
    return status == node_status::crashed || status == node_status::left;
  }
};

// Who has declared a crashed node failed, among the nodes running at the crash.
struct crash_track {
  std::size_t record = 0;
  bool active = true;
  std::vector<std::uint8_t> eligible, declared;
  std::size_t eligible_count = 0, declared_count = 0;
};

class sim_impl {
 public:
  explicit sim_impl(options o);

  // ---- engine.cpp: the clock, the queue, driving cores ----
  time_point tp(std::int64_t t) const noexcept { return time_point(duration(t)); }
  time_point now() const noexcept { return tp(now_); }
  time_point start() const noexcept { return tp(start_); }

  void run_until(std::int64_t end);
  bool step();
  void after_event();
  void at(std::int64_t t, std::function<void()> fn);
  void dispatch(const ev& e);

  outbox& acquire();
  // Drains what core `id` just produced into `o` (acquired last), then
  // schedules its next tick. Hooks may call back into the simulator, so no
  // reference into nodes_ survives a hook.
  void after_call(node_id id, outbox& o, bool from_tick = false);
  void schedule_tick(node_id id, bool from_tick);
  void on_tick(const ev& e);
  // A paused node keeps its inputs for later. True when `e` was kept.
  bool defer(const ev& e);

  // Side tables: payloads and callbacks, indexed by ev::slot.
  std::uint32_t store(bytes&& b);
  void release(std::uint32_t slot);
  void release_event(const ev& e);
  std::uint32_t store_action(std::function<void()> fn);

  // ---- transport.cpp: packets, ICMP, streams; the network's faults ----
  // One-way delay: latency +- jitter, drawn uniformly, never below 0.
  std::int64_t delay();
  void send_packet(node_id from, node_id to, bytes&& data);
  // The host of `host`, whose process is gone, answers a datagram from `to`
  // (sent by to's life `life`) with ICMP port unreachable, which crosses the
  // link back as a packet would.
  void send_unreachable(node_id host, node_id to, std::uint16_t life);
  // Neither direction blocked: a stream can be set up.
  bool usable(node_id a, node_id b) const noexcept;
  void start_stream(node_id from, stream_request& s);

  static constexpr std::int64_t handshake_rto = 1'000'000'000;  // Linux initial RTO, 1 s
  static constexpr std::int64_t data_rto = 200'000'000;         // Linux minimum RTO, 200 ms
  static constexpr int max_tries = 6;
  // Time one TCP segment from -> to spends being retransmitted (0 when the
  // first try passes), or -1 when every try is lost. Draws nothing when the
  // link loses nothing.
  std::int64_t retransmit_delay(node_id from, node_id to, std::int64_t rto);
  bool erase_pending(node_state& n, std::uint64_t id);

  void on_packet(const ev& e);
  // An ICMP port unreachable reaches the sender of the refused datagram.
  void on_unreachable(const ev& e);
  // The host of `target` (process gone) answers a stream's data with a RST.
  // Under streams_feel_loss a lost RST costs a retransmission of the data,
  // which draws another; when all are lost the stream deadline fails it.
  void reset_stream(node_id target, node_id requester, std::uint64_t id, std::uint16_t life);
  void fail_stream_later(node_id requester, std::uint64_t id, std::uint16_t life);
  void on_stream_in(const ev& e);
  void on_stream_reply(const ev& e);
  void on_stream_fail(const ev& e);

  void set_loss(double p);
  void set_ingress_loss(node_id n, double p);
  void set_egress_loss(node_id n, double p);
  void set_link_loss(node_id from, node_id to, double p);
  std::uint32_t partition(std::span<const node_id> a, std::span<const node_id> b, bool two_way);
  void heal(std::uint32_t p);
  void heal_all();

  // ---- lifecycle.cpp: nodes, and what happens to their processes ----
  node_state& node(node_id n) {
    if (n >= nodes_.size()) throw std::out_of_range("shoal::sim: no such node");
    return nodes_[n];
  }
  const node_state& node(node_id n) const {
    if (n >= nodes_.size()) throw std::out_of_range("shoal::sim: no such node");
    return nodes_[n];
  }
  node_id add_node(std::optional<config> cfg);
  std::vector<node_id> add_nodes(std::size_t n);
  node_id node_at(const address& a) const noexcept;
  // "n<i>" -> i without a map: names are ours.
  node_id parse_name(std::string_view s) const noexcept;

  // A new life: a fresh core that joins through `seeds`.
  void start(node_id id, std::span<const node_id> seeds, std::optional<std::uint64_t> inc);
  void join(node_id id, std::span<const node_id> seeds);
  std::vector<node_id> bootstrap(std::size_t n, std::size_t seeds, duration stagger);
  std::vector<node_id> start_converged(std::size_t n, std::size_t seeds);
  void crash(node_id id, std::optional<bool> host_up = std::nullopt);
  void restart(node_id id, std::span<const node_id> seeds, std::optional<std::uint64_t> inc);
  void act(node_id id, const std::function<void(core&, outbox&)>& fn) {
    node_state& n = node(id);
    if (!n.has_core()) throw std::logic_error("shoal::sim: node " + n.name + " has no core");
    outbox& o = acquire();
    fn(*n.c, o);
    after_call(id, o, false);
  }
  void set_config(node_id id, config cfg) {
    (void)node(id);  // range check
    cfgs_[id] = std::move(cfg);
  }
  void leave(node_id id, duration timeout);
  void finish_leave(node_id id);
  // The process is gone (crash, leave): its queued inputs too.
  void drop_inputs(node_state& n);
  void pause(node_id id, std::optional<duration> d);
  void resume(node_id id);
  void set_slow(node_id id, duration delay);
  // Its process is gone and its host is up: the kernel refuses what arrives.
  bool refuses(node_id id) const noexcept;

  // ---- observers.cpp: crash records, false positives ----
  void on_core_event(node_id id, const event& e);
  // The node stops running (crash, leave): stop counting it anywhere.
  void stopped(node_id id);
  void end_track(crash_track& t);
  void check_all_dead(crash_track& t);
  bool is_false_positive(node_id accuser, node_id accused) const noexcept;
  // A partition or block that cut the node off ended now (false positives
  // wait out the grace after it; its start needs no mark: the pairs it cuts
  // are excused while it lasts).
  void mark_net(node_id id) { nodes_[id].last_net = now_; }
  void mark_net_all();

  // ---- simulator.cpp: the vocabulary ----
  // Whether core::count() includes the node itself (members() does).
  bool self_in_counts() const;

  // ---- state ----
  options opts_;
  std::vector<node_state> nodes_;
  std::vector<std::optional<config>> cfgs_;  // per node: replaces options::base
  std::vector<node_metrics> metrics_;
  event_queue queue_;
  network_model net_;
  rng net_rng_;
  rng scenario_rng_;
  std::int64_t start_ = std::chrono::duration_cast<duration>(std::chrono::seconds(1000)).count();
  std::int64_t now_ = start_;
  std::uint64_t processed_ = 0;
  std::size_t running_ = 0;

  std::vector<bytes> payloads_;
  std::vector<std::uint32_t> free_payloads_;
  std::vector<std::function<void()>> actions_;
  std::vector<std::uint32_t> free_actions_;
  std::deque<outbox> outboxes_;  // a stack: hooks may re-enter
  std::size_t depth_ = 0;

  std::vector<crash_record> crashes_;
  std::vector<crash_track> tracks_;
  std::uint64_t false_suspicions_ = 0, false_deaths_ = 0;
  std::uint64_t false_suspicions_unhealthy_ = 0, false_deaths_unhealthy_ = 0;
  std::size_t suspicion_records_ = 0, death_records_ = 0;
  std::vector<false_positive> false_records_;
  std::vector<recorded_event> recorded_;
  std::uint64_t tick_anomalies_ = 0;
  mutable std::size_t mesh_cursor_ = 0;
  mutable std::optional<bool> self_in_counts_;

  std::function<void(node_id, node_id, std::span<const std::uint8_t>)> packet_hook_;
  std::function<void(node_id, const event&)> event_hook_;
  std::function<void(node_id, const user_message&)> user_message_hook_;
  std::function<void(const progress&)> progress_fn_;
  std::uint64_t progress_every_ = 65536;
};

}  // namespace shoal::sim::detail
