// A hostile peer on the simulator. Without encryption any host that can send
// UDP to the cluster can claim anything (docs/security.md); what it must not
// be able to do is crash or wedge a node, keep a live member out of the view
// for good, or make a node send more than a small constant per packet it sends.
//
// The attacker ("mallory") is a simulator node that never joins: its packets
// come from its own address (or, for replays, from the original sender's),
// and what the cluster sends back to it is dropped. Each test loops over
// seeds 1..8 (SHOAL_SIM_SEEDS=K for more) with for_each_seed, which prints
// a failing seed.
#include <cstdint>
#include <limits>
#include <span>
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
namespace wire = shoal::wire;

namespace {

constexpr std::uint64_t max_inc = std::numeric_limits<std::uint64_t>::max();

shoal::bytes packet(const std::vector<wire::message>& msgs) {
  return wire::encode_packet(msgs);
}

std::uint64_t inc_of(const simulator& sim, node_id n) {
  return sim.node_core(n).local_member().incarnation;
}

/// Sum of the digests: changes when any node's view of any member changes.
std::vector<std::uint64_t> digests(const simulator& sim) {
  std::vector<std::uint64_t> v;
  for (node_id i : sim.live_nodes()) v.push_back(sim.node_core(i).digest());
  return v;
}

}  // namespace

TEST_CASE("forged suspect and dead claims at high incarnations are refuted", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    const auto members = sim.start_converged(8);
    const node_id mallory = sim.add_node();
    sim.run_for(5s);
    // For 30 s, twice a second, every member hears: n1 suspected and n2 dead
    // a little above their current incarnations (they learn those from the
    // gossip), n3 suspected and n4 dead at the largest incarnation there is.
    for (int round = 1; round <= 60; ++round) {
      const auto step = static_cast<std::uint64_t>(round) * 1000;
      const auto forged = packet({
          wire::suspect{inc_of(sim, 1) + step, "n1", "n7"},
          wire::dead{inc_of(sim, 2) + step, "n2", "n6"},
          wire::suspect{max_inc, "n3", "n5"},
          wire::dead{max_inc, "n4", "n5"},
      });
      for (node_id t : members) sim.send_raw(mallory, t, forged);
      sim.run_for(500ms);
    }
    INFO("forgeries stopped");
    REQUIRE(sim.wait_until([&] { return all_alive_at_own_incarnation(sim); }, 60s));
    CHECK(sim.live_count() == 8);
    CHECK(sim.wait_converged(30s));
    CHECK(inc_of(sim, 1) > 1000);  // n1 and n2 had to refute, and did
    CHECK(inc_of(sim, 2) > 1000);
    // Claims at 2^64 - 1 are out of reach (more than 2^32 above what anyone
    // holds) and ignored by all, victims included: refuting one would need an
    // incarnation that does not exist.
    for (node_id n : {node_id{3}, node_id{4}}) CHECK(inc_of(sim, n) == 0);
    for (node_id i : members) CHECK(sim.node_core(i).stats().claims_out_of_reach > 0);
    CHECK(sim.tick_anomalies() == 0);
  });
}

TEST_CASE("replayed packets change nothing", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    sim.start_converged(8);
    struct recorded {
      node_id from, to;
      shoal::bytes data;
    };
    std::vector<recorded> old;
    sim.on_packet([&](node_id from, node_id to, std::span<const std::uint8_t> d) {
      old.push_back({from, to, shoal::bytes(d.begin(), d.end())});
    });
    // A life of n5 recorded: its crash (suspicions, death) and its restart.
    sim.crash(5);
    REQUIRE(sim.wait_status_everywhere("n5", member_state::dead, 90s));
    sim.restart(5);
    REQUIRE(sim.wait_until([&] { return all_alive_at_own_incarnation(sim); }, 60s));
    REQUIRE(sim.wait_converged(60s));
    sim.on_packet(nullptr);
    sim.run_for(5s);
    const auto before = digests(sim);
    INFO("replaying " << old.size() << " packets");
    // Every recorded packet again, from its original sender's address (a
    // spoofed source), 100 packets every 50 ms.
    for (std::size_t i = 0; i < old.size(); ++i) {
      sim.send_raw(old[i].from, old[i].to, old[i].data);
      if (i % 100 == 99) sim.run_for(50ms);
    }
    sim.run_for(10s);
    CHECK(all_alive_at_own_incarnation(sim));
    CHECK(digests(sim) == before);
  });
}

