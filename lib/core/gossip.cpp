// Dissemination (piggybacking and gossip rounds), confirmation of members
// learned second-hand, anti-entropy over streams, joining through seeds,
// graceful leave, and healing (reconnecting to the dead, reaping).
#include <algorithm>

#include "core/core_impl.hpp"
#include "core/formulas.hpp"

namespace shoal::detail {

namespace {
constexpr std::size_t max_pending_streams = 256;

duration random_below(rng& r, duration d) {
  if (d <= duration::zero()) return duration::zero();
  return duration(static_cast<duration::rep>(r.below(static_cast<std::uint64_t>(d.count()))));
}
}  // namespace

// ---- sending ----

void core_impl::queue_broadcast(const std::string& key, const wire::message& m, bool marks_leave) {
  if (quiet_merge_ && key != *self_->name) return;
  bytes enc;
  fmt_.encode_message(m, enc);
  if (!system_queue_.push(key, std::move(enc), marks_leave)) ++stats_.broadcasts_dropped;
}

std::size_t core_impl::fill_broadcasts(wire::packet_builder& b) {
  const int limit = retransmit_limit(cfg_.retransmit_mult, live_count_);
  const std::size_t mtu = cfg_.udp_buffer_size;
  const std::uint64_t packet = ++packets_filled_;  // one user item at most once per packet
  std::size_t added = 0;
  if (!user_queue_.empty()) {
    // User broadcasts get their reserved share first, so system gossip
    // never starves them; never less than the next one's size, or a
    // broadcast larger than the share would wait behind membership churn.
    const std::size_t share =
        std::max(mtu * static_cast<std::size_t>(cfg_.user_broadcast_share_percent) / 100,
                 user_queue_.front_size());
    added += user_queue_.fill(b, std::min(mtu, b.size() + share), limit, packet).added;
  }
  const auto r = system_queue_.fill(b, mtu, limit);
  added += r.added;
  leave_transmits_ += r.leave_marks;
  // ...and whatever room system updates left over.
  if (!user_queue_.empty()) added += user_queue_.fill(b, mtu, limit, packet).added;
  return added;
}

void core_impl::send(const address& to, const wire::message& primary, outbox& out,
                     const wire::message* extra) {
  outgoing_packet pkt{to, {}};
  pkt.data.reserve(cfg_.udp_buffer_size);
  wire::packet_builder b(fmt_, pkt.data, stats_.messages_out_by_type);
  b.add(primary);
  if (extra) b.add(*extra);
  fill_broadcasts(b);
  b.finish();
  ++stats_.packets_out;
  stats_.bytes_out += pkt.data.size();
  stats_.messages_out += b.count();
  out.packets.push_back(std::move(pkt));
}

void core_impl::gossip_targets(time_point now, std::size_t k,
                               std::vector<const member_entry*>& targets) {
  targets.clear();
  // Recently dead members stay targets for gossip_to_the_dead_time.
  std::vector<const member_entry*> recent_dead;
  for (const auto& name : gone_) {
    const member_entry* e = lookup(name);
    if (e && e->state == member_state::dead && now - e->since < cfg_.gossip_to_the_dead_time)
      recent_dead.push_back(e);
  }
  const std::size_t n = probe_list_.size() + recent_dead.size();
  auto pick = [&](std::size_t i) -> const member_entry* {
    return i < probe_list_.size() ? probe_list_[i] : recent_dead[i - probe_list_.size()];
  };
  if (n <= k) {
    for (std::size_t i = 0; i < n; ++i) targets.push_back(pick(i));
    return;
  }
  for (std::size_t tries = 0; targets.size() < k && tries < 4 * k; ++tries) {
    const member_entry* e = pick(static_cast<std::size_t>(rng_.below(n)));
    if (std::find(targets.begin(), targets.end(), e) == targets.end()) targets.push_back(e);
  }
}

void core_impl::on_gossip_timer(time_point now, outbox& out) {
  gossip_timer_ = {now + cfg_.gossip_interval, false};  // settle() re-arms it while needed
  send_confirm_pings(now, out);
  gossip_round(now, out);
}

void core_impl::gossip_round(time_point now, outbox& out) {
  if (system_queue_.empty() && user_queue_.empty()) return;
  std::vector<const member_entry*> targets;
  gossip_targets(now, static_cast<std::size_t>(cfg_.gossip_nodes), targets);
  for (const member_entry* t : targets) {
    outgoing_packet pkt{t->addr, {}};
    pkt.data.reserve(cfg_.udp_buffer_size);
    wire::packet_builder b(fmt_, pkt.data, stats_.messages_out_by_type);
    if (fill_broadcasts(b) == 0) break;  // queues drained
    b.finish();
    ++stats_.packets_out;
    stats_.bytes_out += pkt.data.size();
    stats_.messages_out += b.count();
    out.packets.push_back(std::move(pkt));
  }
}

// ---- no ghosts: confirm members learned second-hand before showing them,
// and members back from dead before showing them alive again ----

void core_impl::send_confirm_pings(time_point now, outbox& out) {
  const duration stale = cfg_.probe_interval * 2;
  // A confirmation ping that went unanswered is tried again while the member
  // is still up and unconfirmed (it may have been restarting); for a member
  // back from dead, an unanswered ping starts its proof over.
  std::vector<std::string> unanswered_proofs;
  bool lost = false;
  std::erase_if(side_pings_, [&](side_ping& c) {
    if (now - c.sent <= stale) return false;
    lost = lost || !c.reconnect;
    if (const member_entry* e = lookup(c.name); !c.reconnect && e && e->up()) {
      if (!e->confirmed)
        confirm_queue_.push_back(std::move(c.name));
      else if (e->held)
        unanswered_proofs.push_back(std::move(c.name));
    }
    return true;
  });
  for (const auto& name : unanswered_proofs)
    if (member_entry* e = lookup(name)) proof_ping_done(now, *e, false, out);
  // A window, not a rate: pings lost to an overloaded network or host
  // shrink it, answers grow it back (additive increase, multiplicative
  // decrease, as TCP does per round trip).
  if (confirm_window_ <= 0) confirm_window_ = cfg_.confirm_pings_per_gossip;
  if (lost) confirm_window_ = std::max(1, confirm_window_ / 2);
  const auto in_flight = std::count_if(side_pings_.begin(), side_pings_.end(),
                                       [](const side_ping& c) { return !c.reconnect; });
  int budget = confirm_window_ - static_cast<int>(in_flight);
  while (budget > 0 && !confirm_queue_.empty()) {
    std::string name = std::move(confirm_queue_.back());
    confirm_queue_.pop_back();
    member_entry* e = lookup(name);
    if (!e || !e->up() || (e->confirmed && !e->held)) continue;
    const std::uint32_t seq = ++next_seq_;
    send(e->addr, wire::ping{seq, name, *self_->name, self_->addr}, out);
    side_pings_.push_back({seq, std::move(name), now, false});
    --budget;
  }
}

// ---- anti-entropy ----

void core_impl::start_stream(const address& to, stream_kind kind, bytes data, outbox& out,
                             std::uint32_t seq) {
  if (streams_.size() >= max_pending_streams) return;
  const std::uint64_t id = next_stream_id_++;
  streams_.emplace(id, pending_stream{kind, seq});
  ++stats_.streams_started;
  count_out(kind == stream_kind::ping ? wire::msg_type::ping : wire::msg_type::push_pull);
  out.streams.push_back(stream_request{id, to, kind, std::move(data)});
}

bytes core_impl::encode_state(bool join) const {
  wire::push_pull pp;
  pp.join = join;
  pp.source = *self_->name;
  pp.members.reserve(members_.size());
  for (const auto& [name, e] : members_)
    pp.members.push_back(wire::member_state_entry{name, e.addr, e.incarnation, e.state,
                                                  e.tags.unpack(), e.protocol});
  pp.user_state = user_state_;
  return fmt_.encode_stream(std::move(pp));
}

void core_impl::merge_state(time_point now, const wire::push_pull& pp, bool regossip, outbox& out) {
  quiet_merge_ = !regossip;
  for (const auto& ms : pp.members) {
    const hand h = ms.name == pp.source ? hand::own_word : hand::hearsay;
    switch (ms.state) {
      case member_state::alive:
        on_alive(now, wire::alive{ms.incarnation, ms.name, ms.addr, ms.tags, ms.protocol}, h, out);
        break;
      case member_state::suspect:
        on_alive(now, wire::alive{ms.incarnation, ms.name, ms.addr, ms.tags, ms.protocol}, h, out);
        on_suspect(now, wire::suspect{ms.incarnation, ms.name, pp.source}, out);
        break;
      case member_state::dead:
        // Another node's verdict is hearsay here: suspect, and let the member
        // refute or the suspicion run out.
        on_suspect(now, wire::suspect{ms.incarnation, ms.name, pp.source}, out);
        break;
      case member_state::left:
        on_left(now, wire::left{ms.incarnation, ms.name}, out);
        break;
    }
  }
  quiet_merge_ = false;
  if (!pp.user_state.empty()) out.user_states.push_back(pp.user_state);
}

void core_impl::on_push_pull_timer(time_point now, outbox& out) {
  // The timer runs at the base interval and syncs with probability 1/scale:
  // the mean interval follows the cluster's size at once, also when it grows
  // from 1 to thousands while this node is joining.
  schedule(now + cfg_.push_pull_interval, timer_kind::push_pull);
  const auto scale = static_cast<std::uint64_t>(push_pull_scale(live_count_));
  if (leaving_ || probe_list_.empty() || rng_.below(scale) != 0) return;
  member_entry* peer = nullptr;
  for (int tries = 0; tries < 4 && !peer; ++tries) {
    member_entry* e = probe_list_[static_cast<std::size_t>(rng_.below(probe_list_.size()))];
    if (e->state == member_state::alive) peer = e;
  }
  if (peer) start_stream(peer->addr, stream_kind::push_pull, encode_state(false), out);
}

// ---- joining, healing ----

void core_impl::join(time_point now, std::span<const address> seeds, outbox& out) {
  if (leaving_) return;
  for (const auto& s : seeds)
    if (s != self_->addr && std::find(seeds_.begin(), seeds_.end(), s) == seeds_.end())
      seeds_.push_back(s);
  if (!started_) {
    started_ = true;
    // Random phases, so nodes started together do not probe in lockstep.
    schedule(now + random_below(rng_, cfg_.probe_interval), timer_kind::probe);
    gossip_timer_ = {now + random_below(rng_, cfg_.gossip_interval), false};
    if (cfg_.push_pull_interval > duration::zero())
      schedule(now + cfg_.push_pull_interval / 2 + random_below(rng_, cfg_.push_pull_interval),
               timer_kind::push_pull);
    if (cfg_.reconnect_interval > duration::zero())
      schedule(now + random_below(rng_, cfg_.reconnect_interval) + cfg_.reconnect_interval / 2,
               timer_kind::reconnect);
    schedule(now + cfg_.seed_retry_interval, timer_kind::seed_retry);
    maintenance_timer_ = {now + maintenance_interval, false};
    emit(event_type::member_joined, *self_, out);
  }
  for (const auto& s : seeds)
    if (s != self_->addr) start_stream(s, stream_kind::join, encode_state(true), out);
}

void core_impl::adopt_view(time_point now, std::span<const member> view) {
  outbox unused;
  quiet_merge_ = true;
  quiet_events_ = true;
  members_.reserve(members_.size() + view.size());
  for (const auto& m : view) {
    if (m.name.empty() || m.name.size() > cfg_.max_name_length) continue;
    switch (m.state) {
      case member_state::alive:
      case member_state::suspect:
        on_alive(now, wire::alive{m.incarnation, m.name, m.addr, m.tags, m.protocol},
                 hand::own_word, unused);
        break;
      case member_state::dead:
        on_dead(now, wire::dead{m.incarnation, m.name, *self_->name}, unused);
        break;
      case member_state::left:
        on_left(now, wire::left{m.incarnation, m.name}, unused);
        break;
    }
  }
  quiet_merge_ = false;
  quiet_events_ = false;
}

void core_impl::on_seed_retry(time_point now, outbox& out) {
  schedule(now + cfg_.seed_retry_interval, timer_kind::seed_retry);
  if (leaving_ || live_count_ > 1 || seeds_.empty()) return;
  const bytes state = encode_state(true);
  for (const auto& s : seeds_) start_stream(s, stream_kind::join, state, out);
}

void core_impl::on_reconnect_timer(time_point now, outbox& out) {
  schedule(now + cfg_.reconnect_interval, timer_kind::reconnect);
  if (leaving_ || gone_.empty()) return;
  // Ping one random dead member (not one that left on purpose). If it answers
  // it is alive behind a healed partition, and on_ack() starts a push-pull
  // that merges the two views. A ping first: syncing the full state with
  // members that are really gone would cost O(N) bytes every interval.
  for (int tries = 0; tries < 4; ++tries) {
    const std::string& name = gone_[static_cast<std::size_t>(rng_.below(gone_.size()))];
    const member_entry* e = lookup(name);
    if (e && e->state == member_state::dead) {
      const std::uint32_t seq = ++next_seq_;
      send(e->addr, wire::ping{seq, name, *self_->name, self_->addr}, out);
      side_pings_.push_back({seq, name, now, true});
      return;
    }
  }
}

void core_impl::on_maintenance(time_point now, outbox& out) {
  maintenance_timer_ = {now + maintenance_interval, false};  // settle() re-arms it while needed
  reap(now, out);
  release_stable(now, out);
}

// ---- leaving and local changes ----

void core_impl::leave(time_point now, duration timeout, outbox& out) {
  if (leaving_) return;
  leaving_ = true;
  leave_deadline_ = now + timeout;
  leave_needed_ =
      std::min<std::size_t>(static_cast<std::size_t>(cfg_.leave_min_transmits), live_count_ - 1);
  set_state(*self_, member_state::left, self_->incarnation, now);
  queue_broadcast(*self_->name, leave_message(), true);
  emit(event_type::member_left, *self_, out);
  gossip_round(now, out);  // spread the departure now, not at the next round
}

bool core_impl::leave_done(time_point now) const {
  return leaving_ && (leave_transmits_ >= leave_needed_ || now >= leave_deadline_);
}

std::error_code core_impl::set_tags(time_point now, tag_map tags, outbox& out) {
  if (leaving_) return errc::not_running;
  if (!valid_tags(tags)) return errc::invalid_argument;
  set_metadata(*self_, tags, self_->protocol);
  set_state(*self_, member_state::alive, self_->incarnation + 1, now);
  queue_broadcast(*self_->name, alive_msg(*self_));
  emit(event_type::member_updated, *self_, out);
  return {};
}

}  // namespace shoal::detail
