// Operator calls on real sockets: force_leave() and send_to().
#include <atomic>
#include <mutex>
#include <vector>

#include <catch2/catch.hpp>

#include "io_test_util.hpp"

using namespace std::chrono_literals;
using iotest::node_list;
using iotest::require_mesh;
using iotest::start_cluster;
using iotest::wait_until;
using shoal::errc;
using shoal::member_state;

TEST_CASE("force_leave turns a failed node into a left one everywhere", "[io]") {
  auto nodes = start_cluster("fl", 4);
  require_mesh(nodes, 4);
  std::atomic<int> left_events{0};
  nodes[1]->subscribe([&](const shoal::event& e) {
    if (e.type == shoal::event_type::member_left && e.who.name == "fl3") ++left_events;
  });
  CHECK(nodes[0]->force_leave("fl3") == errc::member_not_failed);  // alive
  CHECK(nodes[0]->force_leave("fl0") == errc::member_not_failed);  // itself
  CHECK(nodes[0]->force_leave("nobody") == errc::unknown_member);

  nodes[3]->stop();
  nodes.pop_back();
  REQUIRE(wait_until([&] { return iotest::everyone_sees(nodes, "fl3", member_state::dead); }, 40s));
  CHECK_FALSE(nodes[0]->force_leave("fl3"));
  CHECK(iotest::state_at(*nodes[0], "fl3") == member_state::left);
  const bool ok =
      wait_until([&] { return iotest::everyone_sees(nodes, "fl3", member_state::left); }, 20s);
  INFO(iotest::views(nodes));
  REQUIRE(ok);
  CHECK(wait_until([&] { return left_events == 1; }, 5s));
  CHECK(nodes[2]->force_leave("fl3") == errc::member_not_failed);  // already left

  nodes[2]->stop();
  CHECK(nodes[2]->force_leave("fl3") == errc::not_running);
  shoal::node idle(iotest::local_config("fl-idle"));
  CHECK(idle.force_leave("fl3") == errc::not_running);  // never started
}

TEST_CASE("send_to delivers one user message to one member", "[io]") {
  auto nodes = start_cluster("st", 3);
  require_mesh(nodes, 3);
  std::mutex mu;
  std::vector<shoal::user_message> got1, got2;
  nodes[1]->on_user_message([&](const shoal::user_message& m) {
    std::lock_guard lock(mu);
    got1.push_back(m);
  });
  nodes[2]->on_user_message([&](const shoal::user_message& m) {
    std::lock_guard lock(mu);
    got2.push_back(m);
  });
  const shoal::bytes payload{'p', 'i', 'n', 'g'};
  REQUIRE_FALSE(nodes[0]->send_to("st1", payload));
  REQUIRE(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return !got1.empty();
      },
      5s));
  {
    std::lock_guard lock(mu);
    REQUIRE(got1.size() == 1);
    CHECK(got1[0].data == payload);
    CHECK(got1[0].from == nodes[0]->local_member().addr);
    CHECK(got2.empty());
  }

  const auto max = shoal::config::local().max_user_broadcast_bytes;
  CHECK(nodes[0]->send_to("st1", shoal::bytes(max + 1, 7)) == errc::invalid_argument);
  CHECK(nodes[0]->send_to("st1", {}) == errc::invalid_argument);
  CHECK(nodes[0]->send_to("nobody", payload) == errc::unknown_member);
  // The largest payload allowed fits one packet and arrives whole.
  REQUIRE_FALSE(nodes[0]->send_to("st2", shoal::bytes(max, 7)));
  REQUIRE(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return !got2.empty();
      },
      5s));
  {
    std::lock_guard lock(mu);
    CHECK(got2[0].data == shoal::bytes(max, 7));
  }

  nodes[2]->stop();
  REQUIRE(
      wait_until([&] { return iotest::state_at(*nodes[0], "st2") == member_state::dead; }, 40s));
  CHECK(nodes[0]->send_to("st2", payload) == errc::member_down);
  nodes[0]->stop();
  CHECK(nodes[0]->send_to("st1", payload) == errc::not_running);
}
