// shoal::sim: a deterministic discrete-event simulator of a shoal cluster.
//
// Real shoal::core instances run on a virtual clock over a modelled network.
// Nothing touches a socket or reads a clock: the same options (above all the
// same seed) and the same calls give the same run, bit for bit, on every
// machine. Tests and benchmarks (shoal-sim) are built on it; users run it to
// choose their parameters.
//
// Three layers, as in Tarantool's swim test harness:
//   - events: a binary heap ordered by virtual time, then by insertion order;
//   - network: per-packet latency and jitter, loss (global, per node ingress and
//     egress, per directed link), one-way and two-way partitions between
//     groups, paused, slow, crashed, restarted and leaving nodes;
//   - vocabulary: run_for, wait_until, full_mesh, status_everywhere,
//     converged, crash, restart, pause, block_io, partition ...
//
// Each node is named "n<i>" and has the address 10.a.b.c:7946 where a.b.c is
// i + 1 in base 256 (n0 is 10.0.0.1:7946). UDP packets travel with a delay of
// latency +- jitter (uniform); loss drops them. Streams (push-pull, join,
// TCP ping) are exchanges of one request and one reply: partitions and
// crashes fail them (stream_failed after network_config::stream_fail_after),
// and loss delays or fails them as it would TCP's segments (retransmissions,
// network_config::streams_feel_loss, on by default).
//
// The host of a crashed or departed node is down (silence: what is sent to it
// is lost) unless network_config::crashed_hosts_refuse or crash(n, true) says
// it is up: then its kernel refuses what reaches it, as Linux does for a port
// nothing listens on. A datagram draws an ICMP port unreachable that crosses
// the link back like any packet (latency, loss, partitions) and reaches the
// sender's core as handle_unreachable(); a stream connect draws a RST and
// fails after that round trip.
//
// Randomness: one seed. Per-node core seeds, network draws and the scenario
// generator all derive from it with derive_seed and shoal::rng (xoshiro256**,
// shoal/random.hpp), never a std:: distribution, whose output differs between
// standard libraries.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <shoal/config.hpp>
#include <shoal/core.hpp>
#include <shoal/events.hpp>
#include <shoal/member.hpp>
#include <shoal/random.hpp>

namespace shoal::sim {

// Randomness (shoal/random.hpp), under the names this header always had.
using shoal::derive_seed;
using shoal::rng;
using shoal::splitmix64;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

using node_id = std::uint32_t;
inline constexpr node_id no_node = ~node_id{0};

struct network_config {
  /// One-way delay of a UDP packet or of each half of a stream exchange,
  /// before jitter. lan: 1 ms.
  duration latency = std::chrono::milliseconds(1);
  /// Each delay is drawn uniformly in [latency - jitter, latency + jitter]
  /// (never below 0), so packets may overtake each other. lan: 0.5 ms.
  duration jitter = std::chrono::microseconds(500);
  /// Probability that any UDP packet is lost, both ways. Default 0.
  double loss = 0.0;
  /// A stream over an unusable link (partition, target down, unknown address)
  /// fails this long after it reached the far side. Default 1 s.
  duration stream_fail_after = std::chrono::seconds(1);
  /// Any stream not answered by then fails (a paused target, a partition that
  /// started mid-exchange). Default 5 s.
  duration stream_deadline = std::chrono::seconds(5);
  /// true (default, every preset): streams feel loss as TCP would. Each of
  /// the exchange's four segments (SYN, SYN-ACK, request, reply) crosses its
  /// link with that link's UDP loss; a lost segment is sent again after 1 s,
  /// 2 s, 4 s ... (handshake) or 200 ms, 400 ms ... (data), at most 6 tries;
  /// a stream that runs out of tries or outlasts stream_deadline fails. A
  /// node losing 80% of its packets then cannot answer a TCP fallback ping
  /// either. false: loss below 1 does not affect streams at all, as if TCP
  /// got every segment through at once: a model no real network matches,
  /// kept for comparison (the TCP fallback ping then rescues probes it
  /// could not).
  bool streams_feel_loss = true;
  /// Whether the host of a crashed or departed (left) node is up. false
  /// (default): the host is down, or drops silently; everything sent to the
  /// node is lost, and streams to it fail after stream_fail_after. true: only
  /// the process is gone and the host's kernel answers for it. Each datagram
  /// that reaches it (past loss and partitions, as any packet) draws an ICMP
  /// port unreachable back to its sender, which crosses the link back like a
  /// packet of its own (a one-way delay later, lost with that link's loss,
  /// never across a partition or block) and reaches the sender's core, if
  /// the same life of it still runs, as core::handle_unreachable(now, to).
  /// A stream connect to it draws a RST and fails (stream_failed) after that
  /// round trip. Running nodes never refuse, paused ones neither (SIGSTOP
  /// keeps the socket: their inputs queue), nor do idle ones. crash(n,
  /// host_up) overrides this per node.
  bool crashed_hosts_refuse = false;

