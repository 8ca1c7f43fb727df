// A crashed process on a host that stays up: the host's kernel refuses what
// reaches the dead port (ICMP port unreachable for datagrams, RST for stream
// connects; network_config::crashed_hosts_refuse, simulator::crash(n, true)),
// and the cores use it to declare the node dead sooner
// (config::refusal_suspicion_timeout). First the network model on its own,
// then whole clusters. Cluster tests loop over seeds 1..8 (SHOAL_SIM_SEEDS=K
// for 1..K) with for_each_seed, which prints the seed of a failure; their
// bounds are the protocol's own (suspicion_min: lib/core/formulas.hpp).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <shoal/sim.hpp>

#include "sim_vocabulary.hpp"

using namespace std::chrono_literals;
using shoal::duration;
using shoal::event_type;
using shoal::member_state;
using shoal::sim::node_id;
using shoal::sim::node_status;
using shoal::sim::simulator;

namespace {

// Cores that send nothing on their own for an hour (no probes, no periodic
// sync) over a 1 ms link without jitter: what the engine does with a datagram
// can be timed exactly.
shoal::sim::options quiet_opts() {
  shoal::sim::options o;
  o.seed = 1;
  o.base.probe_interval = 1h;
  o.base.push_pull_interval = 0s;
  o.base.digest_sync_interval = 0s;
  o.base.reconnect_interval = 0s;
  o.net.latency = 1ms;
  o.net.jitter = 0ms;
  return o;
}

// Some bytes to send: the engine does not care what they are.
shoal::bytes junk() {
  return shoal::bytes{1, 2, 3};
}

std::uint64_t refused_total(const simulator& sim) {
  std::uint64_t d = 0;
  for (node_id i = 0; i < sim.size(); ++i) d += sim.metrics(i).refused;
  return d;
}

// n nodes start converged and run 5 s; then a random one of n3.. crashes
// (crash(v, *host_up), or crash(v) when none) and the run goes on until every
// survivor has it dead. Returns how long that took.
duration crash_until_failed_everywhere(simulator& sim, std::size_t n, std::optional<bool> host_up) {
  sim.start_converged(n);
  sim.run_for(5s);
  const auto victim = static_cast<node_id>(3 + sim.scenario_rng().below(n - 3));
  INFO("victim " << sim.name(victim));
  if (host_up)
    sim.crash(victim, *host_up);
  else
    sim.crash(victim);
  REQUIRE(sim.wait_status_everywhere(sim.name(victim), member_state::dead, 60s));
  REQUIRE(sim.crashes().size() == 1);
  const auto& c = sim.crashes()[0];
  REQUIRE(c.all_dead);
  return *c.all_dead - c.at;
}

}  // namespace

// ---------------------------------------------------------------------------
// The network model
// ---------------------------------------------------------------------------

TEST_CASE("a refusing host answers a datagram one latency later, a silent one never", "[sim]") {
  simulator sim(quiet_opts());
  sim.start_converged(3);
  sim.run_for(1s);
  const auto sent_before = sim.metrics(0).sent.total_packets();
  sim.crash(1, true);
  sim.crash(2);  // the default: crashed_hosts_refuse is false
  CHECK(sim.refuses(1));
  CHECK_FALSE(sim.refuses(2));
  CHECK_FALSE(sim.refuses(0));

  sim.send_raw(0, 1, junk());
  sim.send_raw(0, 2, junk());
  sim.run_for(1ms);  // both arrived; only n1's host answers
  CHECK(sim.metrics(0).dropped_down == 2);
  CHECK(sim.metrics(0).refused == 1);
  CHECK(sim.metrics(0).unreachable_received == 0);
  sim.run_for(999us);
  CHECK(sim.metrics(0).unreachable_received == 0);
  sim.run_for(1us);  // the ICMP's own trip back
  CHECK(sim.metrics(0).unreachable_received == 1);
  CHECK(sim.node_core(0).stats().unreachable_reports == 1);
  sim.run_for(10s);
  CHECK(sim.metrics(0).unreachable_received == 1);
  // nothing else came from the quiet core to muddle the counts
  CHECK(sim.metrics(0).sent.total_packets() == sent_before + 2);

  // The host of a crashed node can go down, or come back up.
  sim.crash(1, false);
  sim.crash(2, true);
  CHECK_FALSE(sim.refuses(1));
  CHECK(sim.refuses(2));
  sim.send_raw(0, 1, junk());
  sim.send_raw(0, 2, junk());
  sim.run_for(10ms);
  CHECK(sim.metrics(0).refused == 2);
  CHECK(sim.metrics(0).unreachable_received == 2);

  // A restart forgets it: a running node refuses nothing.
  sim.restart(2, {0});
  CHECK_FALSE(sim.refuses(2));
}

