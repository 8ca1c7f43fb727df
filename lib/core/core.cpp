// shoal::core: the facade and the dispatcher. Inputs are decoded here and
// handed to members.cpp (claims), probe.cpp (failure detection) and gossip.cpp
// (dissemination, anti-entropy, join, leave, healing).
#include <shoal/core.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "core/core_impl.hpp"
#include "core/formulas.hpp"

namespace shoal {
namespace detail {

namespace {
wire::limits limits_from(const config& c) {
  wire::limits l;
  l.max_packet_bytes = std::max<std::size_t>(c.max_push_pull_bytes, 65536);
  l.max_name_length = c.max_name_length;
  l.max_tag_bytes = c.max_tag_bytes;
  l.max_tags = c.max_tags;
  l.max_payload_bytes = std::max<std::size_t>(c.max_user_broadcast_bytes, 1u << 20);
  l.max_members = c.max_members;
  // Every message takes at least one byte, so a packet that fits
  // udp_buffer_size never holds more messages than that: a peer with the
  // same config never has a packet refused for its count.
  l.max_messages = std::max<std::size_t>(l.max_messages, c.udp_buffer_size);
  return l;
}
}  // namespace

core_impl::core_impl(config cfg, std::uint64_t seed)
    : cfg_(std::move(cfg)),
      rng_(seed),
      awareness_(cfg_.awareness_max_multiplier),
      fmt_(wire::shoal_format()),
      limits_(limits_from(cfg_)),
      system_queue_(cfg_.max_queued_broadcasts),
      user_queue_(cfg_.max_queued_user_broadcasts) {
  auto [it, inserted] = members_.try_emplace(cfg_.name);
  self_ = &it->second;
  self_->name = &it->first;
  self_->addr = cfg_.advertise;
  self_->incarnation = cfg_.initial_incarnation;
  self_->tags.assign(cfg_.tags);
  self_->protocol = cfg_.protocol;
  self_->confirmed = true;
  live_count_ = 1;
  confirmed_by_state_[0] = 1;
  digest_add(*self_);
}

void core_impl::schedule(time_point at, timer_kind kind, std::uint64_t token, std::string name) {
  timers_.push_back(timer{at, timer_order_++, kind, token, std::move(name)});
  std::push_heap(timers_.begin(), timers_.end(), timer_later{});
  // Stale timers leave the heap only when they reach its top; timers that
  // inputs arm (suspicions, relayed pings) could pile up behind a far one
  // under a flood. When the heap doubled since it was last swept, sweep it:
  // it stays within twice the live timers, at amortized O(1) per timer.
  if (timers_.size() > 64 && timers_.size() > 2 * swept_size_) sweep_timers();
}

bool core_impl::stale(const timer& t) const {
  switch (t.kind) {
    case timer_kind::probe_timeout:
      return !probe_.active || probe_.acked || probe_.seq != t.token;
    case timer_kind::relay_timeout:
      return !relays_.contains(static_cast<std::uint32_t>(t.token));
    case timer_kind::suspicion: {
      const member_entry* e = lookup(t.name);
      return !e || e->state != member_state::suspect || !e->susp || e->susp->token() != t.token;
    }
    default:
      return false;
  }
}

void core_impl::sweep_timers() {
  std::erase_if(timers_, [this](const timer& t) { return stale(t); });
  std::make_heap(timers_.begin(), timers_.end(), timer_later{});
  swept_size_ = timers_.size();
}

void core_impl::drop_stale_timers() const {
  while (!timers_.empty() && stale(timers_.front())) {
    std::pop_heap(timers_.begin(), timers_.end(), timer_later{});
    timers_.pop_back();
  }
}

time_point core_impl::next_deadline() const {
  drop_stale_timers();
  return timers_.empty() ? time_point::max() : timers_.front().at;
}

void core_impl::wake(lazy_timer& t, timer_kind kind) {
  if (t.armed) return;
  // Idle for at least an interval: run now (news spreads without waiting for
  // a phase); otherwise at the next interval, so it never runs more often.
  const time_point at = std::max(t.next, last_now_);
  t.next = at;
  t.armed = true;
  schedule(at, kind);
}

bool core_impl::gossip_pending() const noexcept {
  return !system_queue_.empty() || !user_queue_.empty() || !confirm_queue_.empty() ||
         !side_pings_.empty();
}

void core_impl::settle() {
  if (!started_) return;
  if (gossip_pending()) wake(gossip_timer_, timer_kind::gossip);
  if (!gone_.empty() || !held_.empty()) wake(maintenance_timer_, timer_kind::maintenance);
}

void core_impl::tick(time_point now, outbox& out) {
  saw(now);
  settle();
  while (!timers_.empty() && timers_.front().at <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), timer_later{});
    timer t = std::move(timers_.back());
    timers_.pop_back();
    switch (t.kind) {
      case timer_kind::probe:
        on_probe_timer(now, out);
        break;
      case timer_kind::probe_timeout:
        start_indirect_probes(now, t.token, out);
        break;
      case timer_kind::gossip:
        on_gossip_timer(now, out);
        break;
      case timer_kind::push_pull:
        on_push_pull_timer(now, out);
        break;
      case timer_kind::reconnect:
        on_reconnect_timer(now, out);
        break;
      case timer_kind::seed_retry:
        on_seed_retry(now, out);
        break;
      case timer_kind::maintenance:
        on_maintenance(now, out);
        break;
      case timer_kind::relay_timeout:
        on_relay_timeout(t.token, out);
        break;
      case timer_kind::suspicion:
        on_suspicion_timeout(now, t, out);
        break;
    }
    settle();  // a timer's work may have queued gossip due within this tick
  }
}

