// force_leave(): an operator moves a failed member to left, and every node
// follows; the member itself can still come back with a higher incarnation.
#include <catch2/catch.hpp>

#include <algorithm>

#include "mini_net.hpp"

using namespace std::chrono_literals;
using shoal::errc;
using shoal::event_type;
using shoal::member_state;
using test::addr_of;
using test::mini_net;

namespace {

mini_net three(std::uint64_t seed, shoal::duration reconnect_timeout = std::chrono::hours(24)) {
  mini_net net;
  for (int i = 0; i < 3; ++i) {
    auto c = net.make_config(i);
    c.reconnect_timeout = reconnect_timeout;
    net.add(c, seed * 100 + static_cast<std::uint64_t>(i));
  }
  net.join(0, {});
  net.join(1, {addr_of(0)});
  net.join(2, {addr_of(0)});
  return net;
}

std::size_t count_events(const mini_net::node& n, event_type t, const std::string& who) {
  return static_cast<std::size_t>(
      std::count_if(n.events.begin(), n.events.end(),
                    [&](const shoal::event& e) { return e.type == t && e.who.name == who; }));
}

std::error_code force_leave(mini_net& net, int i, const std::string& name) {
  shoal::outbox out;
  const auto ec = net.nodes[static_cast<std::size_t>(i)].core->force_leave(net.now, name, out);
  net.drain(i, out);
  return ec;
}

/// Crashes n2 and waits until n0 and n1 both declared it failed.
void crash_n2(mini_net& net) {
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
  net.nodes[2].up = false;
  REQUIRE(net.wait_until(
      [&] {
        return net.state_at(0, "n2") == member_state::dead &&
               net.state_at(1, "n2") == member_state::dead;
      },
      120s));
}

}  // namespace

TEST_CASE("force_leave refuses members that are not failed and changes nothing", "[unit]") {
  auto net = three(1);
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 30s));
  auto& core = *net.nodes[0].core;
  const auto digest = core.digest();
  const auto events = net.nodes[0].events.size();
  CHECK(force_leave(net, 0, "nobody") == errc::unknown_member);
  CHECK(force_leave(net, 0, "") == errc::unknown_member);
  CHECK(force_leave(net, 0, "n1") == errc::member_not_failed);  // alive
  CHECK(force_leave(net, 0, "n0") == errc::member_not_failed);  // itself
  CHECK(core.digest() == digest);
  CHECK(net.nodes[0].events.size() == events);
  CHECK(net.state_at(0, "n1") == member_state::alive);

  // Suspect is not failed either.
  net.drop = [&](const shoal::address&, const shoal::address& to) { return to == addr_of(1); };
  REQUIRE(net.wait_until([&] { return net.state_at(0, "n1") == member_state::suspect; }, 60s));
  CHECK(force_leave(net, 0, "n1") == errc::member_not_failed);
  CHECK(net.state_at(0, "n1") == member_state::suspect);
}

TEST_CASE("force_leave moves a failed member to left on every node", "[unit]") {
  for (std::uint64_t seed : {2u, 3u}) {
    CAPTURE(seed);
    auto net = three(seed, 60s);
    crash_n2(net);
    const auto inc = net.nodes[0].core->find("n2")->incarnation;
    REQUIRE(force_leave(net, 0, "n2") == std::error_code{});
    // At once here, with the member's incarnation unchanged...
    CHECK(net.state_at(0, "n2") == member_state::left);
    CHECK(net.nodes[0].core->find("n2")->incarnation == inc);
    CHECK(count_events(net.nodes[0], event_type::member_left, "n2") == 1);
    // ...and by gossip on the others.
    REQUIRE(net.wait_until([&] { return net.state_at(1, "n2") == member_state::left; }, 10s));
    CHECK(count_events(net.nodes[1], event_type::member_left, "n2") == 1);
    CHECK(net.nodes[0].core->digest() == net.nodes[1].core->digest());
    // Left now: a second force-leave is refused, on either node.
    CHECK(force_leave(net, 0, "n2") == errc::member_not_failed);
    CHECK(force_leave(net, 1, "n2") == errc::member_not_failed);
    // Push-pull keeps it left (a peer's stale "dead" does not undo it).
    net.run_for(40s);
    CHECK(net.state_at(0, "n2") == member_state::left);
    CHECK(net.state_at(1, "n2") == member_state::left);
    // Reaped like any left member, reconnect_timeout after it left.
    REQUIRE(net.wait_until([&] { return !net.state_at(0, "n2") && !net.state_at(1, "n2"); }, 60s));
    CHECK(count_events(net.nodes[0], event_type::member_reaped, "n2") == 1);
    CHECK(count_events(net.nodes[1], event_type::member_reaped, "n2") == 1);
    CHECK(force_leave(net, 0, "n2") == errc::unknown_member);
  }
}

