// The engine: the virtual clock, the event queue and its dispatch, and how a
// core is driven (an outbox acquired for each call, drained by after_call(),
// which also schedules the core's next tick). Payloads and callbacks wait in
// side tables while their events are queued.
#include <algorithm>
#include <utility>

#include "sim/sim_impl.hpp"

namespace shoal::sim::detail {

sim_impl::sim_impl(options o)
    : opts_(std::move(o)),
      net_rng_(derive_seed(opts_.seed, 2)),
      scenario_rng_(derive_seed(opts_.seed, 3)) {
  net_.set_loss(opts_.net.loss);
}

// ---- clock ----

void sim_impl::run_until(std::int64_t end) {
  while (!queue_.empty() && queue_.top().t <= end) {
    ev e = queue_.pop();
    now_ = std::max(now_, e.t);
    dispatch(e);
    after_event();
  }
  now_ = std::max(now_, end);
}

bool sim_impl::step() {
  if (queue_.empty()) return false;
  ev e = queue_.pop();
  now_ = std::max(now_, e.t);
  dispatch(e);
  after_event();
  return true;
}

void sim_impl::after_event() {
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

void sim_impl::at(std::int64_t t, std::function<void()> fn) {
  ev e;
  e.t = std::max(t, now_);
  e.kind = ev_kind::action;
  e.slot = store_action(std::move(fn));
  queue_.push(e);
}

// ---- dispatch ----

void sim_impl::dispatch(const ev& e) {
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

bool sim_impl::defer(const ev& e) {
  node_state& n = nodes_[e.node];
  if (!n.paused) return false;
  n.deferred.push_back(e);
  return true;
}

// ---- driving cores ----

outbox& sim_impl::acquire() {
  if (depth_ == outboxes_.size()) outboxes_.emplace_back();
  return outboxes_[depth_++];
}

void sim_impl::after_call(node_id id, outbox& o, bool from_tick) {
  for (outgoing_packet& p : o.packets) send_packet(id, node_at(p.to), std::move(p.data));
  for (stream_request& s : o.streams) start_stream(id, s);
  metrics_[id].received.user_messages += o.user_messages.size();
  if (user_message_hook_)
    for (const user_message& m : o.user_messages) user_message_hook_(id, m);
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

void sim_impl::schedule_tick(node_id id, bool from_tick) {
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

void sim_impl::on_tick(const ev& e) {
  node_state& n = nodes_[e.node];
  if (e.aux != n.tick_gen) return;  // superseded
  n.tick_pending = false;
  if (n.paused || !n.has_core()) return;  // resume() ticks it
  outbox& o = acquire();
  n.c->tick(now(), o);
  after_call(e.node, o, true);
}

// ---- side tables ----

std::uint32_t sim_impl::store(bytes&& b) {
  if (!free_payloads_.empty()) {
    const std::uint32_t i = free_payloads_.back();
    free_payloads_.pop_back();
    payloads_[i] = std::move(b);
    return i;
  }
  payloads_.push_back(std::move(b));
  return static_cast<std::uint32_t>(payloads_.size() - 1);
}

void sim_impl::release(std::uint32_t slot) {
  bytes().swap(payloads_[slot]);
  free_payloads_.push_back(slot);
}

void sim_impl::release_event(const ev& e) {
  if (e.kind == ev_kind::packet || e.kind == ev_kind::stream_in || e.kind == ev_kind::stream_reply)
    release(e.slot);
}

std::uint32_t sim_impl::store_action(std::function<void()> fn) {
  if (!free_actions_.empty()) {
    const std::uint32_t i = free_actions_.back();
    free_actions_.pop_back();
    actions_[i] = std::move(fn);
    return i;
  }
  actions_.push_back(std::move(fn));
  return static_cast<std::uint32_t>(actions_.size() - 1);
}

}  // namespace shoal::sim::detail
