// What the simulator records about a run, from the cores' membership events:
// event counts per node, crash records (the first suspicion, the first death,
// the moment every node running at the crash has declared it), and false
// positives (suspicions and deaths of nodes that were up and reachable; the
// definition is in sim.hpp). Traffic is counted where it happens (transport).
#include "sim/sim_impl.hpp"

namespace shoal::sim {

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

// ---- crash records ----

void sim_impl::stopped(node_id id) {
  for (crash_track& t : tracks_) {
    if (!t.active || id >= t.eligible.size() || !t.eligible[id]) continue;
    t.eligible[id] = 0;
    --t.eligible_count;
    if (t.declared[id]) --t.declared_count;
    check_all_dead(t);
  }
}

void sim_impl::end_track(crash_track& t) {
  t.active = false;
  t.eligible = {};
  t.declared = {};
}

void sim_impl::check_all_dead(crash_track& t) {
  if (!t.active || t.eligible_count == 0 || t.declared_count < t.eligible_count) return;
  crashes_[t.record].all_dead = now();
  end_track(t);
}

// ---- false positives ----

bool sim_impl::is_false_positive(node_id accuser, node_id accused) const noexcept {
  if (accuser == accused) return false;
  const node_state& m = nodes_[accused];
  const node_state& a = nodes_[accuser];
  if (m.status != node_status::running || m.paused || !m.healthy) return false;
  const std::int64_t grace = opts_.false_positive_grace.count();
  if (now_ - m.last_up < grace || now_ - m.last_net < grace || now_ - a.last_net < grace)
    return false;
  return usable(accuser, accused);
}

void sim_impl::mark_net_all() {
  for (auto& n : nodes_) n.last_net = now_;
}

// ---- membership events ----

void sim_impl::on_core_event(node_id id, const event& e) {
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
        const bool unhealthy = !nodes_[id].healthy;
        (failed ? false_deaths_ : false_suspicions_) += 1;
        if (unhealthy) (failed ? false_deaths_unhealthy_ : false_suspicions_unhealthy_) += 1;
        std::size_t& kept = failed ? death_records_ : suspicion_records_;
        if (kept < opts_.max_false_positive_records) {
          ++kept;
          false_records_.push_back({now(), id, who, e.type});
        }
      }
    }
  }
  if (opts_.record_events) recorded_.push_back({now(), id, e});
  if (event_hook_) event_hook_(id, e);
}

}  // namespace detail

}  // namespace shoal::sim