  /// 1 ms +- 0.5 ms.
  static network_config lan() { return {}; }
  /// 50 ms +- 20 ms, streams fail after 3 s, deadline 10 s.
  static network_config wan() {
    network_config n;
    n.latency = std::chrono::milliseconds(50);
    n.jitter = std::chrono::milliseconds(20);
    n.stream_fail_after = std::chrono::seconds(3);
    n.stream_deadline = std::chrono::seconds(10);
    return n;
  }
  /// 100 us +- 50 us (one host).
  static network_config local() {
    network_config n;
    n.latency = std::chrono::microseconds(100);
    n.jitter = std::chrono::microseconds(50);
    return n;
  }
};

struct options {
  /// The one seed every random choice derives from.
  std::uint64_t seed = 1;
  /// Configuration of every node; name and advertise are filled per node.
  config base = config::lan();
  network_config net = network_config::lan();
  /// UDP/TCP port of every node.
  std::uint16_t port = 7946;
  /// How long after a fault the scenario injected has ended (a restart, a
  /// resume, a heal, an unblock, a loss of 1 lifted, a slowness lowered)
  /// declarations it explains are not counted as false positives. Never
  /// after a node's first start, never for loss below 1: see struct
  /// false_positive below for the exact rule. 0: no grace at all. Default
  /// 60 s.
  duration false_positive_grace = std::chrono::seconds(60);
  /// Keep every membership event (recorded_events()); tests only.
  bool record_events = false;
  /// Bound on the false_positives() entries kept of each type (suspicions
  /// and deaths apart, so a flood of suspicions never hides a death). The
  /// counts are exact.
  std::size_t max_false_positive_records = 10000;
};

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// Packets are classified by their first message's type (message_type,
/// 1 ping .. 10 push_pull); kind 0 is anything unreadable.
inline constexpr std::size_t packet_kinds = message_type_count;
/// to_string(message_type(kind)): "ping", "ack", ... ; "other" for 0 or out
/// of range.
const char* packet_kind_name(std::size_t kind) noexcept;

struct traffic {
  std::array<std::uint64_t, packet_kinds> packets{};  ///< UDP packets by kind
  std::array<std::uint64_t, packet_kinds> bytes{};    ///< UDP bytes by kind
  std::uint64_t streams = 0;        ///< stream requests (sent) or requests served (received)
  std::uint64_t stream_bytes = 0;   ///< request bytes plus reply bytes
  std::uint64_t user_messages = 0;  ///< user broadcasts delivered (received side)

