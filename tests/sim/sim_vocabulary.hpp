// The words the simulated tests speak, on top of the simulator's own
// (bootstrap, crash, restart, full_mesh, wait_status_everywhere ...):
//
//   for_each_seed(fn)          runs fn(seed) for seeds 1..8, or 1..K with
//                              SHOAL_SIM_SEEDS=K in the environment; a failure
//                              prints its seed, and that seed replays exactly.
//   converge(sim, n)           n nodes join and reach the same view.
//   sees(sim, observers, m, s) every observer (but m itself) has m in state s.
//   sum_live(sim, &core_stats::field)
//                              a core counter summed over the live nodes.
//   suspicion_min(cfg, n), suspicion_max(cfg, n)
//                              the Lifeguard bounds the cores use
//                              (lib/core/formulas.hpp), so a test's bound is
//                              the protocol's, not a re-derived copy.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <shoal/sim.hpp>

#include "core/formulas.hpp"

// ---- seeds ----

/// 1..8, or 1..K with SHOAL_SIM_SEEDS=K in the environment.
inline const std::vector<std::uint64_t>& sim_seeds() {
  static const std::vector<std::uint64_t> v = [] {
    std::uint64_t k = 8;
    if (const char* env = std::getenv("SHOAL_SIM_SEEDS")) k = std::strtoull(env, nullptr, 10);
    std::vector<std::uint64_t> s;
    for (std::uint64_t i = 1; i <= std::max<std::uint64_t>(k, 1); ++i) s.push_back(i);
    return s;
  }();
  return v;
}

/// first..last.
inline std::vector<std::uint64_t> seed_range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> s;
  for (std::uint64_t i = first; i <= last; ++i) s.push_back(i);
  return s;
}

/// fn(seed) for each seed; every assertion that fails in it shows the seed.
template <class Fn>
void for_each_seed(const std::vector<std::uint64_t>& seeds, Fn&& fn) {
  for (const std::uint64_t seed : seeds) {
    CAPTURE(seed);
    fn(seed);
  }
}

template <class Fn>
void for_each_seed(Fn&& fn) {
  for_each_seed(sim_seeds(), std::forward<Fn>(fn));
}

/// The default options (lan config, lan network) with `seed`.
inline shoal::sim::options sim_options(std::uint64_t seed) {
  shoal::sim::options o;
  o.seed = seed;
  return o;
}

// ---- the cluster ----

/// n nodes join through n0..n2 within 10 s, then converge (same digest, full
/// mesh) within 90 s, or the test stops.
inline void converge(shoal::sim::simulator& sim, std::size_t n) {
  sim.bootstrap(n);
  INFO("bootstrap of " << n << " nodes");
  REQUIRE(sim.wait_until([&] { return sim.live_count() == n && sim.converged(); },
                         std::chrono::seconds(90)));
}

/// Every observer other than `member` itself knows `member` in state s.
inline bool sees(const shoal::sim::simulator& sim, std::span<const shoal::sim::node_id> observers,
                 shoal::sim::node_id member, shoal::member_state s) {
  const std::string& name = sim.name(member);
  return std::all_of(observers.begin(), observers.end(), [&](shoal::sim::node_id o) {
    return o == member || sim.status_seen_by(o, name) == s;
  });
}

/// Every observer knows each of `members` in state s.
inline bool sees(const shoal::sim::simulator& sim, std::span<const shoal::sim::node_id> observers,
                 std::span<const shoal::sim::node_id> members, shoal::member_state s) {
  return std::all_of(members.begin(), members.end(),
                     [&](shoal::sim::node_id m) { return sees(sim, observers, m, s); });
}

/// Every live node other than `who` has `who` alive at the incarnation of
/// its current life (not a stale alive of an earlier life).
inline bool alive_at_own_incarnation(const shoal::sim::simulator& sim, shoal::sim::node_id who) {
  if (!sim.is_live(who)) return false;
  const auto inc = sim.node_core(who).local_member().incarnation;
  for (shoal::sim::node_id i : sim.live_nodes()) {
    if (i == who) continue;
    const auto m = sim.node_core(i).find(sim.name(who));
    if (!m || m->state != shoal::member_state::alive || m->incarnation != inc) return false;
  }
  return true;
}

/// alive_at_own_incarnation for every live node.
inline bool all_alive_at_own_incarnation(const shoal::sim::simulator& sim) {
  const auto live = sim.live_nodes();
  return std::all_of(live.begin(), live.end(),
                     [&](shoal::sim::node_id who) { return alive_at_own_incarnation(sim, who); });
}

// ---- sums ----

/// A core counter summed over the live nodes.
inline std::uint64_t sum_live(const shoal::sim::simulator& sim,
                              std::uint64_t shoal::core_stats::*field) {
  std::uint64_t sum = 0;
  for (shoal::sim::node_id i : sim.live_nodes()) sum += sim.node_core(i).stats().*field;
  return sum;
}

/// Dead entries in all live nodes' views, summed.
inline std::size_t dead_anywhere(const shoal::sim::simulator& sim) {
  std::size_t d = 0;
  for (shoal::sim::node_id i : sim.live_nodes())
    d += sim.node_core(i).count(shoal::member_state::dead);
  return d;
}

// ---- the protocol's bounds (lib/core/formulas.hpp) ----

/// The Lifeguard minimum suspicion timeout in a cluster of n:
/// suspicion_mult * max(1, log10(n)) * probe_interval.
inline shoal::duration suspicion_min(const shoal::config& c, std::size_t n) {
  return shoal::detail::suspicion_min(c.suspicion_mult, n, c.probe_interval);
}

/// The timeout a suspicion starts at: suspicion_max_timeout_mult * min.
inline shoal::duration suspicion_max(const shoal::config& c, std::size_t n) {
  return suspicion_min(c, n) * c.suspicion_max_timeout_mult;
}
