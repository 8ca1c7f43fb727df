// Nodes and their processes. Node i is "n<i>" at 10.a.b.c (a.b.c = i + 1 in
// base 256), so names and addresses map back without a table. A node's life
// starts with start() (a fresh core, seeded from the master seed, the node
// and the life) and ends with a crash or a leave; a restart is a new life
// under the same name. A paused node keeps its inputs and gets them, in
// order, when it resumes; a slow one gets every input late.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "sim/sim_impl.hpp"

namespace shoal::sim {

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

namespace detail {

// ---- nodes: names and addresses ----

node_id sim_impl::add_node(std::optional<config> cfg) {
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

std::vector<node_id> sim_impl::add_nodes(std::size_t n) {
  std::vector<node_id> ids;
  ids.reserve(n);
  for (std::size_t i = 0; i < n; ++i) ids.push_back(add_node(std::nullopt));
  return ids;
}

node_id sim_impl::node_at(const address& a) const noexcept {
  if (a.is_v6() || a.port() != opts_.port) return no_node;
  const auto ip = a.ip();
  if (ip[0] != 10) return no_node;
  const std::uint32_t v = (std::uint32_t{ip[1]} << 16) | (std::uint32_t{ip[2]} << 8) | ip[3];
  if (v == 0 || v > nodes_.size()) return no_node;
  return v - 1;
}

node_id sim_impl::parse_name(std::string_view s) const noexcept {
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

// ---- lives ----

void sim_impl::start(node_id id, std::span<const node_id> seeds, std::optional<std::uint64_t> inc) {
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
  if (n.life > 1) n.last_up = now_;  // a restart ends a crash or a leave; a first start is no fault
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

void sim_impl::join(node_id id, std::span<const node_id> seeds) {
  if (node(id).status != node_status::idle)
    throw std::logic_error("shoal::sim: join() of a node that already ran; use restart()");
  start(id, seeds, std::nullopt);
}

std::vector<node_id> sim_impl::bootstrap(std::size_t n, std::size_t seeds, duration stagger) {
  std::vector<node_id> ids = add_nodes(n);
  if (ids.empty()) return ids;
  std::vector<node_id> seed_ids(ids.begin(),
                                ids.begin() + static_cast<std::ptrdiff_t>(std::min(seeds, n)));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const node_id id = ids[i];
    if (i == 0) {
      join(id, seed_ids);
      continue;
    }
    const duration when = scenario_rng_.between(duration(0), stagger);
    at(now_ + std::max<std::int64_t>(when.count(), 0), [this, id, seed_ids] {
      if (nodes_[id].status == node_status::idle) join(id, seed_ids);
    });
  }
  return ids;
}

std::vector<node_id> sim_impl::start_converged(std::size_t n, std::size_t seeds) {
  std::vector<node_id> ids = add_nodes(n);
  std::vector<member> view;
  view.reserve(ids.size());
  for (node_id id : ids) {
    const config& cfg = cfgs_[id] ? *cfgs_[id] : opts_.base;
    member m;
    m.name = nodes_[id].name;
    m.addr = nodes_[id].addr;
    m.incarnation = cfg.initial_incarnation;
    m.tags = cfg.tags;
    view.push_back(std::move(m));
  }
  const std::vector<node_id> seed_ids(
      ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(std::min(seeds, ids.size())));
  for (node_id id : ids) {
    start(id, {}, std::nullopt);
    nodes_[id].seeds = seed_ids;
    if (!nodes_[id].has_core()) continue;
    nodes_[id].c->adopt_view(now(), view);
    schedule_tick(id, false);
  }
  return ids;
}

void sim_impl::crash(node_id id, std::optional<bool> host_up) {
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

void sim_impl::restart(node_id id, std::span<const node_id> seeds,
                       std::optional<std::uint64_t> inc) {
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

void sim_impl::leave(node_id id, duration timeout) {
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

void sim_impl::finish_leave(node_id id) {
  node_state& n = nodes_[id];
  n.status = node_status::left;
  n.c.reset();
  drop_inputs(n);
}

void sim_impl::drop_inputs(node_state& n) {
  for (const ev& e : n.deferred) release_event(e);
  n.deferred.clear();
  n.pending_streams.clear();
  n.paused = false;
  n.tick_pending = false;
  ++n.tick_gen;
  ++n.pause_gen;
}

bool sim_impl::refuses(node_id id) const noexcept {
  const node_state& n = nodes_[id];
  return n.process_gone() && !n.paused && n.host_up.value_or(opts_.net.crashed_hosts_refuse);
}

// ---- pauses and slowness ----

void sim_impl::pause(node_id id, std::optional<duration> d) {
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

void sim_impl::resume(node_id id) {
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

void sim_impl::set_slow(node_id id, duration late) {
  node_state& n = node(id);
  const std::int64_t slow = std::max<std::int64_t>(late.count(), 0);
  if (slow < n.slow) n.last_up = now_;  // (part of) a slow spell ends
  n.slow = slow;
}

}  // namespace detail

}  // namespace shoal::sim
