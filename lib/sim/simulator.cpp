// The simulator. Three layers, as in the header:
//   1. events (event_queue.hpp): what happens when, in a deterministic order;
//   2. network (network.hpp, send_packet, start_stream): what arrives, when;
//   3. nodes: driving each core (dispatch, after_call) and the bookkeeping
//      built on its events (crash detection, false positives, metrics).
#include <shoal/sim.hpp>

#include <algorithm>
#include <cassert>
#include <deque>
#include <limits>
#include <stdexcept>
#include <utility>

#include "sim/event_queue.hpp"
#include "sim/network.hpp"

namespace shoal::sim {

namespace {

// The type of a packet's first message without decoding it: the header is 6
// bytes (codec.hpp), then message 1 is a msgpack array whose first element is
// its type. Every message has fewer than 16 fields, so a fixarray (0x90..0x9f)
// at offset 6 and a positive fixint type at offset 7.
std::size_t peek_kind(std::span<const std::uint8_t> p) noexcept {
  if (p.size() < 8) return 0;
  if ((p[6] & 0xf0) != 0x90) return 0;
  const std::uint8_t t = p[7];
  return t < packet_kinds ? t : 0;
}

constexpr std::int64_t never = std::numeric_limits<std::int64_t>::min() / 2;

}  // namespace

const char* packet_kind_name(std::size_t kind) noexcept {
  // Kinds are message types; 0 (unreadable) keeps its own name in shoal-sim's output.
  if (kind == 0 || kind >= packet_kinds) return "other";
  return to_string(static_cast<message_type>(kind));
}

const char* to_string(node_status s) noexcept {
  switch (s) {
    case node_status::idle:
      return "idle";
    case node_status::running:
      return "running";
    case node_status::leaving:
      return "leaving";
    case node_status::left:
      return "left";
    case node_status::crashed:
      return "crashed";
  }
  return "?";
}

std::uint64_t traffic::total_packets() const noexcept {
  std::uint64_t s = 0;
  for (auto v : packets) s += v;
  return s;
}

std::uint64_t traffic::total_udp_bytes() const noexcept {
  std::uint64_t s = 0;
  for (auto v : bytes) s += v;
  return s;
}

traffic& traffic::operator+=(const traffic& o) noexcept {
  for (std::size_t i = 0; i < packet_kinds; ++i) {
    packets[i] += o.packets[i];
    bytes[i] += o.bytes[i];
  }
  streams += o.streams;
  stream_bytes += o.stream_bytes;
  user_messages += o.user_messages;
  return *this;
}

std::uint64_t node_metrics::view_changes() const noexcept {
  std::uint64_t s = 0;
  for (auto v : events) s += v;
  return s;
}

namespace detail {

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
  std::int64_t slow = 0;          // ns added to every input
  std::int64_t last_up = never;   // joined, restarted, resumed, slowness changed
  std::int64_t last_net = never;  // a partition or block involving it changed
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
  explicit sim_impl(options o)
      : opts_(std::move(o)),
        net_rng_(derive_seed(opts_.seed, 2)),
        scenario_rng_(derive_seed(opts_.seed, 3)) {
    net_.set_loss(opts_.net.loss);
  }

  // ---- clock ----
  time_point tp(std::int64_t t) const noexcept { return time_point(duration(t)); }
  time_point now() const noexcept { return tp(now_); }
  time_point start() const noexcept { return tp(start_); }

  void run_until(std::int64_t end) {
    while (!queue_.empty() && queue_.top().t <= end) {
      ev e = queue_.pop();
      now_ = std::max(now_, e.t);
      dispatch(e);
      after_event();
    }
    now_ = std::max(now_, end);
  }

  bool step() {
    if (queue_.empty()) return false;
    ev e = queue_.pop();
    now_ = std::max(now_, e.t);
    dispatch(e);
    after_event();
    return true;
  }

  void after_event() {
    ++processed_;
    if (progress_fn_ && processed_ % progress_every_ == 0) {
      progress p;
      p.now = now();
      p.elapsed = duration(now_ - start_);
      p.events = processed_;
      p.pending = queue_.size();
      p.running = running_;
      progress_fn_(p);
    }
  }

  void at(std::int64_t t, std::function<void()> fn) {
    ev e;
    e.t = std::max(t, now_);
    e.kind = ev_kind::action;
    e.slot = store_action(std::move(fn));
    queue_.push(e);
  }

  // ---- nodes ----
  node_id add_node(std::optional<config> cfg) {
    const std::size_t i = nodes_.size();
    if (i >= (std::size_t{1} << 24) - 2) throw std::length_error("shoal::sim: too many nodes");
    node_state n;
    n.name = "n" + std::to_string(i);
    const auto v = static_cast<std::uint32_t>(i + 1);
    n.addr = address::v4({10, static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 8),
                          static_cast<std::uint8_t>(v)},
                         opts_.port);
    nodes_.push_back(std::move(n));
    cfgs_.push_back(std::move(cfg));
    metrics_.emplace_back();
    net_.resize(nodes_.size());
    return static_cast<node_id>(i);
  }

  node_id node_at(const address& a) const noexcept {
    if (a.is_v6() || a.port() != opts_.port) return no_node;
    const auto ip = a.ip();
    if (ip[0] != 10) return no_node;
    const std::uint32_t v = (std::uint32_t{ip[1]} << 16) | (std::uint32_t{ip[2]} << 8) | ip[3];
    if (v == 0 || v > nodes_.size()) return no_node;
    return v - 1;
  }

