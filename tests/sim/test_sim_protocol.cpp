// Protocol scenarios on the simulator: real cores, lan() config, a LAN-like
// network (1 ms +- 0.5 ms). Each test loops over seeds 1..8 (or 1..K with
// SHOAL_SIM_SEEDS=K in the environment) with for_each_seed, which prints the
// seed of a failure; a failing seed replays exactly. The words (converge,
// sees, suspicion_min ...) are in sim_vocabulary.hpp.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <shoal/sim.hpp>

#include "sim_vocabulary.hpp"

using namespace std::chrono_literals;
using shoal::event_type;
using shoal::member_state;
using shoal::sim::node_id;
using shoal::sim::simulator;

TEST_CASE("32 nodes converge to a full mesh", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    CHECK(sim.full_mesh());
    CHECK(sim.false_suspicions() == 0);
    CHECK(sim.false_deaths() == 0);
    for (node_id i : sim.live_nodes()) CHECK(sim.node_core(i).members().size() == 32);
  });
}

TEST_CASE("the same seed gives the same run", "[sim]") {
  auto run = [](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    sim.bootstrap(16);
    sim.set_loss(0.05);
    sim.run_for(40s);
    std::vector<std::uint64_t> v{sim.events_processed(), sim.total_sent().total_packets(),
                                 sim.total_sent().total_bytes()};
    for (node_id i = 0; i < sim.size(); ++i) v.push_back(sim.node_core(i).digest());
    return v;
  };
  CHECK(run(11) == run(11));
  CHECK(run(11) != run(12));
}

TEST_CASE("no false death at 10% loss", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    sim.set_loss(0.10);
    sim.run_for(300s);
    INFO("false suspicions: " << sim.false_suspicions());
    CHECK(sim.false_deaths() == 0);
    CHECK(dead_anywhere(sim) == 0);
    sim.set_loss(0.0);
    CHECK(sim.wait_converged(60s));
  });
}

TEST_CASE("a crash is detected everywhere", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    const auto victim = static_cast<node_id>(3 + sim.scenario_rng().below(29));
    CAPTURE(sim.name(victim));
    sim.crash(victim);
    REQUIRE(sim.wait_status_everywhere(sim.name(victim), member_state::dead, 90s));
    REQUIRE(sim.crashes().size() == 1);
    const auto& c = sim.crashes()[0];
    REQUIRE(c.first_suspect);
    REQUIRE(c.first_dead);
    REQUIRE(c.all_dead);
    CHECK(*c.first_suspect <= *c.first_dead);
    CHECK(*c.first_dead <= *c.all_dead);
    CHECK(*c.first_suspect - c.at < 10s);
    // The first death is the first suspicion's timer running out: no sooner
    // than Lifeguard's minimum, no later than where the timer starts.
    const shoal::duration suspected = *c.first_dead - *c.first_suspect;
    CHECK(suspected >= suspicion_min(sim.opts().base, 32));
    CHECK(suspected <= suspicion_max(sim.opts().base, 32));
    CHECK(sim.false_deaths() == 0);
    // the survivors still see each other
    CHECK(sim.full_mesh());
  });
}

TEST_CASE("a graceful leave is seen as left, never as failed", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    const node_id leaver = 17;
    std::size_t failed = 0;
    sim.on_event([&](node_id, const shoal::event& e) {
      if (e.who.name == sim.name(leaver) && e.type == event_type::member_failed) ++failed;
    });
    sim.leave(leaver, 5s);
    REQUIRE(sim.wait_status_everywhere(sim.name(leaver), member_state::left, 30s));
    sim.run_for(60s);  // and it stays left
    CHECK(sim.status(leaver) == shoal::sim::node_status::left);
    CHECK(sim.status_everywhere(sim.name(leaver), member_state::left));
    CHECK(failed == 0);
    CHECK(sim.false_deaths() == 0);
  });
}

TEST_CASE("a node restarted after it was declared dead comes back alive", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    const node_id n = 9;
    sim.crash(n);
    REQUIRE(sim.wait_status_everywhere(sim.name(n), member_state::dead, 90s));
    sim.restart(n);
    CHECK(sim.life(n) == 2);
    CHECK(sim.node_core(n).local_member().incarnation == 0);
    REQUIRE(sim.wait_until([&] { return alive_at_own_incarnation(sim, n); }, 60s));
    CHECK(sim.wait_converged(60s));
  });
}

