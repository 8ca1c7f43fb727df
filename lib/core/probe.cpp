// The failure detector: one probe per (health-scaled) protocol period, in
// shuffled round-robin order; k indirect probes with nacks and a stream
// fallback when the direct ack is late; suspicion when the period ends
// without any ack. Also the answering side: acks and relayed pings.
#include <algorithm>
#include <limits>

#include "core/core_impl.hpp"

namespace shoal::detail {

void core_impl::on_probe_timer(time_point now, outbox& out) {
  finish_probe(now, out);
  const time_point next = now + probe_scaled(cfg_.probe_interval, now);
  schedule(next, timer_kind::probe);
  if (leaving_ || probe_list_.empty()) return;
  if (probe_pos_ >= probe_list_.size()) {
    rng_.shuffle(probe_list_, [this](std::size_t k) {
      probe_list_[k]->probe_index = static_cast<std::uint32_t>(k);
    });
    probe_pos_ = 0;
  }
  member_entry& t = *probe_list_[probe_pos_++];
  probe_ = probe_state{};
  probe_.seq = ++next_seq_;
  probe_.target = *t.name;
  probe_.incarnation = t.incarnation;
  probe_.active = true;
  probe_.ends = next;
  ++stats_.probes;
  const wire::ping p{probe_.seq, *t.name, *self_->name, self_->addr};
  if (t.state == member_state::suspect) {
    // Buddy system: tell the suspect directly so it can refute at once; the
    // accusation first, so that its refutation rides on the ack.
    const wire::message ping = p;
    send(t.addr, wire::suspect{t.incarnation, *t.name, *self_->name}, out, &ping);
  } else {
    send(t.addr, p, out);
  }
  // Both the period and the wait for the direct ack stretch with our health
  // score (Lifeguard): a slow node waits longer before it involves others.
  schedule(now + probe_scaled(cfg_.probe_timeout, now), timer_kind::probe_timeout, probe_.seq);
}

void core_impl::finish_probe(time_point now, outbox& out) {
  if (!probe_.active) return;
  probe_.active = false;
  // Our own network looks broken when nothing at all came back over UDP: no
  // ack, direct or relayed, and no relay's nack (a TCP ping may still have
  // got through; the datagrams did not). A dead target leaves the relays'
  // nacks; a lossy link of ours leaves silence.
  if (!probe_.udp_answer) ++stats_.probes_silent;
  record_own_probe(now, !probe_.udp_answer);
  if (probe_.acked) return;
  ++stats_.probe_failures;
  // Lifeguard: with indirect probers, only nacks that did not come back count
  // against us (they point at our own network); without, any failure does.
  const int missing =
      probe_.indirect_expected > 0 ? std::max(0, probe_.indirect_expected - probe_.nacks) : 1;
  awareness_.apply(missing);
  member_entry* e = lookup(probe_.target);
  if (e && e->held) proof_ping_done(now, *e, false, out);
  // A node that judged its own network broken accuses nobody.
  if (benched_) return;
  // Nor does a probe that heard nothing at all: not the target, and not one
  // of the relays we asked, whose nacks would have said they reached us but
  // not it. The silence is ours (Lifeguard's reading of missing nacks);
  // accusing would let a member that drops what it sends fail the healthy.
  // Without relays there is nothing to tell the two apart.
  if (probe_.indirect_expected > 0 && !probe_.udp_answer) return;
  if (!e || !e->up() || e->incarnation != probe_.incarnation) return;  // refuted meanwhile
  // How many distinct paths refused: ours, and those our relays reported.
  // Two or more (and no ack) end the suspicion after the refusal timeout.
  wire::suspect s{e->incarnation, probe_.target, *self_->name};
  s.refused_paths = static_cast<std::uint32_t>((probe_.refused ? 1 : 0) + probe_.refused_nacks);
  s.refused = s.refused_paths > 0;
  on_suspect(now, s, out);
}

void core_impl::start_indirect_probes(time_point now, std::uint64_t seq, outbox& out) {
  if (!probe_.active || probe_.acked || probe_.seq != seq || probe_.indirect_sent) return;
  member_entry* target = lookup(probe_.target);
  if (!target) return;
  probe_.indirect_sent = true;
  // k distinct random live peers other than the target.
  std::vector<member_entry*> peers;
  const auto want = static_cast<std::size_t>(cfg_.indirect_checks);
  const std::size_t n = probe_list_.size();
  for (std::size_t tries = 0; peers.size() < want && tries < 3 * want + 3 && n > 0; ++tries) {
    member_entry* p = probe_list_[static_cast<std::size_t>(rng_.below(n))];
    if (p == target || p->state != member_state::alive) continue;
    if (std::find(peers.begin(), peers.end(), p) != peers.end()) continue;
    peers.push_back(p);
  }
  // The relays nack at 80% of what is left of our period, so that a nack
  // from a healthy relay is back before we close the probe and count the
  // missing ones against ourselves (Lifeguard).
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(probe_.ends - now);
  wire::indirect_ping req{probe_.seq, probe_.target, target->addr, *self_->name, self_->addr, true};
  req.nack_timeout_ms = static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(left.count() * 4 / 5, 1, std::numeric_limits<std::uint32_t>::max()));
  for (member_entry* p : peers) send(p->addr, req, out);
  probe_.indirect_expected = static_cast<int>(peers.size());
  stats_.indirect_probes += peers.size();
  if (cfg_.stream_fallback_ping) {
    start_stream(
        target->addr, stream_kind::ping,
        fmt_.encode_stream(wire::ping{probe_.seq, probe_.target, *self_->name, self_->addr}), out,
        probe_.seq);
  }
}