TEST_CASE("a force-left member that comes back rejoins with a higher incarnation", "[unit]") {
  auto net = three(4);
  crash_n2(net);
  const auto inc = net.nodes[0].core->find("n2")->incarnation;
  REQUIRE(force_leave(net, 0, "n2") == std::error_code{});
  REQUIRE(net.wait_until([&] { return net.state_at(1, "n2") == member_state::left; }, 10s));
  // Same name and address, a fresh core at incarnation 0: it learns it was
  // declared left and refutes.
  net.nodes[2].core = std::make_unique<shoal::core>(net.make_config(2), 4444);
  net.nodes[2].up = true;
  net.join(2, {addr_of(0)});
  REQUIRE(net.wait_until([&] { return net.everyone_sees("n2", member_state::alive); }, 10s));
  CHECK(net.nodes[0].core->find("n2")->incarnation > inc);
  CHECK(count_events(net.nodes[1], event_type::member_joined, "n2") >= 2);
  REQUIRE(net.wait_until([&] { return net.full_mesh(); }, 10s));
}

TEST_CASE("force_leave needs a running node", "[unit]") {
  mini_net net;
  net.add(net.make_config(0), 1);
  CHECK(force_leave(net, 0, "n1") == errc::not_running);  // join() never called
  auto net3 = three(5);
  crash_n2(net3);
  shoal::outbox out;
  net3.nodes[0].core->leave(net3.now, 1s, out);
  net3.drain(0, out);
  CHECK(force_leave(net3, 0, "n2") == errc::not_running);
  CHECK(net3.state_at(0, "n2") == member_state::dead);
}

TEST_CASE("prune forgets a failed or left member at once, and refuses live ones", "[unit]") {
  auto net = three(6);
  crash_n2(net);
  const auto prune = [&](int i, const std::string& name) {
    shoal::outbox out;
    const auto ec = net.nodes[static_cast<std::size_t>(i)].core->prune(net.now, name, out);
    net.drain(i, out);
    return ec;
  };
  CHECK(prune(0, "n1") == errc::member_not_failed);  // alive
  CHECK(prune(0, "n0") == errc::member_not_failed);  // itself
  CHECK(prune(0, "nobody") == errc::unknown_member);
  // Failed on n0: pruned there at once (one reaped event); n1 still has it.
  REQUIRE(prune(0, "n2") == std::error_code{});
  CHECK_FALSE(net.state_at(0, "n2"));
  CHECK(count_events(net.nodes[0], event_type::member_reaped, "n2") == 1);
  CHECK(net.state_at(1, "n2") == member_state::dead);
  // Gossip and push-pulls from n1, which still holds it failed, do not bring it back.
  net.run_for(40s);
  CHECK_FALSE(net.state_at(0, "n2"));
  // Left on n1 (force_leave first), then pruned: the Serf `force-leave -prune` pair.
  REQUIRE(force_leave(net, 1, "n2") == std::error_code{});
  REQUIRE(prune(1, "n2") == std::error_code{});
  CHECK_FALSE(net.state_at(1, "n2"));
  CHECK(prune(1, "n2") == errc::unknown_member);
  net.run_for(20s);
  CHECK(net.full_mesh());
}

TEST_CASE("a pruned member that returns and fails again is reaped again, once", "[unit]") {
  // reconnect_timeout short, so reap() runs through the member's entries.
  auto net = three(7, 5s);
  crash_n2(net);
  shoal::outbox out;
  REQUIRE(net.nodes[0].core->prune(net.now, "n2", out) == std::error_code{});
  net.drain(0, out);
  // n2 restarts (a fresh core: a higher incarnation), is learned again, and crashes again.
  net.nodes[2].core = std::make_unique<shoal::core>(net.make_config(2), 7777);
  net.nodes[2].up = true;
  net.join(2, {addr_of(0)});
  REQUIRE(net.wait_until([&] { return net.state_at(0, "n2") == member_state::alive; }, 20s));
  net.nodes[2].up = false;
  REQUIRE(net.wait_until([&] { return net.state_at(0, "n2") == member_state::dead; }, 120s));
  // Reaped after reconnect_timeout, once.
  REQUIRE(net.wait_until([&] { return !net.state_at(0, "n2"); }, 60s));
  CHECK(count_events(net.nodes[0], event_type::member_reaped, "n2") == 2);  // prune + reap
  net.run_for(30s);
}
