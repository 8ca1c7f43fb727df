// Incoming packets per second per source: a flooding source is cut to the
// limit, counted, and the node keeps serving its cluster.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <random>
#include <unordered_map>

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

namespace {

/// The limiter as first written, allocating a node for each source in each
/// window. The limiter recycles those nodes and must decide exactly as this
/// one does.
class reference_limiter {
 public:
  using clock = std::chrono::steady_clock;
  reference_limiter(std::uint32_t per_second, std::size_t max_sources)
      : limit_(per_second), max_sources_(max_sources) {}
  bool allow(const shoal::address& from, clock::time_point now) {
    if (limit_ == 0) return true;
    if (now - window_start_ >= std::chrono::seconds(1)) {
      counts_.clear();
      overflow_ = 0;
      window_start_ = now;
    }
    auto it = counts_.find(from);
    if (it == counts_.end()) {
      if (counts_.size() >= max_sources_) return ++overflow_ <= limit_;
      it = counts_.emplace(from, 0).first;
    }
    return ++it->second <= limit_;
  }
  std::size_t tracked() const { return counts_.size(); }

 private:
  std::uint32_t limit_;
  std::size_t max_sources_;
  clock::time_point window_start_{};
  std::uint32_t overflow_ = 0;
  std::unordered_map<shoal::address, std::uint32_t, shoal::address_hash> counts_;
};

}  // namespace

TEST_CASE("source_rate_limiter decides as a table emptied every window would", "[io][limits]") {
  using clock = shoal::io::source_rate_limiter::clock;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    INFO("seed " << seed);
    std::mt19937_64 rng(seed);
    const auto limit = static_cast<std::uint32_t>(rng() % 4);  // 0: no limit
    const std::size_t max_sources = rng() % 6;
    shoal::io::source_rate_limiter lim(limit, max_sources);
    reference_limiter ref(limit, max_sources);
    auto t = clock::now();
    for (int i = 0; i < 5000; ++i) {
      // Few sources, so they come back in later windows; steps from none to
      // more than a window.
      const auto from = shoal::address::v4({10, 0, 0, static_cast<std::uint8_t>(rng() % 12)}, 1);
      t += std::chrono::milliseconds(rng() % 8 == 0 ? rng() % 2500 : rng() % 50);
      REQUIRE(lim.allow(from, t) == ref.allow(from, t));
      if (limit > 0) REQUIRE(lim.tracked() == ref.tracked());
    }
  }
}

TEST_CASE("a flood from one source is dropped and counted, the cluster is unaffected",
          "[io][limits]") {
  auto nodes = start_cluster(
      "rl", 3, [](shoal::node_config& nc) { nc.max_packets_per_source_per_second = 50; });
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