void core_impl::on_suspicion_timeout(time_point now, timer& t, outbox& out) {
  if (stale(t)) return;  // refuted, confirmed dead, or a newer suspicion
  member_entry& e = *lookup(t.name);
  const time_point due = e.susp->deadline();
  if (due > now) {  // confirmations moved it later than it was armed for
    schedule(due, timer_kind::suspicion, t.token, std::move(t.name));
    return;
  }
  // One accuser is not enough where others could confirm (Lifeguard expects
  // k of them): a member whose own network drops what it sends would
  // otherwise kill whoever it alone failed to reach, everywhere (a dead
  // overrides an alive at the same incarnation). Two refused paths are
  // evidence enough on their own. Otherwise wait for a confirmation; the
  // suspect may still hear of it and refute.
  if (e.susp->confirmations() == 0 && e.susp->expected() > 0 && !e.susp->refusal_due()) {
    schedule(now + cfg_.probe_interval, timer_kind::suspicion, t.token, std::move(t.name));
    return;
  }
  if (e.susp->refusal_due()) ++stats_.refusal_deaths;
  on_dead(now, wire::dead{e.incarnation, t.name, *self_->name}, out);
}

void core_impl::warn_invalid(time_point now, const address& from, std::error_code ec) {
  // At most one line per 10 s; the counters keep the exact numbers.
  if (!cfg_.logger || !invalid_warnings_.allow(now)) return;
  const std::uint64_t dropped = invalid_warnings_.take_held_back() + 1;
  if (!cfg_.logger->should_log(spdlog::level::warn)) return;
  cfg_.logger->warn("dropped invalid input from={} reason={} dropped_since_last_warning={}",
                    from.to_string(), ec.message(), dropped);
}

void core_impl::count_invalid(std::error_code ec) {
  // The one mapping from the wire's failure reasons to the counters.
  switch (static_cast<errc>(ec.value())) {
    case errc::truncated:
      ++stats_.invalid_truncated;
      break;
    case errc::bad_magic:
      ++stats_.invalid_magic;
      break;
    case errc::unsupported_version:
      ++stats_.invalid_version;
      break;
    case errc::unsupported_flags:
      ++stats_.invalid_flags;
      break;
    case errc::too_large:
      ++stats_.invalid_too_large;
      break;
    case errc::field_too_long:
      ++stats_.invalid_field;
      break;
    default:  // malformed, too_many_messages, and anything else
      ++stats_.invalid_malformed;
      break;
  }
}

