// The refusal fast path (config::refusal_suspicion_timeout): a ping answered
// by ICMP port unreachable. Here on mini_net's virtual clock; the simulator
// and the real runtime have their own tests.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/formulas.hpp"
#include "mini_net.hpp"

using namespace std::chrono_literals;
using shoal::member_state;
using test::addr_of;
using test::mini_net;

namespace {

constexpr int nodes = 10;

mini_net cluster_of(std::uint64_t seed, shoal::duration refusal_timeout, int size = nodes) {
  mini_net net;
  for (int i = 0; i < size; ++i) {
    auto c = net.make_config(i);
    c.refusal_suspicion_timeout = refusal_timeout;
    net.add(std::move(c), seed * 1000 + static_cast<std::uint64_t>(i));
  }
  net.join(0, {});
  for (int i = 1; i < size; ++i) net.join(i, {addr_of(0)});
  return net;
}

std::uint64_t total(const mini_net& net, std::uint64_t shoal::core_stats::*field) {
  std::uint64_t sum = 0;
  for (const auto& n : net.nodes) sum += n.core->stats().*field;
  return sum;
}

bool anyone_saw_failed(const mini_net& net, const std::string& name) {
  for (const auto& n : net.nodes)
    for (const auto& e : n.events)
      if (e.type == shoal::event_type::member_failed && e.who.name == name) return true;
  return false;
}

/// The Lifeguard minimum a suspicion waits when nothing is refused.
shoal::duration lifeguard_min(const mini_net& net) {
  const auto& c = net.nodes[0].core->cfg();
  return shoal::detail::suspicion_min(c.suspicion_mult, nodes, c.probe_interval);
}

}  // namespace

TEST_CASE("refusal: a process gone from a live host is failed before the Lifeguard minimum",
          "[unit]") {
  for (std::uint64_t seed : {31u, 32u, 33u}) {
    CAPTURE(seed);
    auto net = cluster_of(seed, 1s);
    net.down_hosts_refuse = true;
    REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
    const auto crashed_at = net.now;
    net.nodes[4].up = false;
    REQUIRE(net.wait_until([&] { return net.everyone_sees("n4", member_state::dead); }, 60s, 10ms));
    const auto took = net.now - crashed_at;
    CAPTURE(std::chrono::duration<double>(took).count());
    // Someone probes n4 within a protocol period or so; the refusals of the
    // prober and its indirect probers then end the suspicion after 1 s.
    CHECK(took < lifeguard_min(net));
    CHECK(total(net, &shoal::core_stats::refusals) >= 3);
    CHECK(total(net, &shoal::core_stats::refusal_deaths) >= 1);
    for (std::size_t i = 0; i < net.nodes.size(); ++i)
      if (i != 4) CHECK(net.state_at(static_cast<int>(i), "n4") == member_state::dead);
  }
}

TEST_CASE("refusal: with the timeout 0 a refusal is only counted", "[unit]") {
  auto net = cluster_of(41, 0s);
  net.down_hosts_refuse = true;
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
  const auto crashed_at = net.now;
  net.nodes[4].up = false;
  REQUIRE(net.wait_until([&] { return net.everyone_sees("n4", member_state::dead); }, 120s, 10ms));
  CHECK(net.now - crashed_at >= lifeguard_min(net));
  CHECK(total(net, &shoal::core_stats::unreachable_reports) > 0);
  CHECK(total(net, &shoal::core_stats::refusals) == 0);
  CHECK(total(net, &shoal::core_stats::refusal_deaths) == 0);
}

TEST_CASE("refusal: one refused path does not shorten the suspicion of a mute member", "[unit]") {
  // n2 is mute (nothing it sends arrives, so it cannot refute) and only n0's
  // path to it refuses (a REJECT rule or forged ICMP there): whoever probes
  // n2 finds one refused path at most (n0's own, or n0 as a relay), and the
  // ordinary Lifeguard timeout applies.
  auto net = cluster_of(52, 2s);
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
  net.drop = [](const shoal::address& from, const shoal::address&) { return from == addr_of(2); };
  net.forge_refusal = [&](const shoal::address& from, const shoal::address& to) {
    return to == addr_of(2) && from == addr_of(0);
  };
  const auto muted_at = net.now;
  REQUIRE(net.wait_until([&] { return anyone_saw_failed(net, "n2"); }, 120s, 10ms));
  CHECK(total(net, &shoal::core_stats::refusals) > 0);
  CHECK(net.now - muted_at >= lifeguard_min(net));
  CHECK(total(net, &shoal::core_stats::refusal_deaths) == 0);
}