TEST_CASE("floods of pings, relay requests and ghosts are bounded", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    auto o = sim_options(seed);
    o.base.max_members = 24;
    simulator sim(o);
    const auto members = sim.start_converged(8);
    const node_id mallory = sim.add_node();
    const shoal::address from = sim.addr(mallory);
    sim.run_for(5s);

    // What n0 sends in 10 s of normal life.
    const auto sent0 = sim.metrics(0).sent.total_packets();
    sim.run_for(10s);
    const auto baseline = sim.metrics(0).sent.total_packets() - sent0;

    // 10 s at 2000 packets a second to n0: pings and requests to relay a ping
    // to n1 (a reflection attempt), 10 each per 10 ms. One real member
    // crashes in the middle: the flood must not stop the failure detector.
    const auto sent1 = sim.metrics(0).sent.total_packets();
    std::uint64_t flood = 0;
    std::uint32_t seq = 0;
    for (int tick = 0; tick < 1000; ++tick) {
      for (int k = 0; k < 10; ++k) {
        sim.send_raw(mallory, 0, packet({wire::ping{++seq, "n0", "mallory", from}}));
        sim.send_raw(
            mallory, 0,
            packet({wire::indirect_ping{++seq, "n1", sim.addr(1), "mallory", from, true}}));
        flood += 2;
      }
      if (tick == 300) sim.crash(7);
      sim.run_for(10ms);
    }
    const auto during = sim.metrics(0).sent.total_packets() - sent1;
    INFO("n0 sent " << during << " packets during a flood of " << flood << " (baseline " << baseline
                    << " in 10 s)");
    // At most an ack per ping, and a ping plus an ack or nack per relay
    // request: 3 per 2 flood packets, plus its own traffic.
    CHECK(during <= baseline * 2 + flood * 3 / 2);
    CHECK(sim.wait_status_everywhere("n7", member_state::dead, 60s));

    // Ghosts: alive claims for 5000 names nobody runs. Each node keeps at most
    // max_members members and counts the rest.
    for (int g = 0; g < 5000; ++g) {
      const auto ghost = packet({wire::alive{0, "ghost-" + std::to_string(g), from, {}, 1}});
      sim.send_raw(mallory, static_cast<node_id>(g % 7), ghost);
      if (g % 100 == 99) sim.run_for(10ms);
    }
    sim.run_for(5s);
    for (node_id i : sim.live_nodes()) {
      CHECK(sim.node_core(i).members().size() <= 24);
      CHECK(sim.node_core(i).stats().members_rejected > 0);
    }
    // No wedge: the ghosts never answer and die; the real members stay alive.
    // This takes minutes: ghosts picked as indirect probers send no nacks,
    // so every node judges its own network bad (Lifeguard) and probes up to
    // 8 times slower until the ghosts are gone (docs/security.md).
    CHECK(sim.wait_until(
        [&] {
          for (node_id i : sim.live_nodes())
            if (sim.node_core(i).count(member_state::alive) != sim.live_count()) return false;
          return true;
        },
        900s));
    CHECK(all_alive_at_own_incarnation(sim));
    CHECK(sim.false_deaths() == 0);
    CHECK(sim.tick_anomalies() == 0);
  });
}