void core_impl::count_in(const std::vector<wire::message>& msgs, std::size_t unknown) {
  for (const auto& m : msgs)
    ++stats_.messages_in_by_type[static_cast<std::size_t>(wire::type_of(m))];
  stats_.messages_in_by_type[0] += unknown;
}

void core_impl::handle_packet(time_point now, const address& from,
                              std::span<const std::uint8_t> data, outbox& out) {
  ++stats_.packets_in;
  stats_.bytes_in += data.size();
  if (data.size() > cfg_.udp_buffer_size + 512) {  // larger than any peer of ours sends
    ++stats_.invalid_too_large;
    warn_invalid(now, from, errc::too_large);
    return;
  }
  std::size_t unknown = 0;
  if (auto ec = fmt_.decode_packet(data, limits_, scratch_, unknown)) {
    count_invalid(ec);
    warn_invalid(now, from, ec);
    return;
  }
  stats_.invalid_unknown_type += unknown;
  stats_.messages_in += scratch_.size();
  count_in(scratch_, unknown);
  if (leaving_ && leave_done(now)) return;
  // Handle from a local copy: handlers may decode nested data into scratch_.
  std::vector<wire::message> msgs;
  msgs.swap(scratch_);
  packet_source_ = &from;
  for (const auto& m : msgs) {
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, wire::ping>)
            on_ping(now, from, v, out);
          else if constexpr (std::is_same_v<T, wire::indirect_ping>)
            on_indirect_ping(now, from, v, out);
          else if constexpr (std::is_same_v<T, wire::ack>)
            on_ack(now, from, v, out);
          else if constexpr (std::is_same_v<T, wire::nack>)
            on_nack(v);
          else if constexpr (std::is_same_v<T, wire::suspect>)
            on_suspect(now, v, out);
          else if constexpr (std::is_same_v<T, wire::alive>)
            on_alive(now, v, hand::own_word, out);
          else if constexpr (std::is_same_v<T, wire::dead>)
            on_dead(now, v, out);
          else if constexpr (std::is_same_v<T, wire::left>)
            on_left(now, v, out);
          else if constexpr (std::is_same_v<T, wire::user>)
            out.user_messages.push_back({from, v.payload});
          else if constexpr (std::is_same_v<T, wire::broadcast>)
            on_broadcast(from, v, out);
          // push_pull only travels over streams
        },
        m);
  }
  packet_source_ = nullptr;
  msgs.swap(scratch_);
}

bool core_impl::decode_stream(std::span<const std::uint8_t> data,
                              std::vector<wire::message>& msgs) {
  if (data.size() > cfg_.max_push_pull_bytes) {
    ++stats_.invalid_too_large;
    return false;
  }
  // The runtime hands over whole bodies, so a body still incomplete here was
  // cut short.
  std::size_t unknown = 0;
  const auto r = fmt_.decode_stream(data, limits_, msgs, unknown);
  if (r.status != wire::stream_status::complete || msgs.empty()) {
    std::error_code why = r.error ? r.error : make_error_code(errc::malformed);
    if (r.status == wire::stream_status::need_more) why = errc::truncated;
    count_invalid(why);
    return false;
  }
  count_in(msgs, unknown);
  return true;
}

bytes core_impl::handle_stream(time_point now, const address& /*from*/,
                               std::span<const std::uint8_t> data, outbox& out) {
  std::vector<wire::message> msgs;
  if (!decode_stream(data, msgs)) return {};
  if (const auto* pp = std::get_if<wire::push_pull>(&msgs.front())) {
    ++stats_.push_pulls;
    merge_state(now, *pp, true, out);
    count_out(wire::msg_type::push_pull);
    return encode_state(pp->join);
  }
  if (const auto* p = std::get_if<wire::ping>(&msgs.front())) {
    if (p->target != *self_->name) return {};
    count_out(wire::msg_type::ack);
    return fmt_.encode_stream(wire::ack{p->seq, digest()});
  }
  return {};
}

