// The member table and the state machine: every claim (alive, suspect, dead,
// left) goes through detail::judge() and then set_state(), which keeps the
// counters, the digest, the probe list and the list of the departed in step.
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include <spdlog/spdlog.h>

#include "core/core_impl.hpp"
#include "core/formulas.hpp"

namespace shoal::detail {

member_entry* core_impl::lookup(const std::string& name) {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : &it->second;
}

const member_entry* core_impl::lookup(const std::string& name) const {
  auto it = members_.find(name);
  return it == members_.end() ? nullptr : &it->second;
}

member core_impl::snapshot(const member_entry& e) const {
  member m{*e.name, e.addr, e.incarnation, e.shown(), e.tags.unpack(), e.protocol};
  m.damped = e.held && e.damped;
  return m;
}

std::vector<member> core_impl::members() const {
  std::vector<member> v;
  v.reserve(members_.size());
  for (const auto& [name, e] : members_)
    if (e.confirmed) v.push_back(snapshot(e));
  std::sort(v.begin(), v.end(), [](const member& a, const member& b) { return a.name < b.name; });
  return v;
}

std::optional<member> core_impl::find(const std::string& name) const {
  const member_entry* e = lookup(name);
  if (!e || !e->confirmed) return std::nullopt;
  return snapshot(*e);
}

std::size_t core_impl::count(member_state s) const {
  return confirmed_by_state_[static_cast<std::size_t>(s)];
}

std::uint64_t core_impl::entry_hash(const member_entry& e, int level) const noexcept {
  std::uint64_t h = stable_hash(e.name->data(), e.name->size());
  std::uint64_t x =
      h ^ (e.incarnation * 0x9e3779b97f4a7c15ULL) ^ (static_cast<std::uint64_t>(e.state) << 56);
  if (level >= 2) x ^= mix64(e.tags.hash() ^ (std::uint64_t{e.protocol} << 40));
  return rng::splitmix(x);
}

void core_impl::digest_add(const member_entry& e) noexcept {
  digest_ += entry_hash(e, 2);
  digest_v1_ += entry_hash(e, 1);
}

void core_impl::digest_remove(const member_entry& e) noexcept {
  digest_ -= entry_hash(e, 2);
  digest_v1_ -= entry_hash(e, 1);
}

void core_impl::set_metadata(member_entry& e, const tag_map& tags, std::uint8_t protocol) {
  const bool counted = e.up();  // the digests cover members that are up
  if (counted) digest_remove(e);
  if (!e.tags.equals(tags)) e.tags.assign(tags);
  e.protocol = protocol;
  if (counted) digest_add(e);
}

std::size_t core_impl::memory_estimate() const {
  // One hash node per member (key, entry, next pointer, cached hash, malloc
  // header), one bucket pointer, one probe-list slot, heap-held names and tags.
  constexpr std::size_t node = sizeof(std::pair<const std::string, member_entry>) + 16 + 16;
  std::size_t total =
      members_.bucket_count() * sizeof(void*) + probe_list_.capacity() * sizeof(member_entry*);
  for (const auto& [name, e] : members_) {
    total += node;
    if (name.capacity() > 15) total += name.capacity() + 1;
    total += e.tags.heap_bytes();
    if (e.susp) total += sizeof(suspicion) + 16;
  }
  // The timer heap: what a flood of accusations could grow.
  total += timers_.capacity() * sizeof(timer);
  for (const timer& t : timers_)
    if (t.name.capacity() > 15) total += t.name.capacity() + 1;
  return total;
}

bool core_impl::valid_tags(const tag_map& tags) const {
  return tags.size() <= cfg_.max_tags && tag_bytes(tags) <= cfg_.max_tag_bytes;
}

wire::alive core_impl::alive_msg(const member_entry& e) const {
  return wire::alive{e.incarnation, *e.name, e.addr, e.tags.unpack(), e.protocol};
}

void core_impl::emit(event_type t, const member_entry& e, outbox& out) {
  if (quiet_events_) return;
  if (cfg_.logger && cfg_.logger->should_log(spdlog::level::info))
    cfg_.logger->info("{} member={} inc={} addr={}", to_string(t), *e.name, e.incarnation,
                      e.addr.to_string());
  out.events.push_back(event{t, snapshot(e)});
}

void core_impl::set_state(member_entry& e, member_state s, std::uint64_t inc, time_point now) {
  const bool was_up = e.up();
  if (was_up) digest_remove(e);
  count_shown(e, -1);
  e.state = s;
  e.incarnation = inc;
  e.since = now;
  count_shown(e, +1);
  const bool is_up = e.up();
  if (is_up) digest_add(e);
  if (s != member_state::suspect) e.susp.reset();
  if (&e == self_) return;
  if (was_up && !is_up) {
    --live_count_;
    probe_list_remove(e);
    if (!e.in_gone) {
      e.in_gone = true;
      gone_.push_back(*e.name);
    }
  } else if (!was_up && is_up) {
    ++live_count_;
    probe_list_add(e);
  }
}

void core_impl::confirm(member_entry& e, outbox& out) {
  if (e.confirmed) return;
  e.confirmed = true;
  count_shown(e, +1);
  if (e.up()) emit(event_type::member_joined, e, out);
}

void core_impl::count_shown(const member_entry& e, int delta) noexcept {
  if (!e.confirmed) return;
  std::size_t& n = confirmed_by_state_[static_cast<std::size_t>(e.shown())];
  n = delta > 0 ? n + 1 : n - 1;
}

// ---- returns: a member back from dead proves it is reachable, and one that
// keeps failing is damped (config.hpp, "stable views") ----

double core_impl::penalty_now(const member_entry& e, time_point now) const noexcept {
  if (e.penalty <= 0 || cfg_.flap_half_life <= duration::zero()) return 0;
  const double halves = std::chrono::duration<double>(now - e.penalty_at) /
                        std::chrono::duration<double>(cfg_.flap_half_life);
  return e.penalty * std::exp2(-std::max(0.0, halves));
}

void core_impl::hold(time_point now, member_entry& e) {
  (void)now;
  count_shown(e, -1);
  e.held = true;
  e.proof = 0;
  count_shown(e, +1);
  held_.push_back(*e.name);
  if (cfg_.return_proof_pings > 0 && confirm_queue_.size() < cfg_.max_members)
    confirm_queue_.push_back(*e.name);
}

void core_impl::release(member_entry& e, outbox& out) {
  count_shown(e, -1);
  e.held = false;
  e.damped = false;
  e.proof = 0;
  count_shown(e, +1);
  emit(event_type::member_joined, e, out);
}

void core_impl::proof_ping_done(time_point now, member_entry& e, bool answered, outbox& out) {
  if (!e.held) return;
  const auto needed = static_cast<std::uint8_t>(cfg_.return_proof_pings);
  if (!answered) {
    e.proof = 0;  // in a row: start over
  } else if (e.proof < needed) {
    ++e.proof;
  }
  if (e.proof >= needed) {
    if (!e.damped || (e.state == member_state::alive && now - e.since >= cfg_.flap_stable_time))
      release(e, out);
    return;  // else release_stable() lets it through once it stayed up long enough
  }
  if (confirm_queue_.size() < cfg_.max_members) confirm_queue_.push_back(*e.name);
}

void core_impl::release_stable(time_point now, outbox& out) {
  std::erase_if(held_, [&](const std::string& name) {
    member_entry* e = lookup(name);
    if (!e || !e->held) return true;
    if (e->proof < cfg_.return_proof_pings) return false;
    if (e->damped && (e->state != member_state::alive || now - e->since < cfg_.flap_stable_time))
      return false;
    release(*e, out);
    return true;
  });
}

// ---- probe list: shuffled round robin that survives joins and removals ----

void core_impl::probe_list_add(member_entry& e) {
  if (&e == self_ || e.probe_index != member_entry::no_index) return;
  probe_list_.push_back(&e);
  std::size_t last = probe_list_.size() - 1;
  // A random slot among those not yet probed this round keeps rounds fair.
  const std::size_t span = last - std::min(probe_pos_, last) + 1;
  const std::size_t j = std::min(probe_pos_, last) + static_cast<std::size_t>(rng_.below(span));
  std::swap(probe_list_[j], probe_list_[last]);
  probe_list_[j]->probe_index = static_cast<std::uint32_t>(j);
  probe_list_[last]->probe_index = static_cast<std::uint32_t>(last);
}

void core_impl::probe_list_remove(member_entry& e) {
  if (e.probe_index == member_entry::no_index) return;
  std::size_t i = e.probe_index;
  auto place = [&](std::size_t k) { probe_list_[k]->probe_index = static_cast<std::uint32_t>(k); };
  if (i < probe_pos_) {
    // Keep the probed prefix intact: swap with its last element and shrink it.
    std::swap(probe_list_[i], probe_list_[probe_pos_ - 1]);
    place(i);
    i = --probe_pos_;
  }
  std::swap(probe_list_[i], probe_list_.back());
  place(i);
  probe_list_.pop_back();
  e.probe_index = member_entry::no_index;
}

// ---- claims ----

verdict core_impl::judge_claim(const member_entry* e, claim c, std::uint64_t inc) {
  if (e && !reachable_claim(e->incarnation, inc)) ++stats_.claims_out_of_reach;
  return judge(e ? std::optional(e->state) : std::nullopt, e ? e->incarnation : 0, c, inc);
}

void core_impl::refute(time_point now, std::uint64_t claimed, outbox& out) {
  set_state(*self_, member_state::alive, refutation_incarnation(claimed), now);
  ++stats_.refutations;
  awareness_.apply(1);
  queue_broadcast(*self_->name, alive_msg(*self_));
  (void)out;
}

void core_impl::on_accused(time_point now, std::uint64_t claimed, outbox& out) {
  if (leaving_) return;
  if (claimed < self_->incarnation) {
    answer_stale(now, out);
    return;
  }
  if (!reachable_claim(self_->incarnation, claimed)) {  // forged: everyone else ignores it too
    ++stats_.claims_out_of_reach;
    return;
  }
  update_bench(now);
  if (benched_) {
    ++stats_.refutations_withheld;
    return;
  }
  refute(now, claimed, out);
  recent_refutations_.push_back(now);
  const auto limit = std::max<std::size_t>(bench_accusations,
                                           static_cast<std::size_t>(cfg_.unhealthy_refute_limit));
  while (recent_refutations_.size() > limit) recent_refutations_.erase(recent_refutations_.begin());
}

void core_impl::answer_stale(time_point now, outbox& out) {
  // Whoever accuses us below our incarnation missed our refutation (its
  // retransmissions are over, and it would otherwise let the suspicion run
  // out): tell the packet's sender straight away. At most a few a second, so
  // forged accusations cannot turn us into a reflector.
  if (!packet_source_ || leaving_) return;
  if (now - stale_window_ >= std::chrono::seconds(1)) {
    stale_window_ = now;
    stale_in_window_ = 0;
  }
  if (++stale_in_window_ > max_stale_answers_per_second) return;
  ++stats_.stale_answers;
  send(*packet_source_, alive_msg(*self_), out);
}

void core_impl::record_own_probe(time_point now, bool failed) {
  own_probes_ =
      static_cast<std::uint16_t>((static_cast<unsigned>(own_probes_) << 1u) | (failed ? 1u : 0u));
  update_bench(now);
}

void core_impl::update_bench(time_point now) {
  const int top = cfg_.awareness_max_multiplier - 1;
  if (cfg_.unhealthy_refute_limit <= 0 || top < 1) {
    benched_ = false;
    return;
  }
  if (benched_) {
    // Back in the game once our own probes succeed again: every one of the
    // last 16 (a member losing most of what it sends gets there about once
    // in 5,000 tries; a healthy one at once).
    if (own_probes_ == 0) {
      benched_ = false;
      recent_refutations_.clear();
    }
    return;
  }
  // Only our own probes can show our network is broken: accusations (and
  // the refutations they cause) are what others claim, and a forger can send
  // as many as it likes. A probe counts as ours failing when nothing came
  // back over UDP: in the simulator about one in 23 under uniform 20% loss,
  // one in three for a member losing 80% of what it sends. We bench when the
  // cluster keeps accusing us (we are flapping, not just slow) and our
  // probes agree (bench_tiers). The 16-probe tiers are what makes this both
  // quick and safe: a healthy member under 20% loss reaches 5 silent of 16
  // about once in 2,500 windows, a lossy one in most.
  const auto limit = static_cast<std::size_t>(cfg_.unhealthy_refute_limit);
  bool own_evidence = false;
  for (const bench_tier& t : bench_tiers) {
    const unsigned window = own_probes_ & ((1u << t.window) - 1u);
    own_evidence = own_evidence || (std::popcount(window) >= t.failures &&
                                    refuted_recently(t.accusations ? t.accusations : limit, now));
  }
  if (!own_evidence) return;
  benched_ = true;
  ++stats_.self_benched;
}

bool core_impl::refuted_recently(std::size_t n, time_point now) const {
  if (n == 0 || recent_refutations_.size() < n) return false;
  return now - recent_refutations_[recent_refutations_.size() - n] <= cfg_.unhealthy_refute_window;
}

duration core_impl::probe_scaled(duration d, time_point now) const {
  const duration stretched = awareness_.scale(d);
  if (benched_ || cfg_.unhealthy_refute_limit <= 0 ||
      !refuted_recently(static_cast<std::size_t>(cfg_.unhealthy_refute_limit), now))
    return stretched;
  return std::min(stretched, d * accused_probe_multiplier);
}

void core_impl::on_alive(time_point now, const wire::alive& m, hand h, outbox& out) {
  if (m.node == *self_->name) {
    if (leaving_) return;
    if (!reachable_claim(self_->incarnation, m.incarnation)) {
      ++stats_.claims_out_of_reach;
      return;
    }
    if (must_refute(m)) refute(now, m.incarnation, out);
    return;
  }
  if (m.node.empty() || m.addr.port() == 0 || !valid_tags(m.tags)) {
    ++stats_.members_rejected;
    return;
  }
  member_entry* e = lookup(m.node);
  const verdict v = judge_claim(e, claim::alive, m.incarnation);
  if (v != verdict::apply) {
    if (e && h == hand::own_word && e->up() && e->addr == m.addr) confirm(*e, out);
    return;
  }
  if (!e) {
    if (members_.size() >= cfg_.max_members) {
      ++stats_.members_rejected;
      return;
    }
    auto [it, inserted] = members_.try_emplace(m.node);
    e = &it->second;
    e->name = &it->first;
    e->state = member_state::left;  // "down" until set_state below brings it up
    e->addr = m.addr;
    e->tags.assign(m.tags);
    e->protocol = m.protocol;
    set_state(*e, member_state::alive, m.incarnation, now);
    if (h == hand::own_word)
      confirm(*e, out);
    else if (confirm_queue_.size() < cfg_.max_members)
      confirm_queue_.push_back(m.node);
    queue_broadcast(m.node, m);
    return;
  }
  if (!may_move(*e, m.addr)) return;  // a name claimed from two addresses
  const member_state old = e->state;
  const bool changed = e->addr != m.addr || !e->tags.equals(m.tags);
  e->addr = m.addr;
  set_metadata(*e, m.tags, m.protocol);
  set_state(*e, member_state::alive, m.incarnation, now);
  if (e->confirmed) {
    const bool proof = cfg_.return_proof_pings > 0;
    if (old == member_state::dead && (proof || e->damped) && !quiet_events_) {
      hold(now, *e);  // back in the protocol; the user sees it once it proved itself
      if (!proof) proof_ping_done(now, *e, true, out);
    } else if (old == member_state::dead || old == member_state::left) {
      emit(event_type::member_joined, *e, out);
    } else if (!e->held) {
      if (old == member_state::suspect) emit(event_type::member_alive, *e, out);
      if (changed) emit(event_type::member_updated, *e, out);
    }
  } else if (h == hand::own_word) {
    confirm(*e, out);
  } else if (old != member_state::alive && old != member_state::suspect &&
             confirm_queue_.size() < cfg_.max_members) {
    confirm_queue_.push_back(m.node);
  }
  queue_broadcast(m.node, m);
}

void core_impl::on_suspect(time_point now, const wire::suspect& m, outbox& out) {
  if (m.node == *self_->name) {
    on_accused(now, m.incarnation, out);
    return;
  }
  member_entry* e = lookup(m.node);
  const verdict v = judge_claim(e, claim::suspect, m.incarnation);
  if (v == verdict::ignore) return;
  if (v == verdict::confirm) {
    if (e->susp && e->susp->incarnation() == m.incarnation &&
        e->susp->confirm(m.from, refused_paths(m))) {
      schedule(e->susp->deadline(), timer_kind::suspicion, e->susp->token(), m.node);
      queue_broadcast(m.node, m);  // let others count this accuser too
    }
    return;
  }
  set_state(*e, member_state::suspect, m.incarnation, now);
  start_suspicion(now, *e, m.incarnation, m.from, refused_paths(m));
  ++stats_.suspicions;
  if (e->confirmed && !e->held) emit(event_type::member_suspected, *e, out);
  if (m.from != *self_->name && !quiet_merge_ && started_) {
    // We only heard of it. Tell the suspect ourselves (Lifeguard's buddy
    // system, for every holder): if it refuted already, its answer to a
    // stale accusation comes straight back; if not, its refutation rides on
    // the ack. Otherwise a holder that missed every copy of the refutation
    // would let the suspicion run out.
    const wire::message ping = wire::ping{++next_seq_, m.node, *self_->name, self_->addr};
    send(e->addr, wire::suspect{m.incarnation, m.node, *self_->name}, out, &ping);
  }
  queue_broadcast(m.node, m);
}

void core_impl::start_suspicion(time_point now, member_entry& e, std::uint64_t inc,
                                const std::string& from, std::uint32_t refused_paths) {
  const std::size_t n = live_count_;
  const int k = suspicion_k(cfg_.suspicion_mult, n);
  const duration min = suspicion_min(cfg_.suspicion_mult, n, cfg_.probe_interval);
  const duration max = min * cfg_.suspicion_max_timeout_mult;
  // The first accuser and the k others Lifeguard waits for.
  e.susp = std::make_unique<suspicion>(next_token_++, inc, now, min, max, k,
                                       cfg_.refusal_suspicion_timeout, from, refused_paths);
  schedule(e.susp->deadline(), timer_kind::suspicion, e.susp->token(), *e.name);
}

void core_impl::mark_down(time_point now, member_entry& e, member_state s, std::uint64_t inc,
                          outbox& out) {
  const member_state old = e.shown();
  if (s == member_state::dead && e.up()) {
    // A failure: the flap penalty grows, and decides whether its next return
    // is damped.
    e.penalty = static_cast<float>(penalty_now(e, now) + 1.0);
    e.penalty_at = now;
    e.damped = cfg_.flap_half_life > duration::zero() && e.penalty >= cfg_.flap_damp_penalty;
  }
  if (e.held) {  // failed again before it proved itself: the user saw it dead all along
    count_shown(e, -1);
    e.held = false;
    e.proof = 0;
    count_shown(e, +1);
  }
  set_state(e, s, inc, now);
  if (!e.confirmed) return;
  if (s == member_state::dead && (old == member_state::alive || old == member_state::suspect)) {
    emit(event_type::member_failed, e, out);
  } else if (s == member_state::left && old != member_state::left) {
    emit(event_type::member_left, e, out);
  }
}

void core_impl::on_dead(time_point now, const wire::dead& m, outbox& out) {
  if (m.node == *self_->name) {
    on_accused(now, m.incarnation, out);
    return;
  }
  member_entry* e = lookup(m.node);
  if (judge_claim(e, claim::dead, m.incarnation) != verdict::apply) return;
  if (e->up()) ++stats_.deaths;
  mark_down(now, *e, member_state::dead, m.incarnation, out);
  queue_broadcast(m.node, m);
}

void core_impl::on_left(time_point now, const wire::left& m, outbox& out) {
  if (m.node == *self_->name) {
    on_accused(now, m.incarnation, out);
    return;
  }
  member_entry* e = lookup(m.node);
  if (judge_claim(e, claim::left, m.incarnation) != verdict::apply) return;
  mark_down(now, *e, member_state::left, m.incarnation, out);
  queue_broadcast(m.node, m);
}

std::error_code core_impl::force_leave(time_point now, const std::string& name, outbox& out) {
  if (!started_ || leaving_) return errc::not_running;
  member_entry* e = lookup(name);
  if (!e || !e->confirmed) return errc::unknown_member;
  if (e->state != member_state::dead) return errc::member_not_failed;
  // A departure at the incarnation it died at: judge() lets a left claim
  // explain a death at the same incarnation, and only the member itself can
  // overrule it (by refuting with a higher one).
  on_left(now, wire::left{e->incarnation, name}, out);
  return {};
}

std::error_code core_impl::prune(const std::string& name, outbox& out) {
  if (!started_ || leaving_) return errc::not_running;
  auto it = members_.find(name);
  if (it == members_.end() || !it->second.confirmed) return errc::unknown_member;
  member_entry& e = it->second;
  if (&e == self_ || e.up()) return errc::member_not_failed;
  // As reap() forgets it. Its name leaves gone_ too: a member of that name
  // learned again and gone again before the next reap() would otherwise be
  // listed twice.
  emit(event_type::member_reaped, e, out);
  count_shown(e, -1);
  if (e.in_gone) std::erase(gone_, name);
  members_.erase(it);
  return {};
}

void core_impl::reap(time_point now, outbox& out) {
  // Drop stale entries (members that came back), then forget the departed
  // that passed reconnect_timeout, then the oldest beyond the count bound.
  std::vector<std::string> keep;
  keep.reserve(gone_.size());
  for (auto& name : gone_) {
    member_entry* e = lookup(name);
    if (!e) continue;
    if (e->up()) {
      e->in_gone = false;
      continue;
    }
    keep.push_back(std::move(name));
  }
  gone_.swap(keep);
  if (gone_.size() > cfg_.max_remembered_dead) {
    std::stable_sort(gone_.begin(), gone_.end(), [&](const std::string& a, const std::string& b) {
      return lookup(a)->since < lookup(b)->since;
    });
  }
  std::size_t excess =
      gone_.size() > cfg_.max_remembered_dead ? gone_.size() - cfg_.max_remembered_dead : 0;
  std::vector<std::string> remaining;
  remaining.reserve(gone_.size());
  for (auto& name : gone_) {
    auto it = members_.find(name);
    member_entry& e = it->second;
    if (excess > 0 || now - e.since >= cfg_.reconnect_timeout) {
      if (excess > 0) --excess;
      if (e.confirmed) {
        emit(event_type::member_reaped, e, out);
        count_shown(e, -1);
      }
      members_.erase(it);
      continue;
    }
    remaining.push_back(std::move(name));
  }
  gone_.swap(remaining);
}

}  // namespace shoal::detail
