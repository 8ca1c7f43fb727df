#include <catch2/catch.hpp>

#include "core/broadcast_queue.hpp"
#include "wire/codec.hpp"

using shoal::detail::broadcast_queue;
namespace wire = shoal::wire;

namespace {
std::vector<std::uint8_t> encoded_left(const std::string& node, std::uint64_t inc) {
  std::vector<std::uint8_t> out;
  wire::encode_message(wire::left{inc, node}, out);
  return out;
}

std::vector<wire::message> fill_one(broadcast_queue& q, std::size_t mtu, int limit) {
  std::vector<std::uint8_t> buf;
  wire::packet_builder b(buf);
  q.fill(b, mtu, limit);
  b.finish();
  std::vector<wire::message> msgs;
  wire::decode_counters c;
  REQUIRE_FALSE(wire::decode_packet(buf, wire::limits{}, msgs, c));
  REQUIRE(buf.size() <= mtu);
  return msgs;
}
}  // namespace

TEST_CASE("a newer update about a member replaces the older one", "[unit]") {
  broadcast_queue q(100);
  q.push("a", encoded_left("a", 1));
  q.push("a", encoded_left("a", 2));
  q.push("b", encoded_left("b", 1));
  REQUIRE(q.size() == 2);
  auto msgs = fill_one(q, 1400, 10);
  REQUIRE(msgs.size() == 2);
  for (auto& m : msgs) {
    const auto& l = std::get<wire::left>(m);
    if (l.node == "a") CHECK(l.incarnation == 2);
  }
}

TEST_CASE("least-sent first, newest first, dropped after the limit", "[unit]") {
  broadcast_queue q(100);
  q.push("old", encoded_left("old", 1));
  // Small MTU: one message per packet.
  const std::size_t one = wire::header_size + encoded_left("old", 1).size();
  auto first = fill_one(q, one, 2);
  CHECK(std::get<wire::left>(first.at(0)).node == "old");
  q.push("new", encoded_left("new", 1));
  auto second = fill_one(q, one, 2);  // "new" has 0 transmits, "old" has 1
  CHECK(std::get<wire::left>(second.at(0)).node == "new");
  auto third = fill_one(q, one, 2);  // both at 1: newest first
  CHECK(std::get<wire::left>(third.at(0)).node == "new");
  CHECK(q.size() == 1);  // "new" reached 2 sends
  auto fourth = fill_one(q, one, 2);
  CHECK(std::get<wire::left>(fourth.at(0)).node == "old");
  CHECK(q.empty());
}

TEST_CASE("packets are filled up to the MTU and never beyond", "[unit]") {
  broadcast_queue q(1000);
  for (int i = 0; i < 200; ++i)
    q.push("node-" + std::to_string(i), encoded_left("node-" + std::to_string(i), 7));
  const std::size_t per = encoded_left("node-100", 7).size();
  auto msgs = fill_one(q, 1400, 5);
  CHECK(msgs.size() >= (1400 - wire::header_size) / per - 1);
  CHECK(q.size() == 200);
}

TEST_CASE("the queue is bounded and counts what it drops", "[unit]") {
  broadcast_queue q(16);
  for (int i = 0; i < 20; ++i) q.push("n" + std::to_string(i), encoded_left("n", 1));
  CHECK(q.size() == 16);
  CHECK(q.dropped() == 4);
}