void core_impl::handle_stream_reply(time_point now, std::uint64_t id,
                                    std::span<const std::uint8_t> data, outbox& out) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  const pending_stream ps = it->second;
  streams_.erase(it);
  std::vector<wire::message> msgs;
  if (!decode_stream(data, msgs)) return;
  if (const auto* pp = std::get_if<wire::push_pull>(&msgs.front())) {
    if (ps.kind == stream_kind::ping) return;
    // A joiner learns the cluster's state; re-gossiping all of it back to the
    // cluster, which already has it, would only waste every member's queue.
    merge_state(now, *pp, ps.kind != stream_kind::join, out);
    return;
  }
  if (const auto* a = std::get_if<wire::ack>(&msgs.front())) {
    // The TCP ping of the probe still running: a late reply to an earlier
    // probe's must not vouch for this one's target.
    if (ps.kind == stream_kind::ping && probe_.active && a->seq == ps.seq && ps.seq == probe_.seq)
      probe_.acked = true;
  }
}

void core_impl::stream_failed(time_point, std::uint64_t id, outbox&) {
  if (streams_.erase(id) > 0) ++stats_.streams_failed;
}

std::error_code core_impl::broadcast(bytes payload) {
  if (payload.empty() || payload.size() > cfg_.max_user_broadcast_bytes)
    return errc::invalid_argument;
  if (user_queue_.size() >= cfg_.max_queued_user_broadcasts) {
    ++stats_.user_broadcasts_dropped;
    return errc::queue_full;
  }
  const wire::broadcast m{rng_.next(), *self_->name, std::move(payload)};
  remember_broadcast(m.id);
  bytes enc;
  fmt_.encode_message(m, enc);
  user_queue_.push({}, std::move(enc));
  return {};
}

bool core_impl::remember_broadcast(std::uint64_t id) {
  if (!broadcasts_seen_.insert(id).second) return false;
  if (broadcasts_order_.size() < max_remembered_broadcasts) {
    broadcasts_order_.push_back(id);
  } else {
    broadcasts_seen_.erase(broadcasts_order_[broadcasts_next_]);
    broadcasts_order_[broadcasts_next_] = id;
    broadcasts_next_ = (broadcasts_next_ + 1) % max_remembered_broadcasts;
  }
  return true;
}

void core_impl::on_broadcast(const address& from, const wire::broadcast& m, outbox& out) {
  if (m.payload.empty() || m.payload.size() > cfg_.max_user_broadcast_bytes) {
    ++stats_.invalid_field;
    return;
  }
  if (!remember_broadcast(m.id)) return;  // delivered already
  const member_entry* origin = lookup(m.origin);
  out.user_messages.push_back({origin ? origin->addr : from, m.payload});
  ++stats_.broadcasts_delivered;
  // Passed on like a membership update: retransmit_mult * log10(N+1) times.
  if (user_queue_.size() >= cfg_.max_queued_user_broadcasts) {
    ++stats_.user_broadcasts_dropped;
    return;
  }
  bytes enc;
  fmt_.encode_message(m, enc);
  user_queue_.push({}, std::move(enc));
}

std::error_code core_impl::send_to(const std::string& name, bytes payload, outbox& out) {
  if (!started_ || leaving_) return errc::not_running;
  if (payload.empty() || payload.size() > cfg_.max_user_broadcast_bytes)
    return errc::invalid_argument;
  const member_entry* e = lookup(name);
  if (!e || !e->confirmed) return errc::unknown_member;
  if (!e->up()) return errc::member_down;
  send(e->addr, wire::user{std::move(payload)}, out);
  return {};
}

}  // namespace detail