TEST_CASE("a node restarted before anyone noticed comes back alive", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    const node_id n = 21;
    sim.crash(n);
    sim.run_for(200ms);
    sim.restart(n);
    REQUIRE(sim.wait_until([&] { return alive_at_own_incarnation(sim, n); }, 60s));
    CHECK(sim.wait_converged(60s));
  });
}

TEST_CASE("a two-way partition heals without operator action", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    std::vector<node_id> a, b;
    for (node_id i = 0; i < 32; ++i) (i < 16 ? a : b).push_back(i);
    const auto p = sim.partition(a, b);
    // each half declares the other dead
    REQUIRE(sim.wait_until(
        [&] { return sees(sim, a, b, member_state::dead) && sees(sim, b, a, member_state::dead); },
        120s));
    sim.run_for(10s);
    CHECK(sim.false_deaths() == 0);  // partitioned nodes are fair game
    sim.heal(p);
    INFO("healing");
    CHECK(sim.wait_converged(300s));
  });
}

TEST_CASE("a lossy minority is removed while the healthy nodes stay", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    // Streams feel loss (the default): its TCP fallback pings suffer too.
    simulator sim(sim_options(seed));
    converge(sim, 32);
    const node_id lossy = 30;
    sim.set_egress_loss(lossy, 0.8);
    sim.set_healthy(lossy, false);
    const bool removed = sim.wait_until(
        [&] {
          for (node_id i : sim.live_nodes()) {
            if (i == lossy) continue;
            const auto s = sim.status_seen_by(i, sim.name(lossy));
            if (s && s != member_state::dead) return false;
          }
          return true;
        },
        180s);
    CHECK(removed);
    CHECK(sim.false_deaths() == 0);
    // no healthy node sees another healthy one dead (suspect for a moment is
    // fine: the lossy node's own probes fail and it accuses its peers)
    for (node_id i : sim.live_nodes()) {
      if (i == lossy) continue;
      for (node_id j : sim.live_nodes()) {
        if (j == lossy || j == i) continue;
        const auto s = sim.status_seen_by(i, sim.name(j));
        INFO(sim.name(i) << " about " << sim.name(j) << ": "
                         << (s ? shoal::to_string(*s) : "unknown"));
        CHECK((s == member_state::alive || s == member_state::suspect));
      }
    }
  });
}

TEST_CASE("a paused node is suspected, then refutes when it resumes", "[sim]") {
  // Each of the 31 others probes it once per 31 s round, so a 5 s pause goes
  // unnoticed now and then (about 3% of seeds): count the suspicions over all
  // seeds rather than per seed.
  std::size_t noticed = 0;
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    const node_id n = 5;
    std::size_t suspected = 0, failed = 0;
    sim.on_event([&](node_id, const shoal::event& e) {
      if (e.who.name != sim.name(n)) return;
      if (e.type == event_type::member_suspected) ++suspected;
      if (e.type == event_type::member_failed) ++failed;
    });
    sim.pause(n, 5s);
    sim.run_for(5s);
    if (suspected > 0) ++noticed;
    CHECK(sim.wait_converged(60s));
    CHECK(failed == 0);
    CHECK(sim.false_deaths() == 0);
  });
  CHECK(noticed * 4 >= sim_seeds().size() * 3);
}

TEST_CASE("a slow node does not get healthy nodes declared dead", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    converge(sim, 32);
    const node_id slow = 11;
    sim.set_slow(slow, 2s);
    sim.set_healthy(slow, false);
    sim.run_for(120s);
    INFO("false suspicions: " << sim.false_suspicions());
    CHECK(sim.false_deaths() == 0);
    sim.set_slow(slow, 0s);
    CHECK(sim.wait_converged(60s));
  });
}

TEST_CASE("a cluster started converged stays so, and detects a crash", "[sim]") {
  for_each_seed({sim_seeds().front(), sim_seeds().back()}, [&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    sim.start_converged(300);
    REQUIRE(sim.live_count() == 300);
    REQUIRE(sim.converged());
    sim.run_for(30s);
    CHECK(sim.converged());
    CHECK(sim.false_suspicions() == 0);
    const node_id victim = 123;
    sim.crash(victim);
    REQUIRE(sim.wait_status_everywhere(sim.name(victim), member_state::dead, 90s));
    REQUIRE(sim.crashes().size() == 1);
    CHECK(sim.crashes()[0].all_dead);
    CHECK(sim.false_deaths() == 0);
    // and it comes back through the seeds start_converged recorded
    sim.restart(victim);
    CHECK(sim.wait_until([&] { return alive_at_own_incarnation(sim, victim); }, 60s));
  });
}

