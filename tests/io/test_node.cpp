// shoal::node on real sockets: several nodes in one process, on loopback.
#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "io_test_util.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
using iotest::wait_until;
using shoal::member_state;

using iotest::node_list;
using iotest::require_mesh;
using iotest::start_cluster;

TEST_CASE("a node starts alone on an ephemeral port", "[io]") {
  shoal::node n(iotest::local_config("solo"));
  CHECK_FALSE(n.running());
  CHECK(n.members().empty());
  REQUIRE_FALSE(n.start());
  CHECK(n.running());
  CHECK(n.port() != 0);
  CHECK(n.local_member().addr.port() == n.port());
  CHECK(n.local_member().addr.to_string() == "127.0.0.1:" + std::to_string(n.port()));
  REQUIRE(n.members().size() == 1);
  CHECK(n.members()[0].name == "solo");
  CHECK(n.start() == shoal::errc::not_running);  // once only
  CHECK_FALSE(n.leave(1s));                      // alone: nobody to tell
  n.stop();
  CHECK_FALSE(n.running());
  n.stop();  // idempotent
  CHECK(n.set_tags({{"k", "v"}}) == shoal::errc::not_running);
}

TEST_CASE("sixteen nodes on one shared io_context converge", "[io]") {
  boost::asio::io_context ctx;
  auto work = boost::asio::make_work_guard(ctx);
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) threads.emplace_back([&ctx] { ctx.run(); });

  node_list nodes;
  nodes.push_back(std::make_unique<shoal::node>(iotest::local_config("m0"), ctx));
  REQUIRE_FALSE(nodes[0]->start());
  const std::string seed = iotest::seed_of(*nodes[0]);
  for (int i = 1; i < 16; ++i) {
    nodes.push_back(
        std::make_unique<shoal::node>(iotest::local_config("m" + std::to_string(i), {seed}), ctx));
    REQUIRE_FALSE(nodes.back()->start());
  }
  require_mesh(nodes, 16);
  // Equal views give equal digests.
  CHECK(wait_until(
      [&] {
        for (const auto& n : nodes)
          if (n->digest() != nodes[0]->digest()) return false;
        return true;
      },
      10s));
  CHECK(nodes[0]->stats().runtime.tcp_accepted >= 15);  // every join went through m0
  // Joins travel over TCP; probes and gossip over UDP reach m0 too.
  CHECK(wait_until([&] { return nodes[0]->stats().core.packets_in > 0; }, 10s));

  for (auto& n : nodes) n->stop();
  nodes.clear();
  work.reset();
  for (auto& t : threads) t.join();
}

TEST_CASE("join() reports what it contacted", "[io]") {
  auto nodes = start_cluster("j", 1);
  shoal::node b(iotest::local_config("j-b"));
  REQUIRE_FALSE(b.start());

  SECTION("a numeric seed") {
    const auto r = b.join({iotest::seed_of(*nodes[0])});
    CHECK_FALSE(r.error);
    CHECK(r.resolved == 1);
    CHECK(r.contacted == 1);
  }
  SECTION("a host name (A and AAAA; the IPv4 socket keeps the A records)") {
    const auto r = b.join({"localhost:" + std::to_string(nodes[0]->port())});
    INFO(r.error.message());
    CHECK_FALSE(r.error);
    CHECK(r.contacted == 1);
  }
  SECTION("nobody listening") {
    // A port that was just free: bind, note it, close.
    boost::asio::io_context tmp;
    boost::asio::ip::tcp::acceptor a(tmp, {boost::asio::ip::make_address("127.0.0.1"), 0});
    const auto dead_port = a.local_endpoint().port();
    a.close();
    const auto r = b.join({"127.0.0.1:" + std::to_string(dead_port)});
    CHECK(r.error);
    CHECK(r.contacted == 0);
  }
  SECTION("no seed") {
    const auto r = b.join({});
    CHECK_FALSE(r.error);
    CHECK(r.contacted == 0);
  }
  SECTION("a bad seed") {
    const auto r = b.join({"[::1"});
    CHECK(r.error);
    CHECK(b.stats().runtime.resolve_failures == 1);
  }
  SECTION("from a callback on the node's strand") {
    std::atomic<bool> refused{false};
    std::atomic<bool> called{false};
    b.subscribe([&](const shoal::event&) {
      if (called.exchange(true)) return;
      refused =
          b.join({iotest::seed_of(*nodes[0])}).error == std::errc::resource_deadlock_would_occur;
    });
    b.set_tags({{"poke", "1"}});  // an event for b itself
    REQUIRE(wait_until([&] { return called.load(); }, 10s));
    CHECK(refused);
  }
}