void core_impl::on_ping(time_point, const address& from, const wire::ping& m, outbox& out) {
  if (!m.target.empty() && m.target != *self_->name) return;  // meant for a previous owner
  // The digest at the level both of us speak (a pinger we do not know yet
  // gets level 1; a mismatch then leads to a push-pull that teaches us).
  const member_entry* pinger = lookup(m.source);
  send(from, wire::ack{m.seq, digest_at(digest_level(pinger ? pinger->protocol : 1))}, out);
  // A ping from a member we only know by hearsay confirms it. Most of the
  // time every member is confirmed and the lookup is skipped.
  const std::size_t confirmed = confirmed_by_state_[0] + confirmed_by_state_[1] +
                                confirmed_by_state_[2] + confirmed_by_state_[3];
  if (confirmed == members_.size()) return;
  if (member_entry* e = lookup(m.source); e && e->up() && e->addr == from) confirm(*e, out);
}

void core_impl::on_indirect_ping(time_point now, const address& from, const wire::indirect_ping& m,
                                 outbox& out) {
  constexpr std::size_t max_relays = 1024;
  if (relays_.size() >= max_relays) return;
  const std::uint32_t seq = ++next_seq_;
  relays_.emplace(seq, relay{from, m.seq, m.want_nack, m.target_addr, m.target});
  send(m.target_addr, wire::ping{seq, m.target, *self_->name, self_->addr}, out);
  // The requester says when its nack is due; bounded by the longest probe
  // period any of us runs, so a hostile request cannot hold a relay slot.
  const duration longest = cfg_.probe_interval * std::max(1, cfg_.awareness_max_multiplier);
  const duration wait =
      m.nack_timeout_ms > 0
          ? std::min<duration>(std::chrono::milliseconds(m.nack_timeout_ms), longest)
          : default_nack_timeout();
  schedule(now + wait, timer_kind::relay_timeout, seq);
}

duration core_impl::default_nack_timeout() const noexcept {
  // What a requester of the same preset has left after its probe timeout,
  // 80% of it, as it would have asked.
  const duration left = cfg_.probe_interval - cfg_.probe_timeout;
  return std::max<duration>(std::min(cfg_.probe_timeout, left * 4 / 5),
                            std::chrono::milliseconds(1));
}

void core_impl::on_relay_timeout(std::uint64_t seq, outbox& out) {
  auto it = relays_.find(static_cast<std::uint32_t>(seq));
  if (it == relays_.end()) return;
  if (it->second.want_nack) send(it->second.origin, wire::nack{it->second.origin_seq}, out);
  relays_.erase(it);
}