TEST_CASE("rolling crashes and restarts all come back alive everywhere", "[sim]") {
  // 20 of 200 nodes crash at random times and restart 5 s later. A restarted
  // node learns the others by hearsay and confirms each by ping; a peer that
  // was itself down when pinged must be pinged again, not forgotten.
  for_each_seed({1, 6, 11}, [&](std::uint64_t seed) {
    simulator sim(sim_options(seed));
    sim.start_converged(200);
    auto& r = sim.scenario_rng();
    std::vector<node_id> victims;
    while (victims.size() < 20) {
      const auto v = static_cast<node_id>(3 + r.below(197));
      if (std::find(victims.begin(), victims.end(), v) != victims.end()) continue;
      victims.push_back(v);
      const auto when = r.between(shoal::duration(0), 10s);
      sim.after(when, [&sim, v] { sim.crash(v); });
      sim.after(when + 5s, [&sim, v] { sim.restart(v); });
    }
    sim.run_for(20s);
    CHECK(sim.wait_until([&] { return sim.live_count() == 200 && sim.full_mesh(); }, 60s));
  });
}

TEST_CASE("a restart at the same incarnation with new tags reaches every view", "[sim]") {
  // The restarted node learns its old life's alive (same incarnation, old
  // tags) from the cluster and must refute it, or its old tags stay in every
  // view for good.
  for_each_seed([&](std::uint64_t seed) {
    shoal::sim::simulator sim(sim_options(seed));
    auto cfg = shoal::config::lan();
    cfg.tags = {{"version", "1"}};
    for (int i = 0; i < 6; ++i) sim.add_node(cfg);
    for (shoal::sim::node_id i = 0; i < 6; ++i) {
      const std::vector<shoal::sim::node_id> seeds{0};
      sim.join(i, i == 0 ? std::span<const shoal::sim::node_id>{} : seeds);
    }
    REQUIRE(sim.wait_converged(60s));
    const shoal::sim::node_id who = 4;
    REQUIRE(sim.node_core(who).local_member().incarnation == 0);
    sim.crash(who);
    sim.run_for(50ms);  // back before anyone probed it in vain
    cfg.tags = {{"version", "2"}};
    sim.set_config(who, cfg);
    sim.restart(who, {0}, 0);
    const auto tags_everywhere = [&] {
      for (shoal::sim::node_id i : sim.live_nodes()) {
        const auto m = sim.node_core(i).find("n4");
        if (!m || m->state != member_state::alive || m->tags.at("version") != "2") return false;
      }
      return true;
    };
    CHECK(sim.wait_until(tags_everywhere, 30s));
    CHECK(sim.wait_converged(30s));
  });
}

TEST_CASE("a mixed-version cluster agrees on digests and does not push-pull for them", "[sim]") {
  // Nodes at protocol level 1 (digest without tags) beside level-2 nodes:
  // each pair uses the digest of the lower level, so views that agree give
  // equal digests and no digest-driven push-pull follows.
  for_each_seed([&](std::uint64_t seed) {
    shoal::sim::simulator sim(sim_options(seed));
    auto old_cfg = shoal::config::lan();
    old_cfg.protocol = 1;
    old_cfg.tags = {{"gen", "old"}};
    auto new_cfg = shoal::config::lan();
    new_cfg.tags = {{"gen", "new"}};
    for (int i = 0; i < 10; ++i) sim.add_node(i % 2 == 0 ? old_cfg : new_cfg);
    const std::vector<shoal::sim::node_id> seeds{0, 1};
    for (shoal::sim::node_id i = 0; i < 10; ++i)
      sim.join(i, i < 2 ? std::span<const shoal::sim::node_id>{} : seeds);
    REQUIRE(sim.wait_until([&] { return sim.full_mesh(); }, 60s));
    sim.run_for(60s);  // anti-entropy settles
    const std::uint64_t syncs = sum_live(sim, &shoal::core_stats::digest_syncs);
    const std::uint64_t mismatches = sum_live(sim, &shoal::core_stats::digest_mismatches);
    sim.run_for(300s);
    CHECK(sum_live(sim, &shoal::core_stats::digest_syncs) == syncs);
    CHECK(sum_live(sim, &shoal::core_stats::digest_mismatches) == mismatches);
    for (shoal::sim::node_id i : sim.live_nodes()) {
      const auto self = sim.node_core(i).local_member();
      CHECK(self.protocol == (i % 2 == 0 ? 1 : 2));
    }
  });
}