TEST_CASE("a node stopped without leaving is declared dead by all others", "[io]") {
  auto nodes = start_cluster("d", 5);
  require_mesh(nodes, 5);
  std::atomic<int> failed_events{0};
  nodes[0]->subscribe([&](const shoal::event& e) {
    if (e.type == shoal::event_type::member_failed && e.who.name == "d4") ++failed_events;
  });
  nodes[4]->stop();
  node_list others;
  for (std::size_t i = 0; i < 4; ++i) others.push_back(std::move(nodes[i]));
  const bool ok =
      wait_until([&] { return iotest::everyone_sees(others, "d4", member_state::dead); }, 40s);
  INFO(iotest::views(others));
  REQUIRE(ok);
  CHECK(failed_events == 1);
  CHECK(iotest::full_mesh(others, 4));
}

TEST_CASE("a node that leaves is left everywhere", "[io]") {
  auto nodes = start_cluster("l", 5);
  require_mesh(nodes, 5);
  CHECK_FALSE(nodes[4]->leave(5s));
  nodes[4]->stop();
  node_list others;
  for (std::size_t i = 0; i < 4; ++i) others.push_back(std::move(nodes[i]));
  const bool ok =
      wait_until([&] { return iotest::everyone_sees(others, "l4", member_state::left); }, 30s);
  INFO(iotest::views(others));
  REQUIRE(ok);
}

TEST_CASE("a node restarted with the same name is alive everywhere again", "[io]") {
  auto nodes = start_cluster("r", 4);
  require_mesh(nodes, 4);
  const auto old_addr = nodes[3]->local_member().addr;
  const std::string seed = iotest::seed_of(*nodes[0]);
  nodes[3]->stop();
  nodes[3].reset();

  SECTION("after it was declared dead") {
    node_list others;
    for (std::size_t i = 0; i < 3; ++i) others.push_back(std::move(nodes[i]));
    REQUIRE(
        wait_until([&] { return iotest::everyone_sees(others, "r3", member_state::dead); }, 40s));
    nodes = std::move(others);
  }
  bool same_port = false;
  SECTION("before anyone noticed") {
    nodes.pop_back();
  }
  SECTION("before anyone noticed, on the same port") {
    nodes.pop_back();
    same_port = true;
  }

  auto cfg = iotest::local_config("r3", {seed});
  if (same_port) cfg.bind = old_addr;
  auto again = std::make_unique<shoal::node>(cfg);
  REQUIRE_FALSE(again->start());
  const auto new_addr = again->local_member().addr;
  nodes.push_back(std::move(again));
  const bool ok = wait_until(
      [&] {
        for (const auto& n : nodes) {
          const auto m = n->find("r3");
          if (!m || m->state != member_state::alive || m->addr != new_addr) return false;
        }
        return iotest::full_mesh(nodes, 4);
      },
      30s);
  INFO(iotest::views(nodes) << "old " << old_addr.to_string() << " new " << new_addr.to_string());
  REQUIRE(ok);
}

TEST_CASE("a tag update reaches everyone", "[io]") {
  auto nodes = start_cluster("t", 4);
  require_mesh(nodes, 4);
  std::atomic<int> updates{0};
  nodes[0]->subscribe([&](const shoal::event& e) {
    if (e.type == shoal::event_type::member_updated && e.who.name == "t2" &&
        e.who.tags.count("role") == 1)
      ++updates;
  });
  REQUIRE_FALSE(nodes[2]->set_tags({{"role", "db"}, {"zone", "a"}}));
  CHECK(nodes[2]->local_member().tags.at("role") == "db");
  const bool ok = wait_until(
      [&] {
        for (const auto& n : nodes) {
          const auto m = n->find("t2");
          if (!m || m->tags != shoal::tag_map{{"role", "db"}, {"zone", "a"}}) return false;
        }
        return true;
      },
      20s);
  REQUIRE(ok);
  CHECK(wait_until([&] { return updates.load() == 1; }, 5s));
  // Over the bound: refused, nothing changes.
  CHECK(nodes[2]->set_tags({{"big", std::string(4096, 'x')}}) == shoal::errc::invalid_argument);
}