  // "n<i>" -> i without a map: names are ours.
  node_id parse_name(std::string_view s) const noexcept {
    if (s.size() < 2 || s.size() > 9 || s[0] != 'n') return no_node;
    std::uint32_t v = 0;
    for (std::size_t i = 1; i < s.size(); ++i) {
      const char ch = s[i];
      if (ch < '0' || ch > '9') return no_node;
      v = v * 10 + static_cast<std::uint32_t>(ch - '0');
    }
    if (v >= nodes_.size() || nodes_[v].name != s) return no_node;
    return v;
  }

  node_state& node(node_id n) {
    if (n >= nodes_.size()) throw std::out_of_range("shoal::sim: no such node");
    return nodes_[n];
  }
  const node_state& node(node_id n) const {
    if (n >= nodes_.size()) throw std::out_of_range("shoal::sim: no such node");
    return nodes_[n];
  }

  // ---- lifecycle ----
  void start(node_id id, std::span<const node_id> seeds, std::optional<std::uint64_t> inc) {
    node_state& n = nodes_[id];
    n.seeds.assign(seeds.begin(), seeds.end());
    config cfg = cfgs_[id] ? *cfgs_[id] : opts_.base;
    cfg.name = n.name;
    cfg.advertise = n.addr;
    if (inc) cfg.initial_incarnation = *inc;
    ++n.life;
    const std::uint64_t seed = derive_seed(opts_.seed, 1, (std::uint64_t{id} << 16) | n.life);
    n.c.emplace(std::move(cfg), seed);
    n.status = node_status::running;
    n.host_up.reset();
    n.paused = false;
    n.last_up = now_;
    n.tick_pending = false;
    ++n.tick_gen;
    ++running_;
    std::vector<address> addrs;
    addrs.reserve(seeds.size());
    for (node_id s : seeds)
      if (s != id && s < nodes_.size()) addrs.push_back(nodes_[s].addr);
    outbox& o = acquire();
    nodes_[id].c->join(now(), addrs, o);
    after_call(id, o);
  }

  void join(node_id id, std::span<const node_id> seeds) {
    if (node(id).status != node_status::idle)
      throw std::logic_error("shoal::sim: join() of a node that already ran; use restart()");
    start(id, seeds, std::nullopt);
  }

  // The node stops running (crash, leave): stop counting it anywhere.
  void stopped(node_id id) {
    for (crash_track& t : tracks_) {
      if (!t.active || id >= t.eligible.size() || !t.eligible[id]) continue;
      t.eligible[id] = 0;
      --t.eligible_count;
      if (t.declared[id]) --t.declared_count;
      check_all_dead(t);
    }
  }

  void drop_inputs(node_state& n) {
    for (const ev& e : n.deferred) release_event(e);
    n.deferred.clear();
    n.pending_streams.clear();
    n.paused = false;
    n.tick_pending = false;
    ++n.tick_gen;
    ++n.pause_gen;
  }

