// Lifeguard's local health on the simulator: a healthy node whose relays are
// healthy never raises its own score, and nothing a peer claims can stop a
// healthy member from refuting.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <shoal/sim.hpp>

#include "sim_vocabulary.hpp"
#include "wire/codec.hpp"

using namespace std::chrono_literals;
using shoal::member_state;
using shoal::sim::node_id;
using shoal::sim::simulator;

namespace {

/// Runs the simulator for `d` in steps of `step` and returns, per live node,
/// the highest health score it had at any step.
std::map<node_id, int> max_scores(simulator& sim, shoal::duration d, shoal::duration step) {
  std::map<node_id, int> top;
  for (shoal::duration t{}; t < d; t += step) {
    sim.run_for(step);
    for (node_id i : sim.live_nodes()) top[i] = std::max(top[i], sim.node_core(i).health_score());
  }
  return top;
}

void silent_dead_among_healthy(const shoal::config& cfg, const shoal::sim::network_config& net,
                               shoal::duration run) {
  for_each_seed([&](std::uint64_t seed) {
    auto o = sim_options(seed);
    o.base = cfg;
    o.net = net;
    simulator sim(o);
    const auto nodes = sim.start_converged(12);
    sim.run_for(10s);
    sim.crash(5, false);  // the host goes silent
    // Every healthy prober that probes n5 gets nacks from its healthy relays
    // in time: missing nacks are the only failed probe that counts against
    // the prober, so nobody's score moves.
    const auto top = max_scores(sim, run, 100ms);
    for (const auto& [n, score] : top) {
      CAPTURE(n);
      CHECK(score == 0);
    }
    CHECK(sum_live(sim, &shoal::core_stats::probe_failures) > 0);  // n5 was probed in vain
    CHECK(sim.wait_status_everywhere("n5", member_state::dead, 120s));
  });
}

}  // namespace

TEST_CASE("lifeguard: nacks from healthy relays arrive in time (lan)", "[sim]") {
  silent_dead_among_healthy(shoal::config::lan(), shoal::sim::network_config::lan(), 60s);
}

TEST_CASE("lifeguard: nacks from healthy relays arrive in time (wan)", "[sim]") {
  silent_dead_among_healthy(shoal::config::wan(), shoal::sim::network_config::wan(), 300s);
}

TEST_CASE("lifeguard: nacks from healthy relays arrive in time (local)", "[sim]") {
  silent_dead_among_healthy(shoal::config::local(), shoal::sim::network_config::local(), 60s);
}

TEST_CASE("lifeguard: forged suspicions alone never stop a healthy member from refuting", "[sim]") {
  // A peer (no keyring: any host can) sends everyone a suspect about n3 at
  // its current incarnation once a second for five minutes. n3 refutes each;
  // refutations raise its Lifeguard score, but only its own probes may bench
  // it: it must never be declared dead.
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    const auto members = sim.start_converged(8);
    const node_id mallory = sim.add_node();
    sim.run_for(5s);
    const node_id victim = 3;
    std::uint64_t deaths = 0;
    sim.on_event([&](node_id, const shoal::event& e) {
      if (e.type == shoal::event_type::member_failed && e.who.name == "n3") ++deaths;
    });
    for (int s = 0; s < 300; ++s) {
      const auto inc = sim.node_core(victim).local_member().incarnation;
      const auto forged = shoal::wire::encode_packet(
          std::vector<shoal::wire::message>{shoal::wire::suspect{inc, "n3", "n7"}});
      for (node_id t : members) sim.send_raw(mallory, t, forged);
      sim.run_for(1s);
    }
    CHECK(deaths == 0);
    CHECK(sim.node_core(victim).stats().refutations >= 250);
    CHECK(sim.node_core(victim).stats().refutations_withheld == 0);
    CHECK(sim.wait_until([&] { return alive_at_own_incarnation(sim, victim); }, 30s));
  });
}

