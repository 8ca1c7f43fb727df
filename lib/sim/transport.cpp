// What crosses the network. A UDP packet is delayed (latency +- jitter, plus
// the receiver's slowness), blocked by partitions and dropped by loss
// (network.hpp); one that reaches a refusing host draws an ICMP port
// unreachable back. A stream is one request and one reply: it fails on an
// unusable link after network_config::stream_fail_after, on a refusing host
// after a RST's round trip, and, with streams_feel_loss, pays TCP's
// retransmissions for every lost segment. Also the network's fault settings
// (loss, partitions); the end of one that cut nodes off (a heal, a loss of 1
// lifted) marks them for the false-positive grace.
#include <algorithm>
#include <utility>

#include "sim/sim_impl.hpp"
#include "wire/format.hpp"

namespace shoal::sim {

namespace {

// The type of a packet's first message, from the wire format without
// decoding it (wire::format::first_type): the packet's kind in the figures.
std::size_t peek_kind(std::span<const std::uint8_t> p) noexcept {
  return static_cast<std::size_t>(wire::shoal_format().first_type(p));
}

// A loss of 1 (a block) is lifted or lowered: the fault it was ends.
// Setting one, or changing a loss below 1, ends nothing.
bool block_ends(double before, double after) noexcept {
  return before >= 1.0 && after < 1.0;
}

}  // namespace

const char* packet_kind_name(std::size_t kind) noexcept {
  // Kinds are message types; 0 (unreadable) keeps its own name in shoal-sim's output.
  if (kind == 0 || kind >= packet_kinds) return "other";
  return to_string(static_cast<message_type>(kind));
}

namespace detail {

// ---- UDP packets and ICMP ----

std::int64_t sim_impl::delay() {
  const std::int64_t lat = opts_.net.latency.count();
  const std::int64_t jit = opts_.net.jitter.count();
  if (jit <= 0) return std::max<std::int64_t>(lat, 0);
  const auto span = static_cast<std::uint64_t>(2 * jit + 1);
  const std::int64_t d = lat - jit + static_cast<std::int64_t>(net_rng_.below(span));
  return std::max<std::int64_t>(d, 0);
}

void sim_impl::send_packet(node_id from, node_id to, bytes&& data) {
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

void sim_impl::on_packet(const ev& e) {
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

void sim_impl::send_unreachable(node_id host, node_id to, std::uint16_t life) {
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

void sim_impl::on_unreachable(const ev& e) {
  if (defer(e)) return;
  node_state& n = nodes_[e.node];
  if (!n.has_core() || n.life != e.life) return;  // the socket it was for is gone
  ++metrics_[e.node].unreachable_received;
  outbox& o = acquire();
  n.c->handle_unreachable(now(), nodes_[e.from].addr, o);
  after_call(e.node, o);
}

// ---- streams ----

bool sim_impl::usable(node_id a, node_id b) const noexcept {
  return !net_.blocked(a, b) && !net_.blocked(b, a);
}

void sim_impl::start_stream(node_id from, stream_request& s) {
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

std::int64_t sim_impl::retransmit_delay(node_id from, node_id to, std::int64_t rto) {
  const double p = net_.drop_probability(from, to);
  std::int64_t waited = 0;
  for (int i = 0; i < max_tries; ++i) {
    if (!net_rng_.chance(p)) return waited;
    waited += rto << i;
  }
  return -1;
}

bool sim_impl::erase_pending(node_state& n, std::uint64_t id) {
  auto it = std::find(n.pending_streams.begin(), n.pending_streams.end(), id);
  if (it == n.pending_streams.end()) return false;
  *it = n.pending_streams.back();
  n.pending_streams.pop_back();
  return true;
}

void sim_impl::on_stream_in(const ev& e) {
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

void sim_impl::reset_stream(node_id target, node_id requester, std::uint64_t id,
                            std::uint16_t life) {
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

void sim_impl::fail_stream_later(node_id requester, std::uint64_t id, std::uint16_t life) {
  ev f;
  f.t = now_ + opts_.net.stream_fail_after.count();
  f.kind = ev_kind::stream_fail;
  f.node = requester;
  f.aux = id;
  f.life = life;
  queue_.push(f);
}

void sim_impl::on_stream_reply(const ev& e) {
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

void sim_impl::on_stream_fail(const ev& e) {
  if (defer(e)) return;
  node_state& n = nodes_[e.node];
  if (!n.has_core() || n.life != e.life || !erase_pending(n, e.aux)) return;
  outbox& o = acquire();
  n.c->stream_failed(now(), e.aux, o);
  after_call(e.node, o);
}

// ---- faults ----

void sim_impl::set_loss(double p) {
  if (block_ends(net_.loss(), p)) mark_net_all();
  net_.set_loss(p);
}

void sim_impl::set_ingress_loss(node_id n, double p) {
  node(n);
  if (block_ends(net_.ingress(n), p)) mark_net(n);
  net_.set_ingress(n, p);
}

void sim_impl::set_egress_loss(node_id n, double p) {
  node(n);
  if (block_ends(net_.egress(n), p)) mark_net(n);
  net_.set_egress(n, p);
}

void sim_impl::set_link_loss(node_id from, node_id to, double p) {
  node(from);
  node(to);
  if (block_ends(net_.link(from, to), p)) {
    mark_net(from);
    mark_net(to);
  }
  net_.set_link(from, to, p);
}

std::uint32_t sim_impl::partition(std::span<const node_id> a, std::span<const node_id> b,
                                  bool two_way) {
  for (node_id x : a) node(x);
  for (node_id x : b) node(x);
  // No mark: while it lasts the pairs it cuts are excused (usable()); the
  // grace starts when it heals.
  return net_.add_partition(a, b, two_way, nodes_.size());
}

void sim_impl::heal(std::uint32_t p) {
  for (node_id x : net_.heal(p)) mark_net(x);
}

void sim_impl::heal_all() {
  for (std::uint32_t i = 0; i < net_.rule_count(); ++i) heal(i);
}

}  // namespace detail

}  // namespace shoal::sim