  void crash(node_id id, std::optional<bool> host_up = std::nullopt) {
    node_state& n = node(id);
    if (n.process_gone() && host_up) n.host_up = host_up;  // the host goes down or comes up
    if (n.status != node_status::running && n.status != node_status::leaving) return;
    n.host_up = host_up;
    if (n.status == node_status::running) --running_;
    const bool was_leaving = n.status == node_status::leaving;
    n.status = node_status::crashed;
    n.c.reset();
    drop_inputs(n);
    if (!was_leaving) stopped(id);

    crash_record r;
    r.node = id;
    r.name = n.name;
    r.at = now();
    crashes_.push_back(std::move(r));
    crash_track t;
    t.record = crashes_.size() - 1;
    t.eligible.assign(nodes_.size(), 0);
    t.declared.assign(nodes_.size(), 0);
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (i != id && nodes_[i].status == node_status::running) {
        t.eligible[i] = 1;
        ++t.eligible_count;
      }
    }
    n.crash_track = static_cast<std::uint32_t>(tracks_.size());
    tracks_.push_back(std::move(t));
  }

  void restart(node_id id, std::span<const node_id> seeds, std::optional<std::uint64_t> inc) {
    node_state& n = node(id);
    if (n.status == node_status::running || n.status == node_status::leaving) crash(id);
    if (nodes_[id].crash_track != node_state::no_track) {
      crash_track& t = tracks_[nodes_[id].crash_track];
      if (t.active) {
        crashes_[t.record].restarted = true;
        end_track(t);
      }
      nodes_[id].crash_track = node_state::no_track;
    }
    std::vector<node_id> s =
        seeds.empty() ? nodes_[id].seeds : std::vector<node_id>(seeds.begin(), seeds.end());
    start(id, s, inc.value_or(0));
  }

  void leave(node_id id, duration timeout) {
    node_state& n = node(id);
    if (n.status != node_status::running) return;
    n.status = node_status::leaving;
    --running_;
    stopped(id);
    ev e;
    e.t = now_ + std::max<std::int64_t>(timeout.count(), 0);
    e.kind = ev_kind::leave_deadline;
    e.node = id;
    e.life = n.life;
    queue_.push(e);
    outbox& o = acquire();
    n.c->leave(now(), timeout, o);
    after_call(id, o);
  }

  void finish_leave(node_id id) {
    node_state& n = nodes_[id];
    n.status = node_status::left;
    n.c.reset();
    drop_inputs(n);
  }

  void pause(node_id id, std::optional<duration> d) {
    node_state& n = node(id);
    n.paused = true;
    ++n.pause_gen;
    if (d) {
      ev e;
      e.t = now_ + std::max<std::int64_t>(d->count(), 0);
      e.kind = ev_kind::resume;
      e.node = id;
      e.aux = n.pause_gen;
      queue_.push(e);
    }
  }

  void resume(node_id id) {
    node_state& n = node(id);
    if (!n.paused) return;
    n.paused = false;
    ++n.pause_gen;
    n.last_up = now_;
    std::vector<ev> deferred;
    deferred.swap(n.deferred);
    for (ev e : deferred) {
      e.t = now_;
      queue_.push(e);
    }
    if (n.has_core()) schedule_tick(id, false);
  }

  // Its process is gone and its host is up: the kernel refuses what arrives.
  bool refuses(node_id id) const noexcept {
    const node_state& n = nodes_[id];
    return n.process_gone() && !n.paused && n.host_up.value_or(opts_.net.crashed_hosts_refuse);
  }

  // ---- network ----
  std::int64_t delay() {
    const std::int64_t lat = opts_.net.latency.count();
    const std::int64_t jit = opts_.net.jitter.count();
    if (jit <= 0) return std::max<std::int64_t>(lat, 0);
    const auto span = static_cast<std::uint64_t>(2 * jit + 1);
    const std::int64_t d = lat - jit + static_cast<std::int64_t>(net_rng_.below(span));
    return std::max<std::int64_t>(d, 0);
  }

  void send_packet(node_id from, node_id to, bytes&& data) {
    node_metrics& m = metrics_[from];
    const std::size_t kind = peek_kind(data);
    ++m.sent.packets[kind];
    m.sent.bytes[kind] += data.size();
    if (to == no_node) {
      ++m.dropped_down;
      return;
    }
    if (net_.blocked(from, to)) {
      ++m.dropped_partition;
      return;
    }
    if (net_rng_.chance(net_.drop_probability(from, to))) {
      ++m.dropped_loss;
      return;
    }
    ev e;
    e.t = now_ + delay() + nodes_[to].slow;
    e.kind = ev_kind::packet;
    e.node = to;
    e.from = from;
    e.life = nodes_[from].life;
    e.slot = store(std::move(data));
    queue_.push(e);
  }

  // The host of `host`, whose process is gone, answers a datagram from `to`
  // (sent by to's life `life`) with ICMP port unreachable, which crosses the
  // link back as a packet would.
  void send_unreachable(node_id host, node_id to, std::uint16_t life) {
    ++metrics_[to].refused;
    if (net_.blocked(host, to) || net_rng_.chance(net_.drop_probability(host, to))) return;
    ev u;
    u.t = now_ + delay() + nodes_[to].slow;
    u.kind = ev_kind::unreachable;
    u.node = to;
    u.from = host;
    u.life = life;
    queue_.push(u);
  }

  bool usable(node_id a, node_id b) const noexcept {
    return !net_.blocked(a, b) && !net_.blocked(b, a);
  }

  void start_stream(node_id from, stream_request& s) {
    node_state& n = nodes_[from];
    n.pending_streams.push_back(s.id);
    ++metrics_[from].sent.streams;
    metrics_[from].sent.stream_bytes += s.data.size();
    ev d;
    d.t = now_ + opts_.net.stream_deadline.count();
    d.kind = ev_kind::stream_deadline;
    d.node = from;
    d.aux = s.id;
    d.life = n.life;
    queue_.push(d);
    const node_id to = node_at(s.to);
    ev e;
    e.aux = s.id;
    e.life = n.life;
    if (to == no_node) {
      e.t = now_ + opts_.net.stream_fail_after.count();
      e.kind = ev_kind::stream_fail;
      e.node = from;
      queue_.push(e);
      return;
    }
    std::int64_t extra = 0;
    if (opts_.net.streams_feel_loss) {
      // SYN, SYN-ACK, then the request; the reply pays its own way later.
      const std::int64_t syn = retransmit_delay(from, to, handshake_rto);
      if (refuses(to) && usable(from, to)) {
        // Nothing listens: the host answers the SYN with a RST (a lost RST
        // costs a SYN retransmission, hence the same backoff).
        const std::int64_t rst = syn < 0 ? -1 : retransmit_delay(to, from, handshake_rto);
        e.t = now_ + (rst < 0 ? opts_.net.stream_fail_after.count()
                              : syn + rst + delay() + delay() + n.slow);
        e.kind = ev_kind::stream_fail;
        e.node = from;
        queue_.push(e);
        return;
      }
      const std::int64_t syn_ack = syn < 0 ? -1 : retransmit_delay(to, from, handshake_rto);
      const std::int64_t req = syn_ack < 0 ? -1 : retransmit_delay(from, to, data_rto);
      if (req < 0) {  // connect or write gave up
        e.t = now_ + opts_.net.stream_fail_after.count();
        e.kind = ev_kind::stream_fail;
        e.node = from;
        queue_.push(e);
        return;
      }
      extra = syn + syn_ack + req + 2 * delay();  // the handshake's round trip
    }
    e.t = now_ + delay() + extra + nodes_[to].slow;
    e.kind = ev_kind::stream_in;
    e.node = to;
    e.from = from;
    e.slot = store(std::move(s.data));
    queue_.push(e);
  }

  static constexpr std::int64_t handshake_rto = 1'000'000'000;  // Linux initial RTO, 1 s
  static constexpr std::int64_t data_rto = 200'000'000;         // Linux minimum RTO, 200 ms
  static constexpr int max_tries = 6;

  // Time one TCP segment from -> to spends being retransmitted (0 when the
  // first try passes), or -1 when every try is lost. Draws nothing when the
  // link loses nothing.
  std::int64_t retransmit_delay(node_id from, node_id to, std::int64_t rto) {
    const double p = net_.drop_probability(from, to);
    std::int64_t waited = 0;
    for (int i = 0; i < max_tries; ++i) {
      if (!net_rng_.chance(p)) return waited;
      waited += rto << i;
    }
    return -1;
  }

  bool erase_pending(node_state& n, std::uint64_t id) {
    auto it = std::find(n.pending_streams.begin(), n.pending_streams.end(), id);
    if (it == n.pending_streams.end()) return false;
    *it = n.pending_streams.back();
    n.pending_streams.pop_back();
    return true;
  }

  // ---- driving cores ----
  outbox& acquire() {
    if (depth_ == outboxes_.size()) outboxes_.emplace_back();
    return outboxes_[depth_++];
  }

  void schedule_tick(node_id id, bool from_tick) {
    node_state& n = nodes_[id];
    const time_point d = n.c->next_deadline();
    if (d == time_point::max()) return;
    std::int64_t t = std::max(d.time_since_epoch().count(), now_);
    if (from_tick && t <= now_) {
      if (++n.same_time_ticks >= 64) {
        n.same_time_ticks = 0;
        ++tick_anomalies_;
        t = now_ + 1'000'000;
      }
    } else if (from_tick) {
      n.same_time_ticks = 0;
    }
    if (n.tick_pending && n.tick_at == t) return;
    ++n.tick_gen;
    n.tick_pending = true;
    n.tick_at = t;
    ev e;
    e.t = t;
    e.kind = ev_kind::tick;
    e.node = id;
    e.aux = n.tick_gen;
    queue_.push(e);
  }

  // Drains what core `id` just produced into `o` (acquired last), then
  // schedules its next tick. Hooks may call back into the simulator, so no
  // reference into nodes_ survives a hook.
  void after_call(node_id id, outbox& o, bool from_tick = false) {
    for (outgoing_packet& p : o.packets) send_packet(id, node_at(p.to), std::move(p.data));
    for (stream_request& s : o.streams) start_stream(id, s);
    metrics_[id].received.user_messages += o.user_messages.size();
    for (const event& e : o.events) on_core_event(id, e);
    o.clear();
    --depth_;
    node_state& n = nodes_[id];
    if (!n.has_core()) return;
    if (n.status == node_status::leaving && n.c->leave_done(now())) {
      finish_leave(id);
      return;
    }
    schedule_tick(id, from_tick);
  }

  void dispatch(const ev& e) {
    switch (e.kind) {
      case ev_kind::action: {
        std::function<void()> fn = std::move(actions_[e.slot]);
        actions_[e.slot] = nullptr;
        free_actions_.push_back(e.slot);
        fn();
        return;
      }
      case ev_kind::tick:
        on_tick(e);
        return;
      case ev_kind::packet:
        on_packet(e);
        return;
      case ev_kind::stream_in:
        on_stream_in(e);
        return;
      case ev_kind::stream_reply:
        on_stream_reply(e);
        return;
      case ev_kind::stream_fail:
      case ev_kind::stream_deadline:
        on_stream_fail(e);
        return;
      case ev_kind::resume:
        if (nodes_[e.node].paused && nodes_[e.node].pause_gen == e.aux) resume(e.node);
        return;
      case ev_kind::leave_deadline: {
        node_state& n = nodes_[e.node];
        if (n.status == node_status::leaving && n.life == e.life) finish_leave(e.node);
        return;
      }
      case ev_kind::unreachable:
        on_unreachable(e);
        return;
    }
  }

  // A paused node keeps its inputs for later. True when `e` was kept.
  bool defer(const ev& e) {
    node_state& n = nodes_[e.node];
    if (!n.paused) return false;
    n.deferred.push_back(e);
    return true;
  }

  void on_tick(const ev& e) {
    node_state& n = nodes_[e.node];
    if (e.aux != n.tick_gen) return;  // superseded
    n.tick_pending = false;
    if (n.paused || !n.has_core()) return;  // resume() ticks it
    outbox& o = acquire();
    n.c->tick(now(), o);
    after_call(e.node, o, true);
  }

  void on_packet(const ev& e) {
    if (defer(e)) return;
    std::span<const std::uint8_t> data = payloads_[e.slot];
    if (packet_hook_) packet_hook_(e.from, e.node, data);
    node_state& n = nodes_[e.node];
    if (!n.has_core()) {
      ++metrics_[e.from].dropped_down;
      if (refuses(e.node)) send_unreachable(e.node, e.from, e.life);
      release(e.slot);
      return;
    }
    const std::size_t kind = peek_kind(data);
    ++metrics_[e.node].received.packets[kind];
    metrics_[e.node].received.bytes[kind] += data.size();
    outbox& o = acquire();
    n.c->handle_packet(now(), nodes_[e.from].addr, data, o);
    release(e.slot);
    after_call(e.node, o);
  }

  // An ICMP port unreachable reaches the sender of the refused datagram.
  void on_unreachable(const ev& e) {
    if (defer(e)) return;
    node_state& n = nodes_[e.node];
    if (!n.has_core() || n.life != e.life) return;  // the socket it was for is gone
    ++metrics_[e.node].unreachable_received;
    outbox& o = acquire();
    n.c->handle_unreachable(now(), nodes_[e.from].addr, o);
    after_call(e.node, o);
  }

  // The host of `target` (process gone) answers a stream's data with a RST.
  // Under streams_feel_loss a lost RST costs a retransmission of the data,
  // which draws another; when all are lost the stream deadline fails it.
  void reset_stream(node_id target, node_id requester, std::uint64_t id, std::uint16_t life) {
    std::int64_t extra = 0;
    if (opts_.net.streams_feel_loss) {
      extra = retransmit_delay(target, requester, data_rto);
      if (extra < 0) return;
    }
    ev f;
    f.t = now_ + delay() + extra + nodes_[requester].slow;
    f.kind = ev_kind::stream_fail;
    f.node = requester;
    f.aux = id;
    f.life = life;
    queue_.push(f);
  }

  void fail_stream_later(node_id requester, std::uint64_t id, std::uint16_t life) {
    ev f;
    f.t = now_ + opts_.net.stream_fail_after.count();
    f.kind = ev_kind::stream_fail;
    f.node = requester;
    f.aux = id;
    f.life = life;
    queue_.push(f);
  }

  void on_stream_in(const ev& e) {
    if (defer(e)) return;
    node_state& t = nodes_[e.node];
    if (!t.has_core() || !usable(e.from, e.node)) {
      release(e.slot);
      if (!t.has_core() && refuses(e.node) && usable(e.from, e.node))
        reset_stream(e.node, e.from, e.aux, e.life);
      else
        fail_stream_later(e.from, e.aux, e.life);
      return;
    }
    std::span<const std::uint8_t> data = payloads_[e.slot];
    ++metrics_[e.node].received.streams;
    metrics_[e.node].received.stream_bytes += data.size();
    outbox& o = acquire();
    bytes reply = t.c->handle_stream(now(), nodes_[e.from].addr, data, o);
    release(e.slot);
    metrics_[e.node].sent.stream_bytes += reply.size();
    after_call(e.node, o);
    std::int64_t extra = 0;
    if (opts_.net.streams_feel_loss) {
      extra = retransmit_delay(e.node, e.from, data_rto);
      if (extra < 0) extra = opts_.net.stream_deadline.count();  // the deadline fails it
    }
    ev r;
    r.t = now_ + delay() + extra + nodes_[e.from].slow;
    r.kind = ev_kind::stream_reply;
    r.node = e.from;
    r.from = e.node;
    r.aux = e.aux;
    r.life = e.life;
    r.slot = store(std::move(reply));
    queue_.push(r);
  }

  void on_stream_reply(const ev& e) {
    if (defer(e)) return;
    node_state& n = nodes_[e.node];
    if (!n.has_core() || n.life != e.life || !erase_pending(n, e.aux)) {
      release(e.slot);
      return;
    }
    std::span<const std::uint8_t> data = payloads_[e.slot];
    outbox& o = acquire();
    if (data.empty() || !usable(e.from, e.node)) {
      n.c->stream_failed(now(), e.aux, o);  // closed without reply, or cut mid-exchange
    } else {
      metrics_[e.node].received.stream_bytes += data.size();
      n.c->handle_stream_reply(now(), e.aux, data, o);
    }
    release(e.slot);
    after_call(e.node, o);
  }

  void on_stream_fail(const ev& e) {
    if (defer(e)) return;
    node_state& n = nodes_[e.node];
    if (!n.has_core() || n.life != e.life || !erase_pending(n, e.aux)) return;
    outbox& o = acquire();
    n.c->stream_failed(now(), e.aux, o);
    after_call(e.node, o);
  }

  // ---- bookkeeping on membership events ----
  void end_track(crash_track& t) {
    t.active = false;
    t.eligible = {};
    t.declared = {};
  }

  void check_all_dead(crash_track& t) {
    if (!t.active || t.eligible_count == 0 || t.declared_count < t.eligible_count) return;
    crashes_[t.record].all_dead = now();
    end_track(t);
  }

  bool is_false_positive(node_id accuser, node_id accused) const noexcept {
    if (accuser == accused) return false;
    const node_state& m = nodes_[accused];
    const node_state& a = nodes_[accuser];
    if (m.status != node_status::running || m.paused || !m.healthy) return false;
    const std::int64_t grace = opts_.false_positive_grace.count();
    if (now_ - m.last_up < grace || now_ - m.last_net < grace || now_ - a.last_net < grace)
      return false;
    return usable(accuser, accused);
  }

  void on_core_event(node_id id, const event& e) {
    const auto type = static_cast<std::size_t>(e.type);
    if (type < metrics_[id].events.size()) ++metrics_[id].events[type];
    if (e.type == event_type::member_suspected || e.type == event_type::member_failed) {
      const node_id who = parse_name(e.who.name);
      if (who != no_node) {
        const bool failed = e.type == event_type::member_failed;
        const std::uint32_t ti = nodes_[who].crash_track;
        if (ti != node_state::no_track && tracks_[ti].active) {
          crash_track& t = tracks_[ti];
          crash_record& r = crashes_[t.record];
          if (!r.first_suspect && !failed) r.first_suspect = now();
          if (failed) {
            if (!r.first_dead) r.first_dead = now();
            if (!r.first_suspect) r.first_suspect = now();  // dead without a suspicion first
            if (id < t.eligible.size() && t.eligible[id] && !t.declared[id]) {
              t.declared[id] = 1;
              ++t.declared_count;
              check_all_dead(t);
            }
          }
        }
        if (is_false_positive(id, who)) {
          if (failed)
            ++false_deaths_;
          else
            ++false_suspicions_;
          if (false_records_.size() < opts_.max_false_positive_records)
            false_records_.push_back({now(), id, who, e.type});
        }
      }
    }
    if (opts_.record_events) recorded_.push_back({now(), id, e});
    if (event_hook_) event_hook_(id, e);
  }

  // ---- side tables ----
  std::uint32_t store(bytes&& b) {
    if (!free_payloads_.empty()) {
      const std::uint32_t i = free_payloads_.back();
      free_payloads_.pop_back();
      payloads_[i] = std::move(b);
      return i;
    }
    payloads_.push_back(std::move(b));
    return static_cast<std::uint32_t>(payloads_.size() - 1);
  }
  void release(std::uint32_t slot) {
    bytes().swap(payloads_[slot]);
    free_payloads_.push_back(slot);
  }
  void release_event(const ev& e) {
    if (e.kind == ev_kind::packet || e.kind == ev_kind::stream_in ||
        e.kind == ev_kind::stream_reply)
      release(e.slot);
  }
  std::uint32_t store_action(std::function<void()> fn) {
    if (!free_actions_.empty()) {
      const std::uint32_t i = free_actions_.back();
      free_actions_.pop_back();
      actions_[i] = std::move(fn);
      return i;
    }
    actions_.push_back(std::move(fn));
    return static_cast<std::uint32_t>(actions_.size() - 1);
  }

  void mark_net(node_id id) { nodes_[id].last_net = now_; }
  void mark_net_all() {
    for (auto& n : nodes_) n.last_net = now_;
  }

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
  std::vector<false_positive> false_records_;
  std::vector<recorded_event> recorded_;
  std::uint64_t tick_anomalies_ = 0;
  mutable std::size_t mesh_cursor_ = 0;
  mutable std::optional<bool> self_in_counts_;

  // Whether core::count() includes the node itself (members() does).
  bool self_in_counts() const {
    if (!self_in_counts_) {
      for (const auto& n : nodes_) {
        if (!n.c) continue;
        const auto v = n.c->members();
        std::size_t sum = 0;
        for (auto st :
             {member_state::alive, member_state::suspect, member_state::dead, member_state::left})
          sum += n.c->count(st);
        self_in_counts_ = sum == v.size();
        break;
      }
    }
    return self_in_counts_.value_or(true);
  }

  std::function<void(node_id, node_id, std::span<const std::uint8_t>)> packet_hook_;
  std::function<void(node_id, const event&)> event_hook_;
  std::function<void(const progress&)> progress_fn_;
  std::uint64_t progress_every_ = 65536;
};

}  // namespace detail