  std::uint64_t total_packets() const noexcept;
  std::uint64_t total_udp_bytes() const noexcept;
  std::uint64_t total_bytes() const noexcept { return total_udp_bytes() + stream_bytes; }
  traffic& operator+=(const traffic& o) noexcept;
};

struct node_metrics {
  traffic sent;                         ///< everything this node's cores handed to the network
  traffic received;                     ///< everything delivered to this node's cores
  std::uint64_t dropped_loss = 0;       ///< packets it sent that the loss model dropped
  std::uint64_t dropped_partition = 0;  ///< packets it sent that a partition dropped
  /// packets it sent that found no running core where they arrived (unknown
  /// address, idle, crashed or departed node)
  std::uint64_t dropped_down = 0;
  /// of those, the ones whose host refused them (process gone, host up:
  /// network_config::crashed_hosts_refuse); each drew an ICMP port
  /// unreachable back, which may still be lost on the way
  std::uint64_t refused = 0;
  /// ICMP port unreachable answers handed to its cores (handle_unreachable)
  std::uint64_t unreachable_received = 0;
  /// Membership events its cores emitted, by event_type.
  std::array<std::uint64_t, 7> events{};
  std::uint64_t view_changes() const noexcept;
};

/// One crash and how the cluster noticed it. Times are absolute virtual
/// times; subtract `at` for delays.
struct crash_record {
  node_id node = no_node;
  std::string name;
  time_point at{};
  /// First member_suspected by anyone (or member_failed, if that came first).
  std::optional<time_point> first_suspect;
  std::optional<time_point> first_dead;  ///< first member_failed by anyone
  /// When the last of the nodes running at the crash (and still running)
  /// declared it failed: from then on all of them have.
  std::optional<time_point> all_dead;
  bool restarted = false;  ///< it came back before all_dead (tracking stopped)
};

/// A suspicion or death declaration of a node that was up and reachable.
///
/// A member_suspected or member_failed event emitted by node A about node M
/// at time t is *false* when all of these hold at t:
///   - M is running: not crashed, not left, not leaving, not paused;
///   - M is marked healthy (set_healthy; slow and lossy scenario nodes are
///     not);
///   - nothing cuts A -> M or M -> A: no partition, no block_io, no loss of 1
///     (global, A's or M's egress or ingress, the link either way);
///   - no grace covers the pair: options::false_positive_grace has passed
///     since the last end of a fault the scenario injected, where the ends
///     that count are
///       on M:        its restart (restart(), any life after its first: the
///                    crash or leave before it ended), its resume from a
///                    pause (resume() or the end of pause(n, d)), and
///                    set_slow(M, d) with d below its current slowness
///                    (set_slow(M, 0) ends a slow spell);
///       on A or M:   the heal of a partition it is in (heal, heal_all),
///                    and a loss of 1 that applies to it removed or changed
///                    (unblock_io, set_ingress_loss / set_egress_loss /
///                    set_link_loss from 1 to less, set_loss from 1 to
///                    less for every node).
/// A, the accuser, is the node whose view changed: its own probe failed, or
/// it learned the claim from another node. One suspicion that spreads to
/// every node counts once for each of them.
///
/// Nothing else excuses a declaration. A node's first start (join,
/// bootstrap, start_converged) has no grace: a converged cluster is judged
/// from its first instant, so the detection window of a crash early in a run
/// is covered. A fault that has not ended excuses only the pairs it cuts:
/// while a partition splits B from C, A's suspicion of a reachable M counts,
/// and so does a suspicion of a slow node still marked healthy. Loss below 1
/// never excuses anything, whatever its level and whenever it was set or
/// changed: tolerating it is Lifeguard's job. The grace covers what a fault
/// leaves behind after it ends: suspicion timers it armed (a dead
/// declaration can follow a heal by up to the maximum suspicion timeout),
/// stale claims about a restarted node's previous life, the backlog a paused
/// node works through.
struct false_positive {
  time_point at{};
  node_id accuser = no_node;
  node_id accused = no_node;
  event_type type = event_type::member_suspected;
};

struct recorded_event {
  time_point at{};
  node_id node = no_node;  ///< the node whose core emitted it
  event ev;
};

struct progress {
  time_point now{};
  duration elapsed{};
  std::uint64_t events = 0;  ///< events processed so far
  std::size_t pending = 0;   ///< events queued
  std::size_t running = 0;   ///< nodes running
};

enum class node_status : std::uint8_t {
  idle,     ///< added, never joined
  running,  ///< has a core (may be paused)
  leaving,  ///< leave() called, waiting for leave_done or its timeout
  left,     ///< left gracefully; no core
  crashed,  ///< crashed; no core
};
const char* to_string(node_status s) noexcept;

namespace detail {
class sim_impl;
}

// ---------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------

class simulator {
 public:
  using partition_id = std::uint32_t;

  explicit simulator(options opts = {});
  ~simulator();
  simulator(simulator&&) noexcept;
  simulator& operator=(simulator&&) noexcept;
  simulator(const simulator&) = delete;
  simulator& operator=(const simulator&) = delete;

  const options& opts() const noexcept;

  // ---- clock and events ----

  /// Virtual time starts at start_time() (1000 s after the clock's epoch).
  time_point now() const noexcept;
  time_point start_time() const noexcept;
  /// now() - start_time().
  duration elapsed() const noexcept;

  /// Runs every event due up to now() + d (inclusive), then sets the clock
  /// to now() + d.
  void run_for(duration d);
  void run_until(time_point t);
  /// Runs the next event; false when none is queued. The clock jumps to it.
  bool step();
  /// Checks `pred` now and after every `poll` of virtual time; true as soon as
  /// it holds, false when `timeout` passed first.
  bool wait_until(const std::function<bool()>& pred, duration timeout,
                  duration poll = std::chrono::milliseconds(100));
  /// Calls fn at virtual time t (or now if t is past), after every event
  /// already queued for the same time.
  void at(time_point t, std::function<void()> fn);
  void after(duration d, std::function<void()> fn);

  std::uint64_t events_processed() const noexcept;
  std::size_t pending_events() const noexcept;
  /// The generator scenarios use for their own choices (victims, times).
  rng& scenario_rng() noexcept;

  // ---- nodes ----