TEST_CASE("partitions and loss drop the ICMP as they would a packet back", "[sim]") {
  simulator sim(quiet_opts());
  sim.start_converged(2);
  sim.crash(1, true);
  SECTION("a one-way partition back") {
    sim.partition({1}, {0}, false);  // 0 -> 1 passes, 1 -> 0 does not
    sim.send_raw(0, 1, junk());
    sim.run_for(1s);
    CHECK(sim.metrics(0).refused == 1);               // the host answered...
    CHECK(sim.metrics(0).unreachable_received == 0);  // ...into the partition
  }
  SECTION("a two-way partition: the datagram never gets there") {
    sim.partition({0}, {1});
    sim.send_raw(0, 1, junk());
    sim.run_for(1s);
    CHECK(sim.metrics(0).dropped_partition == 1);
    CHECK(sim.metrics(0).refused == 0);
    CHECK(sim.metrics(0).unreachable_received == 0);
  }
  SECTION("the sender hears nothing") {
    sim.set_ingress_loss(0, 1.0);
    sim.send_raw(0, 1, junk());
    sim.run_for(1s);
    CHECK(sim.metrics(0).refused == 1);
    CHECK(sim.metrics(0).unreachable_received == 0);
  }
  SECTION("loss on the way back") {
    sim.set_link_loss(1, 0, 0.5);
    constexpr int n = 2000;
    for (int i = 0; i < n; ++i) sim.send_raw(0, 1, junk());
    sim.run_for(1s);
    CHECK(sim.metrics(0).refused == n);
    const auto got = sim.metrics(0).unreachable_received;
    CHECK(got > n / 2 - 150);
    CHECK(got < n / 2 + 150);
  }
}

TEST_CASE("a paused node refuses nothing, a departed one does when hosts refuse", "[sim]") {
  auto o = quiet_opts();
  o.net.crashed_hosts_refuse = true;
  simulator sim(o);
  sim.start_converged(4);

  // SIGSTOP: the socket stays open, the datagram waits for the process
  sim.pause(1, 2s);
  sim.send_raw(0, 1, junk());
  sim.run_for(1s);
  CHECK_FALSE(sim.refuses(1));
  CHECK(sim.metrics(0).refused == 0);
  CHECK(sim.metrics(1).received.total_packets() == 0);
  sim.run_for(2s);
  CHECK(sim.metrics(1).received.total_packets() == 1);
  CHECK(sim.metrics(0).unreachable_received == 0);

  // a node that left is a process gone from a host that is up
  sim.leave(2, 1s);
  sim.run_for(2s);
  REQUIRE(sim.status(2) == node_status::left);
  CHECK(sim.refuses(2));
  // and the switch makes every crash refuse
  sim.crash(3);
  CHECK(sim.refuses(3));
  const auto before = sim.metrics(0).unreachable_received;
  sim.send_raw(0, 2, junk());
  sim.send_raw(0, 3, junk());
  sim.run_for(10ms);
  CHECK(sim.metrics(0).unreachable_received == before + 2);
  // unless the host of that crash is down
  sim.crash(3, false);
  sim.send_raw(0, 3, junk());
  sim.run_for(10ms);
  CHECK(sim.metrics(0).unreachable_received == before + 2);
}

TEST_CASE("an ICMP for a sender that restarted meanwhile is lost with its socket", "[sim]") {
  auto o = quiet_opts();
  o.net.latency = 100ms;
  simulator sim(o);
  sim.start_converged(3);
  sim.crash(1, true);
  sim.send_raw(0, 1, junk());
  sim.run_for(150ms);  // refused, the answer due back at 200 ms
  CHECK(sim.metrics(0).refused == 1);
  sim.restart(0, {2});
  // Past 200 ms, before anything the new life sends could come back (350 ms).
  sim.run_for(100ms);
  CHECK(sim.metrics(0).unreachable_received == 0);
  CHECK(sim.node_core(0).stats().unreachable_reports == 0);
}