// ---------------------------------------------------------------------------
// simulator: the public facade
// ---------------------------------------------------------------------------

using detail::sim_impl;

simulator::simulator(options opts) : impl_(std::make_unique<sim_impl>(std::move(opts))) {}
simulator::~simulator() = default;
simulator::simulator(simulator&&) noexcept = default;
simulator& simulator::operator=(simulator&&) noexcept = default;

const options& simulator::opts() const noexcept {
  return impl_->opts_;
}

time_point simulator::now() const noexcept {
  return impl_->now();
}
time_point simulator::start_time() const noexcept {
  return impl_->start();
}
duration simulator::elapsed() const noexcept {
  return duration(impl_->now_ - impl_->start_);
}

void simulator::run_for(duration d) {
  impl_->run_until(impl_->now_ + std::max<std::int64_t>(d.count(), 0));
}
void simulator::run_until(time_point t) {
  impl_->run_until(t.time_since_epoch().count());
}
bool simulator::step() {
  return impl_->step();
}

bool simulator::wait_until(const std::function<bool()>& pred, duration timeout, duration poll) {
  const std::int64_t deadline = impl_->now_ + std::max<std::int64_t>(timeout.count(), 0);
  const std::int64_t p = std::max<std::int64_t>(poll.count(), 1);
  for (;;) {
    if (pred()) return true;
    if (impl_->now_ >= deadline) return false;
    impl_->run_until(std::min(impl_->now_ + p, deadline));
  }
}