TEST_CASE("refusal: two refused paths and no ack shorten the suspicion of a mute member",
          "[unit]") {
  // Three members, n2 mute, both other paths to it refusing: n0's probe asks
  // n1 (the only relay there is) and finds two refused paths, and so does
  // n1's; n2 is failed 2 s after the first suspicion, before the Lifeguard
  // minimum.
  for (std::uint64_t seed : {53u, 54u, 55u}) {
    CAPTURE(seed);
    auto net = cluster_of(seed, 2s, 3);
    REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
    net.drop = [](const shoal::address& from, const shoal::address&) { return from == addr_of(2); };
    net.forge_refusal = [&](const shoal::address&, const shoal::address& to) {
      return to == addr_of(2);
    };
    const auto muted_at = net.now;
    REQUIRE(net.wait_until([&] { return anyone_saw_failed(net, "n2"); }, 120s, 10ms));
    CHECK(total(net, &shoal::core_stats::refusal_deaths) >= 1);
    const auto& c = net.nodes[0].core->cfg();
    CHECK(net.now - muted_at < 2 * c.probe_interval + shoal::detail::suspicion_min(
                                                          c.suspicion_mult, 3, c.probe_interval));
  }
}

TEST_CASE("refusal: forged refusals never fail a member that answers", "[unit]") {
  // Every path to n2 draws a forged port unreachable, but n2 answers: any ack
  // ends the probe, so nobody even suspects it.
  auto net = cluster_of(61, 2s);
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
  net.forge_refusal = [](const shoal::address&, const shoal::address& to) {
    return to == addr_of(2);
  };
  net.run_for(120s);
  CHECK(total(net, &shoal::core_stats::refusals) > 0);
  CHECK_FALSE(anyone_saw_failed(net, "n2"));
  for (const auto& n : net.nodes)
    for (const auto& e : n.events)
      CHECK_FALSE((e.type == shoal::event_type::member_suspected && e.who.name == "n2"));
  CHECK(net.everyone_sees("n2", member_state::alive));
}

TEST_CASE("refusal: one refused path accuses nobody when a relay gets an ack", "[unit]") {
  // A REJECT rule (or a forged ICMP) between n0 and n2 only: n0's probes of
  // n2 are refused, its relays reach n2. Nobody suspects n2, ever.
  auto net = cluster_of(81, 2s);
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
  net.drop = [](const shoal::address& from, const shoal::address& to) {
    return from == addr_of(0) && to == addr_of(2);
  };
  const auto before = net.nodes[2].core->local_member().incarnation;
  for (int round = 0; round < 120; ++round) {
    net.run_for(1s);
    // n0's pings to n2 never arrive; each is answered by a refusal.
    shoal::outbox out;
    net.nodes[0].core->handle_unreachable(net.now, addr_of(2), out);
    net.drain(0, out);
  }
  CHECK(net.nodes[0].core->stats().refusals > 0);
  CHECK(net.nodes[0].core->stats().indirect_probes > 0);
  for (const auto& n : net.nodes)
    for (const auto& e : n.events)
      CHECK_FALSE((e.type == shoal::event_type::member_suspected && e.who.name == "n2"));
  CHECK(net.nodes[2].core->local_member().incarnation == before);
}

TEST_CASE("refusal: an unmatched or stale report changes nothing", "[unit]") {
  auto net = cluster_of(71, 2s);
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
  const auto digest = net.nodes[0].core->digest();
  shoal::outbox out;
  // An address nobody has.
  net.nodes[0].core->handle_unreachable(net.now, shoal::address::v4({192, 0, 2, 9}, 1), out);
  CHECK(out.empty());
  // Members' addresses (and our own) while no ping to them is outstanding:
  // right after a tick that acked the last probe, ask every node about
  // every address; only an outstanding probe or relay may react.
  net.run_for(5s);
  for (std::size_t i = 0; i < net.nodes.size(); ++i) {
    for (int j = 0; j < nodes; ++j) {
      shoal::outbox o;
      net.nodes[i].core->handle_unreachable(net.now, addr_of(j), o);
      net.drain(static_cast<int>(i), o);
    }
  }
  net.run_for(30s);
  CHECK(net.nodes[0].core->stats().unreachable_reports == 1 + nodes);
  CHECK(total(net, &shoal::core_stats::suspicions) == 0);
  CHECK(net.nodes[0].core->digest() == digest);
  for (int j = 0; j < nodes; ++j)
    CHECK(net.everyone_sees("n" + std::to_string(j), member_state::alive));
}