TEST_CASE("a stream to a refusing host fails after a round trip, not stream_fail_after", "[sim]") {
  // A node joins through one seed: the join is a push-pull stream. One seed's
  // host refuses (RST), the other's is silent.
  for (const bool feel_loss : {false, true}) {
    CAPTURE(feel_loss);
    auto o = quiet_opts();
    o.net.streams_feel_loss = feel_loss;
    simulator sim(o);
    sim.start_converged(2);
    sim.crash(0, true);
    sim.crash(1, false);
    const node_id a = sim.add_node();
    const node_id b = sim.add_node();
    sim.join(a, std::vector<node_id>{0});
    sim.join(b, std::vector<node_id>{1});
    sim.run_for(2ms);  // there and back
    CHECK(sim.node_core(a).stats().streams_failed >= 1);
    CHECK(sim.node_core(b).stats().streams_failed == 0);
    sim.run_for(o.net.stream_fail_after - 10ms);
    CHECK(sim.node_core(b).stats().streams_failed == 0);
    sim.run_for(20ms);  // (with feel_loss, after a modelled handshake too)
    CHECK(sim.node_core(b).stats().streams_failed >= 1);
  }
}

// ---------------------------------------------------------------------------
// Clusters
// ---------------------------------------------------------------------------

TEST_CASE("a crash on a host that stays up is declared within the refusal timeout", "[sim]") {
  constexpr std::size_t n = 64;
  for_each_seed([&](std::uint64_t seed) {
    auto o = sim_options(seed);
    simulator sim(o);
    const duration took = crash_until_failed_everywhere(sim, n, true);
    const duration min = suspicion_min(o.base, n);
    INFO("failed everywhere after " << std::chrono::duration<double>(took).count()
                                    << " s; Lifeguard minimum "
                                    << std::chrono::duration<double>(min).count() << " s");
    CHECK(took < min);
    CHECK(sum_live(sim, &shoal::core_stats::refusal_deaths) >= 1);
    CHECK(sim.false_deaths() == 0);
    CHECK(sim.full_mesh());
  });
}

TEST_CASE("with refusal_suspicion_timeout 0 the refusals change nothing", "[sim]") {
  constexpr std::size_t n = 64;
  for_each_seed([&](std::uint64_t seed) {
    auto o = sim_options(seed);
    o.base.refusal_suspicion_timeout = 0s;
    o.net.crashed_hosts_refuse = true;
    simulator sim(o);
    const duration took = crash_until_failed_everywhere(sim, n, std::nullopt);
    CHECK(took >= suspicion_min(o.base, n));
    CHECK(sum_live(sim, &shoal::core_stats::refusal_deaths) == 0);
    // the host did refuse; the cores ignored it
    CHECK(sum_live(sim, &shoal::core_stats::unreachable_reports) >= 1);
    CHECK(sim.false_deaths() == 0);
  });
}

TEST_CASE("refusing hosts add no false death at 10% loss, nor when a node pauses", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    auto o = sim_options(seed);
    o.net.crashed_hosts_refuse = true;
    simulator sim(o);
    sim.start_converged(32);
    sim.set_loss(0.10);
    std::size_t failed = 0;
    sim.on_event([&](node_id, const shoal::event& e) {
      if (e.type == event_type::member_failed) ++failed;
    });
    sim.run_for(200s);
    CHECK(sim.false_deaths() == 0);
    CHECK(failed == 0);
    CHECK(dead_anywhere(sim) == 0);
    CHECK(refused_total(sim) == 0);  // nothing crashed, so nothing refused

    const node_id paused = 7;
    sim.pause(paused, 1s);
    sim.run_for(60s);
    CHECK(failed == 0);
    CHECK(sim.false_deaths() == 0);
    CHECK(refused_total(sim) == 0);
    sim.set_loss(0.0);
    CHECK(sim.wait_converged(60s));
  });
}

TEST_CASE("at 10% loss the refused crash is always found and nobody else dies", "[sim]") {
  constexpr std::size_t n = 16;
  for_each_seed(seed_range(1, 20), [&](std::uint64_t seed) {
    auto o = sim_options(seed);
    o.net.crashed_hosts_refuse = true;
    simulator sim(o);
    sim.start_converged(n);
    sim.set_loss(0.10);
    sim.run_for(10s);
    const auto victim = static_cast<node_id>(3 + sim.scenario_rng().below(n - 3));
    CAPTURE(sim.name(victim));
    std::size_t others_failed = 0;
    sim.on_event([&](node_id, const shoal::event& e) {
      if (e.type == event_type::member_failed && e.who.name != sim.name(victim)) ++others_failed;
    });
    sim.crash(victim);
    CHECK(sim.wait_status_everywhere(sim.name(victim), member_state::dead, 60s));
    REQUIRE(sim.crashes().size() == 1);
    CHECK(sim.crashes()[0].all_dead);
    sim.run_for(60s);
    CHECK(sim.status_everywhere(sim.name(victim), member_state::dead));
    CHECK(others_failed == 0);
    CHECK(sim.false_deaths() == 0);
  });
}