void simulator::at(time_point t, std::function<void()> fn) {
  impl_->at(t.time_since_epoch().count(), std::move(fn));
}
void simulator::after(duration d, std::function<void()> fn) {
  impl_->at(impl_->now_ + std::max<std::int64_t>(d.count(), 0), std::move(fn));
}

std::uint64_t simulator::events_processed() const noexcept {
  return impl_->processed_;
}
std::size_t simulator::pending_events() const noexcept {
  return impl_->queue_.size();
}
rng& simulator::scenario_rng() noexcept {
  return impl_->scenario_rng_;
}

node_id simulator::add_node() {
  return impl_->add_node(std::nullopt);
}
node_id simulator::add_node(config cfg) {
  return impl_->add_node(std::move(cfg));
}
std::vector<node_id> simulator::add_nodes(std::size_t n) {
  std::vector<node_id> ids;
  ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) ids.push_back(impl_->add_node(std::nullopt));
  return ids;
}
std::size_t simulator::size() const noexcept {
  return impl_->nodes_.size();
}

const std::string& simulator::name(node_id n) const {
  return impl_->node(n).name;
}
const address& simulator::addr(node_id n) const {
  return impl_->node(n).addr;
}
std::optional<node_id> simulator::find_node(std::string_view name) const {
  const node_id n = impl_->parse_name(name);
  if (n == no_node) return std::nullopt;
  return n;
}
node_id simulator::node_at(const address& a) const noexcept {
  return impl_->node_at(a);
}