  /// Adds node "n<size()>" (idle) with the base config, or with `cfg` (its
  /// name and advertise are replaced).
  node_id add_node();
  node_id add_node(config cfg);
  std::vector<node_id> add_nodes(std::size_t n);
  std::size_t size() const noexcept;

  const std::string& name(node_id n) const;
  const address& addr(node_id n) const;
  /// The node named `name` ("n<i>"), if any.
  std::optional<node_id> find_node(std::string_view name) const;
  /// The node at `a`, or no_node.
  node_id node_at(const address& a) const noexcept;

  node_status status(node_id n) const;
  /// Running (paused or not); leaving, left, crashed and idle nodes are not.
  bool is_live(node_id n) const;
  bool is_paused(node_id n) const;
  std::vector<node_id> live_nodes() const;
  std::size_t live_count() const noexcept;
  /// Lives so far: 1 after the first join, +1 per restart.
  std::uint32_t life(node_id n) const;

  /// The node's core. Throws std::logic_error when it has none (idle, left,
  /// crashed).
  core& node_core(node_id n);
  const core& node_core(node_id n) const;
  bool has_core(node_id n) const;

  // ---- lifecycle ----

  /// Creates the node's core and joins through `seeds` (none: a cluster of
  /// one). An idle node only; use restart() for the others.
  void join(node_id n, std::span<const node_id> seeds = {});
  /// Adds n nodes and schedules their joins: n0 at now(), every other one at
  /// a random time within `stagger`, each through the first `seeds` nodes
  /// (itself excluded). Returns their ids.
  std::vector<node_id> bootstrap(std::size_t n, std::size_t seeds = 3,
                                 duration stagger = std::chrono::seconds(10));
  /// Adds n nodes that start now as one converged cluster: each joins with no
  /// seed and adopts the view "all n alive" (core::adopt_view), so there is no
  /// join traffic. For large clusters (no O(n^2) join burst; memory is still
  /// n^2 members). Their seeds for a later restart are the first `seeds`.
  std::vector<node_id> start_converged(std::size_t n, std::size_t seeds = 3);
  /// The node's process dies: its core is gone, its queued inputs lost,
  /// packets to it dropped (refused when its host stays up:
  /// network_config::crashed_hosts_refuse), streams to it fail.
  void crash(node_id n);
  /// crash(n) with the host's fate given for this node rather than by
  /// network_config::crashed_hosts_refuse: host_up true, its kernel refuses
  /// what reaches it (ICMP port unreachable, RST); false, silence. On a node
  /// already crashed or left it only changes that (the host goes down or
  /// comes back up); a restart forgets it.
  void crash(node_id n, bool host_up);
  /// True when what reaches n now is refused: its process is gone (crashed or
  /// left) and its host is up.
  bool refuses(node_id n) const;
  /// A new process with the same name and address: a new core with a fresh
  /// seed and `incarnation` (default 0) that joins through `seeds` (default:
  /// the seeds of its previous join). A running node crashes first.
  void restart(node_id n, std::span<const node_id> seeds = {},
               std::optional<std::uint64_t> incarnation = {});
  void restart(node_id n, std::initializer_list<node_id> seeds,
               std::optional<std::uint64_t> incarnation = {}) {
    restart(n, std::span<const node_id>(seeds.begin(), seeds.size()), incarnation);
  }
  /// Runs fn(core, outbox) on the node's core now, as its user would (set
  /// tags, broadcast, send_to, force_leave ...), then sends what the core
  /// put in the outbox and re-arms its timers: the way to act on a running
  /// node (calling node_core() directly leaves its outbox unsent and its
  /// next tick unscheduled). Throws std::logic_error without a core. Must not
  /// be called from a hook.
  void act(node_id n, const std::function<void(core&, outbox&)>& fn);
  /// The configuration the node's next join or restart uses (its name and
  /// advertise are replaced): a new version rolled out, new tags after a
  /// restart. A running core keeps the one it started with.
  void set_config(node_id n, config cfg);
  /// core.leave(timeout); the node stops once leave_done() or after timeout.
  void leave(node_id n, duration timeout = std::chrono::seconds(5));
  /// The node handles nothing for d (a GC pause): its inputs queue and are
  /// handled, in order, when it resumes; its timers then fire late.
  void pause(node_id n, duration d);
  /// Pauses until resume(n).
  void pause(node_id n);
  void resume(node_id n);
  /// Every input of the node (packets, streams, replies) is handled `delay`
  /// late; 0 restores it. Its own timers stay on time. Lowering the delay
  /// ends (part of) a fault: the false-positive grace starts (false_positive).
  void set_slow(node_id n, duration delay);
  /// Unhealthy nodes (slow, lossy) are excluded from false positives as the
  /// accused. Default healthy.
  void set_healthy(node_id n, bool healthy);
  bool is_healthy(node_id n) const;