TEST_CASE("exile: a claim 2^32 ahead cannot push a member's refutation out of reach", "[sim]") {
  // A suspect at own + 2^32, sent to the member alone: refuting it would take
  // own + 2^32 + 1, beyond what its peers (holding own) accept, so the
  // member's word would be ignored by all of them from then on: new tags never
  // spread, and after a restart at its persisted incarnation it stays dead in
  // every view. Claims a member could not refute within its peers' reach are
  // refused, by the member and by its peers.
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    const auto members = sim.start_converged(8);
    const node_id mallory = sim.add_node();
    sim.run_for(5s);
    const node_id victim = 3;
    const std::uint64_t far = inc_of(sim, victim) + (std::uint64_t{1} << 32);
    sim.send_raw(mallory, victim, packet({wire::suspect{far, "n3", "n7"}}));
    sim.run_for(10s);  // a refutation's retransmissions would be over
    INFO("victim's incarnation " << inc_of(sim, victim) << ", forged " << far);
    // Everyone holds the victim's own incarnation (a refutation at far + 1
    // would be ignored by all of them, for good).
    CHECK(sim.wait_until([&] { return alive_at_own_incarnation(sim, victim); }, 30s));
    for (node_id t : members)
      if (t != victim) sim.send_raw(mallory, t, packet({wire::dead{far, "n3", "n7"}}));
    sim.run_for(5s);
    CHECK(sim.wait_until([&] { return alive_at_own_incarnation(sim, victim); }, 30s));
    // Its word still counts: new tags reach everyone.
    shoal::outbox out;
    REQUIRE_FALSE(sim.node_core(victim).set_tags(sim.now(), {{"role", "db"}}, out));
    sim.run_for(1ms);
    CHECK(sim.wait_until(
        [&] {
          for (node_id t : members) {
            const auto m = sim.node_core(t).find("n3");
            if (!m || m->tags.count("role") == 0) return false;
          }
          return true;
        },
        30s));
    // And after a restart at the incarnation it persisted, it is back.
    const std::uint64_t persisted = inc_of(sim, victim);
    sim.crash(victim);
    REQUIRE(sim.wait_status_everywhere("n3", member_state::dead, 120s));
    sim.restart(victim, {0, 1}, persisted);
    CHECK(sim.wait_until([&] { return alive_at_own_incarnation(sim, victim); }, 30s));
  });
}

TEST_CASE("exile: a claim just within reach is refuted and the member stays alive", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    const auto members = sim.start_converged(8);
    const node_id mallory = sim.add_node();
    sim.run_for(5s);
    const node_id victim = 3;
    const std::uint64_t near = inc_of(sim, victim) + (std::uint64_t{1} << 32) - 1;
    sim.send_raw(mallory, victim, packet({wire::suspect{near, "n3", "n7"}}));
    sim.run_for(10s);
    for (node_id t : members)
      if (t != victim) sim.send_raw(mallory, t, packet({wire::dead{near, "n3", "n7"}}));
    CHECK(sim.wait_until([&] { return alive_at_own_incarnation(sim, victim); }, 30s));
    CHECK(inc_of(sim, victim) > near);
    CHECK(sees(sim, members, victim, member_state::alive));
  });
}

// ---- what the simulator counts as a false positive (sim.hpp, false_positive) ----

namespace {

/// Every member but `victim` hears a forged dead about it at the incarnation
/// it holds; returns the false deaths counted in the next 2 s (the victim
/// refutes; no suspicion timer runs out that soon).
std::uint64_t forge_dead(simulator& sim, std::span<const node_id> members, node_id mallory,
                         node_id victim) {
  const std::uint64_t before = sim.false_deaths();
  for (node_id t : members) {
    if (t == victim || !sim.is_live(t)) continue;
    const auto m = sim.node_core(t).find(sim.name(victim));
    if (!m) continue;
    sim.send_raw(mallory, t, packet({wire::dead{m->incarnation, sim.name(victim), "n7"}}));
  }
  sim.run_for(2s);
  return sim.false_deaths() - before;
}

}  // namespace

TEST_CASE("a forged dead 10 s into a converged start counts as a false death", "[sim]") {
  // No grace at the start: a cluster is judged from its first instant, so a
  // healthy member declared dead at t = 10 s is a false death, and the
  // detection window of an early crash is covered.
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    REQUIRE(sim.opts().false_positive_grace == 60s);  // the default, and well past t = 10 s
    const auto members = sim.start_converged(8);
    const node_id mallory = sim.add_node();
    sim.run_for(10s);
    CHECK(sim.false_deaths() == 0);
    CHECK(forge_dead(sim, members, mallory, 3) > 0);
    REQUIRE_FALSE(sim.false_positives().empty());
    const auto& f = sim.false_positives().back();
    CHECK(f.accused == 3);
    CHECK(f.type == shoal::event_type::member_failed);
    CHECK(f.at - sim.start_time() >= 10s);
    CHECK(f.at - sim.start_time() < 13s);
    CHECK(sim.wait_until([&] { return alive_at_own_incarnation(sim, 3); }, 30s));
  });
}

