// Incoming packets per second per source: a flooding source is cut to the
// limit, counted, and the node keeps serving its cluster.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>

#include "io/rate_limit.hpp"
#include "io_test_util.hpp"

using namespace iotest;

using namespace std::chrono_literals;
namespace net = boost::asio;

TEST_CASE("source_rate_limiter: a window per source, a bounded table", "[io][limits]") {
  using clock = shoal::io::source_rate_limiter::clock;
  shoal::io::source_rate_limiter lim(3, 2);
  const auto t0 = clock::now();
  const auto a = *shoal::address::parse("10.0.0.1:1");
  const auto b = *shoal::address::parse("10.0.0.2:1");
  const auto c = *shoal::address::parse("10.0.0.3:1");
  const auto d = *shoal::address::parse("10.0.0.4:1");
  for (int i = 0; i < 3; ++i) CHECK(lim.allow(a, t0));
  CHECK_FALSE(lim.allow(a, t0));
  CHECK(lim.allow(b, t0));  // others are not affected
  // c and d do not fit the table: they share the overflow slot.
  CHECK(lim.allow(c, t0));
  CHECK(lim.allow(d, t0));
  CHECK(lim.allow(c, t0));
  CHECK_FALSE(lim.allow(d, t0));
  CHECK(lim.tracked() == 2);
  // A new window forgets everything.
  CHECK(lim.allow(a, t0 + 1s));
  CHECK(lim.tracked() == 1);
  shoal::io::source_rate_limiter off(0, 1);
  for (int i = 0; i < 100; ++i) CHECK(off.allow(a, t0));
}

TEST_CASE("a flood from one source is dropped and counted, the cluster is unaffected", "[io][limits]") {
  auto nodes = start_cluster("rl", 3, [](shoal::node_config& nc) { nc.max_packets_per_source_per_second = 50; });
  require_mesh(nodes, 3);
  net::io_context ctx;
  net::ip::udp::socket sock(ctx, net::ip::udp::endpoint(net::ip::udp::v4(), 0));
  const net::ip::udp::endpoint target(net::ip::make_address("127.0.0.1"), nodes[0]->port());
  const std::vector<std::uint8_t> junk(64, 0xab);
  // Bursts of 200 datagrams, far more than 50 in a second, until 1,000 were
  // dropped by the limiter (the kernel may drop some of them first).
  std::uint64_t sent = 0;
  REQUIRE(wait_until(
      [&] {
        for (int i = 0; i < 200; ++i) {
          boost::system::error_code ec;
          sock.send_to(net::buffer(junk), target, 0, ec);
          if (!ec) ++sent;
        }
        return nodes[0]->stats().runtime.rate_limited >= 1000;
      },
      20s));
  const auto s = nodes[0]->stats();
  // Only what passed the limiter reached the decoder (and was rejected there).
  CHECK(s.core.invalid_total() >= 1);
  CHECK(s.core.invalid_total() <= sent - s.runtime.rate_limited);
  // The node still serves: a tag change still reaches everyone.
  REQUIRE_FALSE(nodes[1]->set_tags({{"after", "flood"}}));
  CHECK(wait_until(
      [&] {
        auto m = nodes[0]->find(nodes[1]->local_member().name);
        return m && m->tags.count("after") == 1;
      },
      10s));
  CHECK(full_mesh(nodes, 3));
  for (auto& n : nodes) n->stop();
}