TEST_CASE("lifeguard: a member the cluster keeps accusing keeps probing at the base rate",
          "[sim]") {
  // n30 loses 80% of what it sends: its score climbs to the top, which
  // would stretch its probe period eightfold; while it has refuted 3 times
  // within the last 60 s it probes at most probe_interval apart instead, so
  // that its own probes (the only evidence that may bench it) come in time.
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 100);
    const node_id lossy = 30;
    sim.set_egress_loss(lossy, 0.8);
    sim.set_healthy(lossy, false);
    const auto& st = sim.node_core(lossy).stats();
    std::vector<shoal::time_point> refuted;  // when each refutation was seen (100 ms steps)
    std::uint64_t probes = st.probes;
    shoal::time_point last_probe{};  // when a probe started while accused
    bool have_last = false;
    shoal::duration widest{};
    int gaps = 0, top_score = 0;
    for (int step = 0; step < 1200 && st.self_benched == 0; ++step) {  // 120 s, until benched
      sim.run_for(100ms);
      while (refuted.size() < st.refutations) refuted.push_back(sim.now());
      top_score = std::max(top_score, sim.node_core(lossy).health_score());
      if (st.probes == probes) continue;
      probes = st.probes;
      const bool accused = refuted.size() >= 3 && sim.now() - refuted[refuted.size() - 3] <= 60s;
      if (!accused) {
        have_last = false;
        continue;
      }
      // The first probe after the third refutation may still have been
      // scheduled a stretched period ahead; from then on they must not be.
      if (have_last) {
        widest = std::max(widest, sim.now() - last_probe);
        ++gaps;
      }
      last_probe = sim.now();
      have_last = true;
    }
    INFO("gaps between probes while accused: " << gaps << ", widest "
                                               << std::chrono::duration<double>(widest).count()
                                               << " s, top score " << top_score);
    CHECK(top_score >= 4);  // stretched fivefold or more without the cap
    CHECK(gaps >= 2);
    CHECK(widest <= 1100ms);
  });
}

TEST_CASE("flap damping: members that keep failing and returning change the view at most 4 times",
          "[sim]") {
  // Twelve nodes; n3 and n7 lose everything they receive for 20 s, then
  // recover for 20 s, four times. Every healthy observer sees each of them
  // down, back, down again, and back once stable (60 s after the last cycle
  // everything is alive), at most 4 changes between up and down, and no
  // healthy member is ever damped.
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    const auto nodes = sim.start_converged(12);
    const std::vector<node_id> faulty{3, 7};
    for (node_id f : faulty) sim.set_healthy(f, false);
    std::map<std::pair<node_id, std::string>, int> changes;
    std::map<std::pair<node_id, std::string>, bool> shown_up;
    bool healthy_damped = false;
    sim.on_event([&](node_id obs, const shoal::event& e) {
      const bool faulty_member = e.who.name == "n3" || e.who.name == "n7";
      if (!faulty_member || obs == 3 || obs == 7) return;
      const auto key = std::make_pair(obs, e.who.name);
      const bool up = e.who.state == member_state::alive || e.who.state == member_state::suspect;
      if (!shown_up.count(key)) shown_up[key] = true;
      if (up != shown_up[key]) {
        ++changes[key];
        shown_up[key] = up;
      }
    });
    sim.run_for(10s);
    for (int cycle = 0; cycle < 4; ++cycle) {
      for (node_id f : faulty) sim.set_ingress_loss(f, 1.0);
      sim.run_for(20s);
      for (node_id f : faulty) sim.set_ingress_loss(f, 0.0);
      sim.run_for(20s);
      for (node_id i : sim.live_nodes())
        for (const auto& m : sim.node_core(i).members())
          if (m.damped && m.name != "n3" && m.name != "n7") healthy_damped = true;
    }
    sim.run_for(60s);
    CHECK_FALSE(healthy_damped);
    int most = 0;
    for (const auto& [key, n] : changes) most = std::max(most, n);
    INFO("most changes for one observer and faulty member: " << most);
    CHECK(most <= 4);
    CHECK(most >= 2);  // they did go down and come back
    for (node_id f : faulty) CHECK(sees(sim, nodes, f, member_state::alive));
  });
}