TEST_CASE("the grace follows the end of an injected fault and never its start", "[sim]") {
  // The same forgery 10 s after each event: excused after a fault ended
  // (restart, resume, heal, unblock, a loss of 1 lifted, a slow spell over),
  // counted after a fault started and while one lasts that does not cut the
  // pair, and under any loss below 1.
  for_each_seed({sim_seeds().front(), sim_seeds().back()}, [&](std::uint64_t seed) {
    const node_id victim = 3;
    const auto after = [&](const char* what, bool excused, auto&& fault) {
      INFO(what);
      simulator sim(sim_options(seed));
      const auto members = sim.start_converged(8);
      const node_id mallory = sim.add_node();
      sim.run_for(20s);
      fault(sim);
      sim.run_for(10s);
      const std::uint64_t counted = forge_dead(sim, members, mallory, victim);
      if (excused)
        CHECK(counted == 0);
      else
        CHECK(counted > 0);
    };
    after("restart", true, [&](simulator& sim) {
      sim.crash(victim);
      sim.run_for(1s);
      sim.restart(victim);
    });
    after("resume", true, [&](simulator& sim) {
      sim.pause(victim);
      sim.run_for(1s);
      sim.resume(victim);
    });
    after("end of a timed pause", true, [&](simulator& sim) { sim.pause(victim, 1s); });
    after("heal", true, [&](simulator& sim) {
      const auto p = sim.partition({victim}, {6, 7});
      sim.run_for(1s);
      sim.heal(p);
    });
    after("unblock_io", true, [&](simulator& sim) {
      sim.block_io(victim);
      sim.run_for(1s);
      sim.unblock_io(victim);
    });
    after("a link loss of 1 lowered", true, [&](simulator& sim) {
      sim.set_link_loss(victim, 6, 1.0);
      sim.run_for(1s);
      sim.set_link_loss(victim, 6, 0.5);
    });
    after("a slow spell over", true, [&](simulator& sim) {
      sim.set_slow(victim, 100ms);
      sim.run_for(1s);
      sim.set_slow(victim, 0s);
    });
    after("a partition that does not cut the pair starts", false,
          [&](simulator& sim) { sim.partition({6}, {7}); });
    after("a node crashes", false, [&](simulator& sim) { sim.crash(6); });
    after("a slow spell starts (the victim still marked healthy)", false,
          [&](simulator& sim) { sim.set_slow(victim, 100ms); });
    after("loss below 1 starts", false, [&](simulator& sim) { sim.set_loss(0.1); });
    after("loss below 1 ends", false, [&](simulator& sim) {
      sim.set_loss(0.5);
      sim.run_for(1s);
      sim.set_loss(0.0);
    });
  });
}

TEST_CASE("false positives are counted exactly and deaths are kept past a flood of suspicions",
          "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    auto o = sim_options(seed);
    o.max_false_positive_records = 2;  // of each type
    simulator sim(o);
    const auto members = sim.start_converged(8);
    const node_id mallory = sim.add_node();
    sim.set_healthy(6, false);  // what n6 declares counts as by an unhealthy accuser
    sim.run_for(5s);
    const auto forge = [&](node_id victim, bool dead) {
      for (node_id t : members) {
        if (t == victim) continue;
        const auto inc = sim.node_core(t).find(sim.name(victim))->incarnation;
        const std::string name = sim.name(victim);
        sim.send_raw(mallory, t,
                     dead ? packet({wire::dead{inc, name, "n7"}})
                          : packet({wire::suspect{inc, name, "n7"}}));
      }
      sim.run_for(2s);
    };
    forge(3, false);  // each of the 7 others suspects n3 once
    CHECK(sim.false_suspicions() == 7);
    CHECK(sim.false_suspicions_by_unhealthy() == 1);
    forge(4, true);  // and declares n4 dead once
    CHECK(sim.false_deaths() == 7);
    CHECK(sim.false_deaths_by_unhealthy() == 1);
    std::size_t kept_suspicions = 0, kept_deaths = 0;
    for (const auto& f : sim.false_positives())
      ++(f.type == shoal::event_type::member_failed ? kept_deaths : kept_suspicions);
    CHECK(kept_suspicions == 2);
    CHECK(kept_deaths == 2);
  });
}