TEST_CASE("user broadcasts and user state reach the others", "[io]") {
  auto a_cfg = iotest::local_config("u0");
  shoal::node a(a_cfg);
  a.set_user_state({1, 2, 3});  // before start(): sent with the first push-pull
  REQUIRE_FALSE(a.start());

  shoal::node b(iotest::local_config("u1", {iotest::seed_of(a)}));
  std::mutex mu;
  std::vector<shoal::bytes> states, messages;
  b.on_user_state([&](const shoal::bytes& s) {
    std::lock_guard lock(mu);
    states.push_back(s);
  });
  b.on_user_message([&](const shoal::user_message& m) {
    std::lock_guard lock(mu);
    messages.push_back(m.data);
  });
  REQUIRE_FALSE(b.start());
  REQUIRE(
      wait_until([&] { return iotest::alive_count(a) == 2 && iotest::alive_count(b) == 2; }, 20s));
  CHECK(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return !states.empty() && states.front() == shoal::bytes{1, 2, 3};
      },
      10s));
  REQUIRE_FALSE(a.broadcast({'h', 'i'}));
  CHECK(wait_until(
      [&] {
        std::lock_guard lock(mu);
        return !messages.empty() && messages.front() == shoal::bytes{'h', 'i'};
      },
      10s));
  CHECK(a.broadcast({}) == shoal::errc::invalid_argument);
}

TEST_CASE("a throwing callback is counted and the node carries on", "[io]") {
  auto nodes = start_cluster("x", 2);
  nodes[0]->subscribe([](const shoal::event&) { throw std::runtime_error("boom"); });
  std::atomic<int> seen{0};
  const auto id = nodes[0]->subscribe([&](const shoal::event&) { ++seen; });
  require_mesh(nodes, 2);
  // The mesh may have formed before the subscriptions: a tag update is an
  // event both callbacks see for sure.
  auto tagged = [&](const char* key) {
    const auto m = nodes[0]->find("x1");
    return m && m->tags.count(key) == 1;
  };
  REQUIRE_FALSE(nodes[1]->set_tags({{"a", "b"}}));
  REQUIRE(wait_until([&] { return tagged("a") && seen > 0; }, 10s));
  CHECK(nodes[0]->stats().runtime.callback_exceptions > 0);
  nodes[0]->unsubscribe(id);
  const int before = seen;
  REQUIRE_FALSE(nodes[1]->set_tags({{"c", "d"}}));
  REQUIRE(wait_until([&] { return tagged("c"); }, 10s));
  CHECK(seen == before);
}

TEST_CASE("the runtime counts datagrams and bytes on the wire", "[io]") {
  // Without compression, what the core counts is what crosses the socket.
  auto nodes = start_cluster("w", 2, [](shoal::node_config& nc) { nc.compression = false; });
  require_mesh(nodes, 2);
  // A few probe rounds both ways.
  REQUIRE(wait_until(
      [&] {
        return nodes[0]->stats().runtime.udp_packets_in >= 5 &&
               nodes[1]->stats().runtime.udp_packets_in >= 5;
      },
      10s));
  for (auto& n : nodes) n->stop();
  for (const auto& n : nodes) {
    const auto s = n->stats();
    CHECK(s.runtime.udp_packets_out > 0);
    CHECK(s.runtime.udp_packets_out <= s.core.packets_out);
    // No label, no key, no compression: what the core built is what went
    // out (some of it may still have been queued at stop()).
    CHECK(s.runtime.udp_bytes_out > 0);
    CHECK(s.runtime.udp_bytes_out <= s.core.bytes_out);
    CHECK(s.runtime.udp_bytes_in >= s.core.bytes_in);
    CHECK(s.runtime.udp_packets_in >= s.core.packets_in);
    // The join: w1 asked (frame header + state), w0 answered.
    CHECK(s.runtime.tcp_bytes_in > 4);
    CHECK(s.runtime.tcp_bytes_out > 4);
  }
}