  // ---- network ----

  /// Loss for every UDP packet (both ways).
  void set_loss(double p);
  /// Loss for packets the node receives / sends. Combined with the others as
  /// independent drops.
  void set_ingress_loss(node_id n, double p);
  void set_egress_loss(node_id n, double p);
  /// Loss on the directed link from -> to.
  void set_link_loss(node_id from, node_id to, double p);
  /// Tarantool's block_io: all of the node's UDP and streams are dropped
  /// (ingress and egress loss 1); unblock_io restores loss 0 both ways and
  /// starts the false-positive grace for the node (false_positive).
  void block_io(node_id n);
  void unblock_io(node_id n);
  /// Blocks a -> b (and b -> a when two_way) for UDP and streams, until heal.
  /// Nodes added later are in neither group.
  partition_id partition(std::span<const node_id> a, std::span<const node_id> b,
                         bool two_way = true);
  partition_id partition(std::initializer_list<node_id> a, std::initializer_list<node_id> b,
                         bool two_way = true) {
    return partition(std::span<const node_id>(a.begin(), a.size()),
                     std::span<const node_id>(b.begin(), b.size()), two_way);
  }
  void heal(partition_id p);
  void heal_all();
  /// True when a partition, block_io or a link/node loss of 1 blocks from -> to.
  bool link_blocked(node_id from, node_id to) const noexcept;
  /// Puts a UDP packet from `from` to `to` through the network model, as if
  /// from's core had sent it (engine tests; counted as sent).
  void send_raw(node_id from, node_id to, bytes data);
  /// Called for every UDP packet that reaches its destination host (past loss
  /// and partitions, after any pause or slow delay), whether or not a core
  /// runs there.
  void on_packet(std::function<void(node_id from, node_id to, std::span<const std::uint8_t>)> fn);

  // ---- vocabulary ----

  /// Every live node's members() shows every live node alive (others may
  /// appear in any state).
  bool full_mesh() const;
  /// Every live node has the same digest() and full_mesh() holds.
  bool converged() const;
  /// Every live node other than `name` knows `name` in state s.
  bool status_everywhere(std::string_view name, member_state s) const;
  /// The state observer's core gives `name`, if it knows it.
  std::optional<member_state> status_seen_by(node_id observer, std::string_view name) const;
  bool wait_full_mesh(duration timeout);
  bool wait_converged(duration timeout);
  bool wait_status_everywhere(std::string_view name, member_state s, duration timeout);

  // ---- metrics ----

  const node_metrics& metrics(node_id n) const;
  /// Sums over all nodes.
  traffic total_sent() const;
  traffic total_received() const;
  const std::vector<crash_record>& crashes() const noexcept;
  /// False positives (struct false_positive), counted exactly.
  std::uint64_t false_suspicions() const noexcept;
  std::uint64_t false_deaths() const noexcept;
  /// Of those, the ones whose accuser was marked unhealthy (set_healthy)
  /// when it made them: a slow or lossy node accusing healthy ones.
  std::uint64_t false_suspicions_by_unhealthy() const noexcept;
  std::uint64_t false_deaths_by_unhealthy() const noexcept;
  /// The first options::max_false_positive_records of each type, in order.
  const std::vector<false_positive>& false_positives() const noexcept;
  /// Every membership event, when options::record_events.
  const std::vector<recorded_event>& recorded_events() const noexcept;
  /// Called for every membership event, after the simulator's own
  /// bookkeeping. It may change the cluster (crash, partition, schedule with
  /// after() ...) but must not run the clock (run_for, wait_until, step).
  void on_event(std::function<void(node_id, const event&)> fn);
  /// Called for every user message a node's core delivers (a broadcast that
  /// reached it, or a send_to() aimed at it). Same restrictions as on_event.
  void on_user_message(std::function<void(node_id, const user_message&)> fn);
  /// Called every `every_events` events (shoal-sim prints from it). Same
  /// restrictions as on_event.
  void on_progress(std::function<void(const progress&)> fn, std::uint64_t every_events = 65536);
  /// Times a core asked for a tick at a time it had just been ticked at, over
  /// and over (the simulator then ticks it 1 ms later). 0 when cores behave.
  std::uint64_t tick_anomalies() const noexcept;

 private:
  std::unique_ptr<detail::sim_impl> impl_;
};

}  // namespace shoal::sim