// ---- the public facade ----

core::core(config cfg, std::uint64_t seed) {
  if (auto err = cfg.validate()) throw std::invalid_argument("shoal::config: " + *err);
  impl_ = std::make_unique<detail::core_impl>(std::move(cfg), seed);
}
core::~core() = default;
core::core(core&&) noexcept = default;
core& core::operator=(core&&) noexcept = default;

void core::join(time_point now, std::span<const address> seeds, outbox& out) {
  impl_->saw(now);
  impl_->join(now, seeds, out);
  impl_->settle();
}
void core::adopt_view(time_point now, std::span<const member> view) {
  impl_->saw(now);
  impl_->adopt_view(now, view);
  impl_->settle();
}
void core::handle_packet(time_point now, const address& from, std::span<const std::uint8_t> data,
                         outbox& out) {
  impl_->saw(now);
  impl_->handle_packet(now, from, data, out);
  impl_->settle();
}
bytes core::handle_stream(time_point now, const address& from, std::span<const std::uint8_t> data,
                          outbox& out) {
  impl_->saw(now);
  bytes reply = impl_->handle_stream(now, from, data, out);
  impl_->settle();
  return reply;
}
void core::handle_stream_reply(time_point now, std::uint64_t id, std::span<const std::uint8_t> data,
                               outbox& out) {
  impl_->saw(now);
  impl_->handle_stream_reply(now, id, data, out);
  impl_->settle();
}
void core::stream_failed(time_point now, std::uint64_t id, outbox& out) {
  impl_->saw(now);
  impl_->stream_failed(now, id, out);
  impl_->settle();
}
void core::handle_unreachable(time_point now, const address& to, outbox& out) {
  impl_->saw(now);
  impl_->on_unreachable(now, to, out);
  impl_->settle();
}
void core::tick(time_point now, outbox& out) {
  impl_->tick(now, out);
}
time_point core::next_deadline() const {
  return impl_->next_deadline();
}
void core::leave(time_point now, duration timeout, outbox& out) {
  impl_->saw(now);
  impl_->leave(now, timeout, out);
  impl_->settle();
}
bool core::leave_done(time_point now) const {
  return impl_->leave_done(now);
}
std::error_code core::set_tags(time_point now, tag_map tags, outbox& out) {
  impl_->saw(now);
  const auto ec = impl_->set_tags(now, std::move(tags), out);
  impl_->settle();
  return ec;
}
std::error_code core::broadcast(bytes payload) {
  const auto ec = impl_->broadcast(std::move(payload));
  impl_->settle();
  return ec;
}
std::error_code core::send_to(const std::string& name, bytes payload, outbox& out) {
  const auto ec = impl_->send_to(name, std::move(payload), out);
  impl_->settle();
  return ec;
}
std::error_code core::force_leave(time_point now, const std::string& name, outbox& out) {
  impl_->saw(now);
  const auto ec = impl_->force_leave(now, name, out);
  impl_->settle();
  return ec;
}
std::error_code core::prune(time_point now, const std::string& name, outbox& out) {
  impl_->saw(now);
  const auto ec = impl_->prune(name, out);
  impl_->settle();
  return ec;
}
void core::set_user_state(bytes state) {
  impl_->set_user_state(std::move(state));
}
std::vector<member> core::members() const {
  return impl_->members();
}
std::optional<member> core::find(const std::string& name) const {
  return impl_->find(name);
}
member core::local_member() const {
  return impl_->local_member();
}
std::size_t core::count(member_state s) const {
  return impl_->count(s);
}
std::uint64_t core::digest() const {
  return impl_->digest();
}
int core::health_score() const {
  return impl_->health_score();
}
const core_stats& core::stats() const {
  return impl_->stats();
}
const config& core::cfg() const {
  return impl_->cfg();
}
std::size_t core::memory_estimate() const {
  return impl_->memory_estimate();
}

}  // namespace shoal