node_status simulator::status(node_id n) const {
  return impl_->node(n).status;
}
bool simulator::is_live(node_id n) const {
  return impl_->node(n).status == node_status::running;
}
bool simulator::is_paused(node_id n) const {
  return impl_->node(n).paused;
}
std::vector<node_id> simulator::live_nodes() const {
  std::vector<node_id> v;
  v.reserve(impl_->running_);
  for (std::size_t i = 0; i < impl_->nodes_.size(); ++i)
    if (impl_->nodes_[i].status == node_status::running) v.push_back(static_cast<node_id>(i));
  return v;
}
std::size_t simulator::live_count() const noexcept {
  return impl_->running_;
}
std::uint32_t simulator::life(node_id n) const {
  return impl_->node(n).life;
}

core& simulator::node_core(node_id n) {
  auto& s = impl_->node(n);
  if (!s.c) throw std::logic_error("shoal::sim: node " + s.name + " has no core");
  return *s.c;
}
const core& simulator::node_core(node_id n) const {
  const auto& s = impl_->node(n);
  if (!s.c) throw std::logic_error("shoal::sim: node " + s.name + " has no core");
  return *s.c;
}
bool simulator::has_core(node_id n) const {
  return impl_->node(n).c.has_value();
}

void simulator::join(node_id n, std::span<const node_id> seeds) {
  impl_->join(n, seeds);
}