void core_impl::on_ack(time_point now, const address& from, const wire::ack& m, outbox& out) {
  ++stats_.acks_in;
  if (probe_.active && !probe_.acked && m.seq == probe_.seq) {
    probe_.acked = true;
    probe_.udp_answer = true;
    if (member_entry* e = lookup(probe_.target); e && e->up()) {
      if (from == e->addr) {
        awareness_.apply(-1);  // a direct ack: we are healthy
        if (const auto theirs = ack_digest(m)) check_digest(now, *e, *theirs, out);
        if (e->held) proof_ping_done(now, *e, true, out);
      }
      confirm(*e, out);
    }
    return;
  }
  if (auto it = relays_.find(m.seq); it != relays_.end()) {
    send(it->second.origin, wire::ack{it->second.origin_seq, m.digest}, out);
    relays_.erase(it);
    return;
  }
  for (auto it = side_pings_.begin(); it != side_pings_.end(); ++it) {
    if (it->seq != m.seq) continue;
    if (!it->reconnect)
      confirm_window_ = std::min(cfg_.confirm_pings_per_gossip, confirm_window_ + 1);
    if (member_entry* e = lookup(it->name); e && e->addr == from) {
      if (it->reconnect && e->state == member_state::dead) {
        ++stats_.reconnects;
        start_stream(from, stream_kind::push_pull, encode_state(false), out);
      } else if (!it->reconnect && e->up()) {
        if (e->held)
          proof_ping_done(now, *e, true, out);
        else
          confirm(*e, out);
      }
    }
    side_pings_.erase(it);
    return;
  }
}

void core_impl::check_digest(time_point now, const member_entry& peer, std::uint64_t theirs,
                             outbox& out) {
  if (theirs == digest_at(digest_level(peer.protocol))) {
    digest_mismatch_streak_ = 0;
    return;
  }
  ++stats_.digest_mismatches;
  // Two probes in a row disagree and gossip has nothing left to say: the
  // difference will not heal by itself before the next periodic push-pull.
  if (++digest_mismatch_streak_ < 2 || !system_queue_.empty() || leaving_) return;
  if (cfg_.digest_sync_interval <= duration::zero() ||
      (stats_.digest_syncs > 0 && now - last_digest_sync_ < cfg_.digest_sync_interval))
    return;
  last_digest_sync_ = now;
  digest_mismatch_streak_ = 0;
  ++stats_.digest_syncs;
  start_stream(peer.addr, stream_kind::push_pull, encode_state(false), out);
}

void core_impl::on_unreachable(time_point now, const address& to, outbox& out) {
  ++stats_.unreachable_reports;
  if (cfg_.refusal_suspicion_timeout <= duration::zero() || !started_ || leaving_) return;
  // Only refusals of pings we have outstanding count: our probe, and pings
  // we relay for others. Anything else (gossip to a dead member) is noise.
  if (probe_.active && !probe_.acked && !probe_.refused) {
    member_entry* e = lookup(probe_.target);
    if (e && e->up() && e->addr == to && e->incarnation == probe_.incarnation) {
      ++stats_.refusals;
      probe_.refused = true;
      probe_.udp_answer = true;  // the target's host answered
      // One refused path accuses nobody (a REJECT rule, a forged ICMP): ask
      // the relays now rather than at the probe timeout. Their nacks say
      // whether their pings were refused too; any ack ends it; a period
      // without one ends in a suspicion that counts the refused paths.
      start_indirect_probes(now, probe_.seq, out);
    }
  }
  for (auto it = relays_.begin(); it != relays_.end();) {
    if (it->second.target_addr != to) {
      ++it;
      continue;
    }
    const relay r = std::move(it->second);
    it = relays_.erase(it);
    ++stats_.refusals;
    // A nack at once, reporting the refusal: the prober decides, from its own
    // path and ours. A relay accuses nobody.
    if (r.want_nack) send(r.origin, wire::nack{r.origin_seq, true}, out);
  }
}

void core_impl::on_nack(const wire::nack& m) {
  ++stats_.nacks_in;
  if (!probe_.active || m.seq != probe_.seq || probe_.nacks >= probe_.indirect_expected) return;
  ++probe_.nacks;  // at most one per relay asked: more are forged or duplicated
  probe_.udp_answer = true;
  if (m.refused) ++probe_.refused_nacks;
}

}  // namespace shoal::detail
