// With encryption on, nothing from outside the keyring has any effect: a raw
// UDP sender and a raw TCP client on loopback throw forged packets at an
// encrypted, labeled cluster, unsealed, sealed under another key, labeled but
// not encrypted, or with a broken envelope. Every one is counted and dropped
// before the core sees it; views, incarnations and the core's counters stay
// exactly as they were.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>

#include "io/framing.hpp"
#include "io/security.hpp"
#include "io_test_util.hpp"
#include "wire/codec.hpp"

using namespace std::chrono_literals;
using iotest::wait_until;
using shoal::member_state;
namespace asio = boost::asio;
namespace wire = shoal::wire;

namespace {

shoal::encryption_key hostile_key(std::uint8_t seed) {
  shoal::encryption_key k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed * 17 + i);
  return k;
}

/// What a node's view and protocol counters look like; equal snapshots mean
/// nothing reached the core.
struct snapshot {
  std::vector<shoal::member> view;
  std::uint64_t digest, refutations, suspicions, invalid, out_of_reach;
  bool operator==(const snapshot&) const = default;
};

snapshot take(const shoal::node& n) {
  const auto s = n.stats().core;
  return {n.members(),  n.digest(),        s.refutations,
          s.suspicions, s.invalid_total(), s.claims_out_of_reach};
}

std::uint64_t dropped(const shoal::node& n) {
  const auto r = n.stats().runtime;
  return r.decrypt_failed + r.plaintext_rejected + r.label_mismatch;
}

}  // namespace

TEST_CASE("forged packets from outside the keyring have no effect", "[io]") {
  const std::string label = "prod";
  std::atomic<int> user_messages{0};  // outlives the nodes whose callbacks count
  std::vector<std::unique_ptr<shoal::node>> nodes;
  for (int i = 0; i < 3; ++i) {
    auto nc = iotest::local_config(
        "sec" + std::to_string(i),
        i == 0 ? std::vector<std::string>{} : std::vector<std::string>{iotest::seed_of(*nodes[0])});
    nc.keys = {hostile_key(1)};
    nc.label = label;
    nodes.push_back(std::make_unique<shoal::node>(nc));
    nodes.back()->on_user_message([&](const shoal::user_message&) { ++user_messages; });
    REQUIRE_FALSE(nodes.back()->start());
  }
  REQUIRE(wait_until([&] { return iotest::full_mesh(nodes, 3); }, 30s));
  // Settled: a snapshot that holds still for a moment.
  std::vector<snapshot> before;
  REQUIRE(wait_until(
      [&] {
        std::vector<snapshot> now;
        for (const auto& n : nodes) now.push_back(take(*n));
        const bool same = now == before;
        before = std::move(now);
        return same;
      },
      10s));

  // The forgeries: every claim an attacker would like to make.
  const auto victim = nodes[1]->local_member();
  const shoal::address attacker = *shoal::address::parse("127.0.0.1:9");
  std::vector<wire::message> claims{
      wire::suspect{victim.incarnation + 1000, victim.name, "sec2"},
      wire::dead{victim.incarnation + 1000, victim.name, "sec2"},
      wire::alive{0, "ghost", attacker, {}, 1},
      wire::alive{victim.incarnation + 1000, victim.name, attacker, {}, 1},
      wire::user{{1, 2, 3}},
  };
  const auto plain = wire::encode_packet(claims);
  const wire::message pp = wire::push_pull{
      false, "ghost", {shoal::member{"ghost", attacker, 0, member_state::alive, {}, 1}}, {}};
  const auto plain_state = wire::encode_packet({&pp, 1});
  const shoal::io::keyring wrong({hostile_key(2)});
  const shoal::io::keyring none;
  std::vector<shoal::bytes> envelopes;
  for (const auto* body : {&plain, &plain_state}) {
    envelopes.push_back(*body);                                 // no envelope at all
    envelopes.push_back(shoal::io::seal(*body, label, wrong));  // another key
    envelopes.push_back(shoal::io::seal(*body, label, none));   // labeled, not encrypted
    envelopes.push_back(shoal::io::seal(*body, "", wrong));     // another key, no label
    auto broken = shoal::io::seal(*body, label, wrong);
    broken[1] = 0xff;  // reserved flag bits
    envelopes.push_back(broken);
  }

  asio::io_context io;
  asio::ip::udp::socket udp(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const int rounds = 20;
  for (int r = 0; r < rounds; ++r)
    for (const auto& n : nodes) {
      const auto a = n->local_member().addr;
      const asio::ip::udp::endpoint to(asio::ip::make_address(a.ip_string()), a.port());
      for (const auto& e : envelopes) udp.send_to(asio::buffer(e), to);
    }
  // The same envelopes as stream requests (one TCP exchange each): closed
  // without a reply.
  std::size_t unanswered = 0;
  for (const auto& e : envelopes) {
    const auto a = nodes[0]->local_member().addr;
    asio::ip::tcp::socket tcp(io);
    tcp.connect({asio::ip::make_address(a.ip_string()), a.port()});
    const auto h = shoal::io::encode_frame_header(static_cast<std::uint32_t>(e.size()));
    asio::write(tcp, std::vector<asio::const_buffer>{asio::buffer(h), asio::buffer(e)});
    shoal::io::frame_header reply{};
    boost::system::error_code ec;
    asio::read(tcp, asio::buffer(reply), ec);
    if (ec == asio::error::eof) ++unanswered;
  }
  CHECK(unanswered == envelopes.size());

  // Each node counts (almost: this is UDP) every forged datagram as dropped.
  const std::uint64_t sent_each = rounds * envelopes.size();
  const bool counted = wait_until(
      [&] {
        for (const auto& n : nodes)
          if (dropped(*n) < sent_each * 9 / 10) return false;
        return true;
      },
      10s);
  for (const auto& n : nodes) INFO(n->local_member().name << " dropped " << dropped(*n));
  CHECK(counted);
  CHECK(dropped(*nodes[0]) >= envelopes.size());  // the stream requests too

  // ...and nothing else changed: same views, incarnations and core counters,
  // while the cluster carries on probing.
  const auto probes = nodes[0]->stats().core.probes;
  CHECK(wait_until([&] { return nodes[0]->stats().core.probes > probes + 2; }, 10s));
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    CAPTURE(i);
    CHECK(take(*nodes[i]) == before[i]);
    CHECK_FALSE(nodes[i]->find("ghost"));
  }
  CHECK(nodes[1]->local_member().incarnation == victim.incarnation);
  CHECK(user_messages == 0);
  for (auto& n : nodes) n->stop();
}