std::vector<node_id> simulator::bootstrap(std::size_t n, std::size_t seeds, duration stagger) {
  std::vector<node_id> ids = add_nodes(n);
  if (ids.empty()) return ids;
  std::vector<node_id> seed_ids(ids.begin(),
                                ids.begin() + static_cast<std::ptrdiff_t>(std::min(seeds, n)));
  sim_impl* impl = impl_.get();
  rng& r = impl->scenario_rng_;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const node_id id = ids[i];
    if (i == 0) {
      impl->join(id, seed_ids);
      continue;
    }
    const duration when = r.between(duration(0), stagger);
    after(when, [impl, id, seed_ids] {
      if (impl->nodes_[id].status == node_status::idle) impl->join(id, seed_ids);
    });
  }
  return ids;
}

std::vector<node_id> simulator::start_converged(std::size_t n, std::size_t seeds) {
  std::vector<node_id> ids = add_nodes(n);
  sim_impl& im = *impl_;
  std::vector<member> view;
  view.reserve(ids.size());
  for (node_id id : ids) {
    const config& cfg = im.cfgs_[id] ? *im.cfgs_[id] : im.opts_.base;
    member m;
    m.name = im.nodes_[id].name;
    m.addr = im.nodes_[id].addr;
    m.incarnation = cfg.initial_incarnation;
    m.tags = cfg.tags;
    view.push_back(std::move(m));
  }
  const std::vector<node_id> seed_ids(
      ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(std::min(seeds, ids.size())));
  for (node_id id : ids) {
    im.start(id, {}, std::nullopt);
    im.nodes_[id].seeds = seed_ids;
    if (!im.nodes_[id].has_core()) continue;
    im.nodes_[id].c->adopt_view(im.now(), view);
    im.schedule_tick(id, false);
  }
  return ids;
}

void simulator::crash(node_id n) {
  impl_->crash(n);
}
void simulator::crash(node_id n, bool host_up) {
  impl_->crash(n, host_up);
}
bool simulator::refuses(node_id n) const {
  impl_->node(n);
  return impl_->refuses(n);
}
void simulator::restart(node_id n, std::span<const node_id> seeds,
                        std::optional<std::uint64_t> incarnation) {
  impl_->restart(n, seeds, incarnation);
}
void simulator::leave(node_id n, duration timeout) {
  impl_->leave(n, timeout);
}
void simulator::pause(node_id n, duration d) {
  impl_->pause(n, d);
}
void simulator::pause(node_id n) {
  impl_->pause(n, std::nullopt);
}
void simulator::resume(node_id n) {
  impl_->resume(n);
}
void simulator::set_slow(node_id n, duration delay) {
  auto& s = impl_->node(n);
  s.slow = std::max<std::int64_t>(delay.count(), 0);
  s.last_up = impl_->now_;
}
void simulator::set_healthy(node_id n, bool healthy) {
  impl_->node(n).healthy = healthy;
}
bool simulator::is_healthy(node_id n) const {
  return impl_->node(n).healthy;
}

void simulator::set_loss(double p) {
  if (p >= 1.0 || impl_->net_.loss() >= 1.0) impl_->mark_net_all();
  impl_->net_.set_loss(p);
}
void simulator::set_ingress_loss(node_id n, double p) {
  impl_->node(n);
  if (p >= 1.0 || impl_->net_.ingress(n) >= 1.0) impl_->mark_net(n);
  impl_->net_.set_ingress(n, p);
}
void simulator::set_egress_loss(node_id n, double p) {
  impl_->node(n);
  if (p >= 1.0 || impl_->net_.egress(n) >= 1.0) impl_->mark_net(n);
  impl_->net_.set_egress(n, p);
}
void simulator::set_link_loss(node_id from, node_id to, double p) {
  impl_->node(from);
  impl_->node(to);
  if (p >= 1.0 || impl_->net_.link(from, to) >= 1.0) {
    impl_->mark_net(from);
    impl_->mark_net(to);
  }
  impl_->net_.set_link(from, to, p);
}
void simulator::block_io(node_id n) {
  set_ingress_loss(n, 1.0);
  set_egress_loss(n, 1.0);
}
void simulator::unblock_io(node_id n) {
  set_ingress_loss(n, 0.0);
  set_egress_loss(n, 0.0);
}