namespace {

/// n0 broadcasts `count` payloads of `size` bytes, one every `every`; returns
/// per payload the nodes that delivered it, and the time the last did.
struct reach {
  std::vector<std::set<shoal::sim::node_id>> got;
  std::vector<shoal::duration> last;
};

reach broadcast_reach(shoal::sim::simulator& sim, std::size_t count, std::size_t size,
                      shoal::duration every, shoal::duration wait) {
  reach r;
  r.got.resize(count);
  r.last.resize(count);
  std::vector<shoal::time_point> sent(count);
  sim.on_user_message([&](shoal::sim::node_id n, const shoal::user_message& m) {
    const std::size_t i = m.data.front();
    if (i >= count) return;
    CHECK(r.got[i].insert(n).second);  // delivered once
    r.last[i] = std::max(r.last[i], sim.now() - sent[i]);
  });
  for (std::size_t i = 0; i < count; ++i) {
    shoal::bytes payload(size, 0xab);
    payload.front() = static_cast<std::uint8_t>(i);
    sent[i] = sim.now();
    sim.act(0, [&](shoal::core& c, shoal::outbox&) { REQUIRE_FALSE(c.broadcast(payload)); });
    sim.run_for(every);
  }
  sim.run_for(wait);
  sim.on_user_message(nullptr);
  return r;
}

}  // namespace

TEST_CASE("a broadcast reaches every member, once, within 3 log2 N gossip rounds", "[sim]") {
  for_each_seed([&](std::uint64_t seed) {
    shoal::sim::simulator sim(sim_options(seed));
    const std::size_t n = 200;
    sim.start_converged(n);
    sim.run_for(5s);
    const auto rounds = std::ceil(3 * std::log2(static_cast<double>(n)));
    const auto bound = sim.opts().base.gossip_interval * static_cast<int>(rounds);
    const auto r = broadcast_reach(sim, 5, 100, 1s, bound);
    for (std::size_t i = 0; i < r.got.size(); ++i) {
      CAPTURE(i);
      CHECK(r.got[i].size() == n - 1);  // everyone but n0
      CHECK(r.last[i] <= bound);
    }
  });
}

TEST_CASE("a full-size broadcast gets through while membership churn keeps gossip busy", "[sim]") {
  // Every 100 ms ten members change their tags: the membership queue never
  // empties. Broadcasts of max_user_broadcast_bytes must still reach all.
  for_each_seed([&](std::uint64_t seed) {
    shoal::sim::simulator sim(sim_options(seed));
    const std::size_t n = 100;
    sim.start_converged(n);
    auto& rng = sim.scenario_rng();
    std::uint64_t version = 0;
    std::function<void()> churn = [&] {
      for (int k = 0; k < 10; ++k) {
        const auto who = static_cast<shoal::sim::node_id>(1 + rng.below(n - 1));
        const shoal::tag_map tags{{"v", std::to_string(++version)}, {"pad", std::string(300, 'p')}};
        sim.at(sim.now(), [&sim, who, tags] {
          sim.act(who, [&](shoal::core& c, shoal::outbox& out) {
            (void)c.set_tags(sim.now(), tags, out);
          });
        });
      }
      sim.after(100ms, churn);
    };
    sim.after(0ms, churn);
    sim.run_for(5s);
    const auto size = sim.opts().base.max_user_broadcast_bytes;
    const auto r = broadcast_reach(sim, 5, size, 1s, 30s);
    for (std::size_t i = 0; i < r.got.size(); ++i) {
      CAPTURE(i);
      CHECK(r.got[i].size() == n - 1);
    }
    // The churn was real: membership updates filled the queues meanwhile.
    CHECK(version > 1000);
  });
}