TEST_CASE("what peers send is bounded", "[io]") {
  namespace net = boost::asio;
  auto cfg = iotest::local_config("b0");
  cfg.max_tcp_sessions = 4;
  cfg.stream_deadline = 500ms;
  shoal::node n(cfg);
  REQUIRE_FALSE(n.start());
  const net::ip::tcp::endpoint tcp_ep(net::ip::make_address("127.0.0.1"), n.port());
  net::io_context ctx;

  SECTION("junk UDP is counted and dropped") {
    net::ip::udp::socket s(ctx, net::ip::udp::v4());
    const std::string junk = "definitely not a shoal packet";
    s.send_to(net::buffer(junk), net::ip::udp::endpoint(tcp_ep.address(), n.port()));
    // Over udp_buffer_size + 512: still in the receive buffer, the core drops it.
    std::vector<std::uint8_t> over(cfg.protocol.udp_buffer_size + 600, 0xab);
    s.send_to(net::buffer(over), net::ip::udp::endpoint(tcp_ep.address(), n.port()));
    CHECK(wait_until([&] { return n.stats().core.invalid_total() >= 2; }, 5s));
    // Over any envelope too: truncated by the kernel, counted by the runtime.
    std::vector<std::uint8_t> big(9000, 0xab);
    s.send_to(net::buffer(big), net::ip::udp::endpoint(tcp_ep.address(), n.port()));
    CHECK(wait_until([&] { return n.stats().runtime.udp_too_large == 1; }, 5s));
    CHECK(n.stats().core.invalid_total() == 2);
  }
  SECTION("a frame over max_push_pull_bytes is refused") {
    net::ip::tcp::socket s(ctx);
    s.connect(tcp_ep);
    const std::uint8_t header[4] = {0x7f, 0xff, 0xff, 0xff};
    net::write(s, net::buffer(header));
    CHECK(wait_until([&] { return n.stats().runtime.frames_too_large == 1; }, 5s));
  }
  SECTION("idle connections time out, extra ones are closed at accept") {
    std::vector<net::ip::tcp::socket> idle;
    for (int i = 0; i < 8; ++i) {
      idle.emplace_back(ctx);
      idle.back().connect(tcp_ep);
    }
    CHECK(wait_until([&] { return n.stats().runtime.tcp_rejected == 4; }, 5s));
    CHECK(wait_until([&] { return n.stats().runtime.stream_timeouts == 4; }, 10s));
    CHECK(wait_until([&] { return n.stats().tcp_sessions == 0; }, 5s));
  }
  CHECK(n.running());
  CHECK(n.members().size() == 1);
}

TEST_CASE("a cluster on ::1", "[io]") {
  if (!iotest::loopback_v6()) return;
  node_list nodes;
  nodes.push_back(std::make_unique<shoal::node>(iotest::local_config("v0", {}, "::1")));
  REQUIRE_FALSE(nodes[0]->start());
  const std::string seed = "[::1]:" + std::to_string(nodes[0]->port());
  CHECK(iotest::seed_of(*nodes[0]) == seed);
  for (int i = 1; i < 3; ++i) {
    nodes.push_back(std::make_unique<shoal::node>(
        iotest::local_config("v" + std::to_string(i), {seed}, "::1")));
    REQUIRE_FALSE(nodes.back()->start());
  }
  require_mesh(nodes, 3);
  for (const auto& m : nodes[0]->members()) CHECK(m.addr.is_v6());
}

TEST_CASE("a dual-stack node on :: talks to IPv4 peers", "[io]") {
  if (!iotest::dual_stack()) return;
  auto dual_cfg = iotest::local_config("ds0", {}, "::");
  dual_cfg.protocol.advertise = *shoal::address::parse("127.0.0.1:0");
  node_list nodes;
  nodes.push_back(std::make_unique<shoal::node>(dual_cfg));
  REQUIRE_FALSE(nodes[0]->start());
  CHECK(nodes[0]->local_member().addr.to_string() ==
        "127.0.0.1:" + std::to_string(nodes[0]->port()));
  nodes.push_back(
      std::make_unique<shoal::node>(iotest::local_config("ds1", {iotest::seed_of(*nodes[0])})));
  REQUIRE_FALSE(nodes[1]->start());
  require_mesh(nodes, 2);
  // The IPv4 peer is known by its IPv4 address, not an IPv4-mapped IPv6 one.
  const auto peer = nodes[0]->find("ds1");
  REQUIRE(peer);
  CHECK_FALSE(peer->addr.is_v6());
}