simulator::partition_id simulator::partition(std::span<const node_id> a, std::span<const node_id> b,
                                             bool two_way) {
  for (node_id x : a) impl_->node(x);
  for (node_id x : b) impl_->node(x);
  for (node_id x : a) impl_->mark_net(x);
  for (node_id x : b) impl_->mark_net(x);
  return impl_->net_.add_partition(a, b, two_way, impl_->nodes_.size());
}
void simulator::heal(partition_id p) {
  for (node_id x : impl_->net_.heal(p)) impl_->mark_net(x);
}
void simulator::heal_all() {
  for (std::uint32_t i = 0; i < impl_->net_.rule_count(); ++i) heal(i);
}
bool simulator::link_blocked(node_id from, node_id to) const noexcept {
  if (from >= impl_->nodes_.size() || to >= impl_->nodes_.size()) return true;
  return impl_->net_.blocked(from, to);
}
void simulator::send_raw(node_id from, node_id to, bytes data) {
  impl_->node(from);
  impl_->node(to);
  impl_->send_packet(from, to, std::move(data));
}
void simulator::on_packet(
    std::function<void(node_id from, node_id to, std::span<const std::uint8_t>)> fn) {
  impl_->packet_hook_ = std::move(fn);
}

// ---- vocabulary ----

bool simulator::full_mesh() const {
  // Exact without copying views: a node's alive members are live nodes and
  // "ghosts" (crashed or departed nodes it still sees alive); it sees every
  // live node alive iff count(alive) - ghosts == live nodes.
  const auto& nodes = impl_->nodes_;
  const std::size_t live = impl_->running_;
  if (live == 0) return true;
  const std::size_t self = impl_->self_in_counts() ? 0 : 1;
  std::vector<std::string> gone;
  for (const auto& n : nodes)
    if (n.status == node_status::crashed || n.status == node_status::left ||
        n.status == node_status::leaving)
      gone.push_back(n.name);
  // Start where the last check failed: that node is likely still behind.
  const std::size_t size = nodes.size();
  std::size_t& cursor = impl_->mesh_cursor_;
  for (std::size_t k = 0; k < size; ++k) {
    const std::size_t i = (cursor + k) % size;
    if (nodes[i].status != node_status::running) continue;
    const core& c = *nodes[i].c;
    const std::size_t alive = c.count(member_state::alive) + self;
    std::size_t ghosts = 0;
    if (alive >= live) {
      for (const auto& g : gone) {
        const auto m = c.find(g);
        if (m && m->state == member_state::alive) ++ghosts;
      }
    }
    if (alive < live || alive - ghosts != live) {
      cursor = i;
      return false;
    }
  }
  return true;
}

bool simulator::converged() const {
  const auto& nodes = impl_->nodes_;
  std::optional<std::uint64_t> digest;
  for (const auto& n : nodes) {
    if (n.status != node_status::running) continue;
    const std::uint64_t d = n.c->digest();
    if (!digest)
      digest = d;
    else if (*digest != d)
      return false;
  }
  return full_mesh();
}

bool simulator::status_everywhere(std::string_view name, member_state s) const {
  const std::string key(name);
  const node_id self = impl_->parse_name(name);
  const auto& nodes = impl_->nodes_;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (i == self || nodes[i].status != node_status::running) continue;
    const auto m = nodes[i].c->find(key);
    if (!m || m->state != s) return false;
  }
  return true;
}

std::optional<member_state> simulator::status_seen_by(node_id observer,
                                                      std::string_view name) const {
  const auto& n = impl_->node(observer);
  if (!n.c) return std::nullopt;
  const auto m = n.c->find(std::string(name));
  if (!m) return std::nullopt;
  return m->state;
}

bool simulator::wait_full_mesh(duration timeout) {
  return wait_until([this] { return full_mesh(); }, timeout);
}
bool simulator::wait_converged(duration timeout) {
  return wait_until([this] { return converged(); }, timeout);
}
bool simulator::wait_status_everywhere(std::string_view name, member_state s, duration timeout) {
  const std::string key(name);
  return wait_until([this, &key, s] { return status_everywhere(key, s); }, timeout);
}

// ---- metrics ----

const node_metrics& simulator::metrics(node_id n) const {
  impl_->node(n);
  return impl_->metrics_[n];
}
traffic simulator::total_sent() const {
  traffic t;
  for (const auto& m : impl_->metrics_) t += m.sent;
  return t;
}
traffic simulator::total_received() const {
  traffic t;
  for (const auto& m : impl_->metrics_) t += m.received;
  return t;
}
const std::vector<crash_record>& simulator::crashes() const noexcept {
  return impl_->crashes_;
}
std::uint64_t simulator::false_suspicions() const noexcept {
  return impl_->false_suspicions_;
}
std::uint64_t simulator::false_deaths() const noexcept {
  return impl_->false_deaths_;
}
const std::vector<false_positive>& simulator::false_positives() const noexcept {
  return impl_->false_records_;
}
const std::vector<recorded_event>& simulator::recorded_events() const noexcept {
  return impl_->recorded_;
}
void simulator::on_event(std::function<void(node_id, const event&)> fn) {
  impl_->event_hook_ = std::move(fn);
}
void simulator::on_progress(std::function<void(const progress&)> fn, std::uint64_t every_events) {
  impl_->progress_fn_ = std::move(fn);
  impl_->progress_every_ = std::max<std::uint64_t>(every_events, 1);
}
std::uint64_t simulator::tick_anomalies() const noexcept {
  return impl_->tick_anomalies_;
}

}  // namespace shoal::sim
