// The daemon-to-daemon messages (daemon/peer_messages.hpp): round trips, and
// bytes from another daemon that are malformed, out of bounds or of an
// unknown kind are told apart without throwing.
#include <string>
#include <variant>

#include <catch2/catch.hpp>

#include "peer_messages.hpp"

namespace peer = shoal::daemon::peer;

namespace {

peer::decode_status decode(const shoal::bytes& b, peer::message& m, std::string* kind = nullptr) {
  return peer::decode(b, m, 65536, kind);
}

shoal::bytes mp(std::initializer_list<int> v) {
  shoal::bytes b;
  for (int x : v) b.push_back(static_cast<std::uint8_t>(x));
  return b;
}

}  // namespace

TEST_CASE("peer messages: every kind survives a round trip", "[daemon][peer]") {
  peer::user_event e{0xfedcba9876543210ULL, "n1", 42, "deploy", {'v', '4', '2'}, 0};
  shoal::encryption_key k{};
  k[0] = 7;
  k[31] = 9;
  peer::query q{5,      "n2",     9,
                "load", {'x'},    peer::query_flag_ack,
                3000,   "web-.*", {{"role", "db|cache"}, {"dc", "eu-1"}}};
  peer::query plain{6, "n2", 0, "ping", {}, 0, 1, "", {}};
  peer::query_reply ack{5, "n3", peer::reply_kind::ack, {}};
  peer::query_reply resp{5, "n3", peer::reply_kind::response, {'0', '.', '4'}};
  peer::prune pr{3, "n1", "n4"};
  for (const peer::message& m : {peer::message(e), peer::message(q), peer::message(plain),
                                 peer::message(ack), peer::message(resp), peer::message(pr)}) {
    peer::message back;
    REQUIRE(decode(peer::encode(m), back) == peer::decode_status::ok);
    CHECK(back == m);
  }
  // The push-pull event state, and its bounds: the oldest events are left out.
  peer::event_state st{12, {e, peer::user_event{2, "n2", 11, "restart", {}, 0}}};
  peer::event_state st_back;
  REQUIRE(peer::decode(peer::encode(st), st_back));
  CHECK(st_back == st);
  peer::event_state big;
  for (std::uint64_t i = 0; i < 100; ++i)
    big.events.push_back(peer::user_event{i, "n1", i, "e", shoal::bytes(300, 'p'), 0});
  const auto enc = peer::encode(big);
  CHECK(enc.size() <= peer::max_state_bytes);
  REQUIRE(peer::decode(enc, st_back));
  CHECK(st_back.events.size() < 64);
  CHECK(st_back.events.back().id == 99);  // the newest kept
  // The payloads of the built-in key query.
  for (const peer::key_op& op : {peer::key_op{"install", k}, peer::key_op{"list", std::nullopt}}) {
    peer::key_op back;
    REQUIRE(peer::decode(peer::encode(op), back));
    CHECK(back == op);
  }
  for (const peer::key_result& r :
       {peer::key_result{"", {k, k}, k}, peer::key_result{"key not installed", {}, std::nullopt}}) {
    peer::key_result back;
    REQUIRE(peer::decode(peer::encode(r), back));
    CHECK(back == r);
  }
}

TEST_CASE("peer messages: malformed, out-of-bounds and unknown input", "[daemon][peer]") {
  peer::message m;
  std::string kind;
  CHECK(decode(shoal::bytes{}, m) == peer::decode_status::malformed);
  CHECK(decode(mp({0xc1}), m) == peer::decode_status::malformed);             // never used byte
  CHECK(decode(mp({0x92, 0xa1, 'x'}), m) == peer::decode_status::malformed);  // truncated
  CHECK(decode(mp({0x80}), m) == peer::decode_status::malformed);             // a map
  // ["zz", 1]: well formed, a kind this build does not know.
  CHECK(decode(mp({0x92, 0xa2, 'z', 'z', 0x01}), m, &kind) == peer::decode_status::unknown_kind);
  CHECK(kind == "zz");
  // An event with an empty name, then one with a name of 129 bytes.
  peer::user_event e{1, "n1", 0, "x", {}, 0};
  auto good = peer::encode(e);
  REQUIRE(decode(good, m) == peer::decode_status::ok);
  e.name = "";
  CHECK(decode(peer::encode(e), m, &kind) == peer::decode_status::malformed);
  CHECK(kind == "shoal.event");
  e.name = std::string(129, 'n');
  CHECK(decode(peer::encode(e), m) == peer::decode_status::malformed);
  // Trailing bytes after the array.
  good.push_back(0x00);
  CHECK(decode(good, m) == peer::decode_status::malformed);
  // A key operation other than list without a key, and an unknown operation.
  peer::key_op op;
  CHECK_FALSE(peer::decode(peer::encode(peer::key_op{"use", std::nullopt}), op));
  CHECK_FALSE(peer::decode(peer::encode(peer::key_op{"burn", std::nullopt}), op));
  CHECK_FALSE(peer::decode(mp({0x91, 0xa4, 'l', 'i', 's', 't'}), op));  // ["list"]: no key slot
  // A query with 17 tag filters, one with a 257-byte pattern, a reply of kind 2.
  peer::query q{1, "n1", 0, "load", {}, 0, 1000, "", {}};
  for (int i = 0; i < 17; ++i) q.tag_patterns.emplace_back("t" + std::to_string(i), ".*");
  CHECK(decode(peer::encode(q), m, &kind) == peer::decode_status::malformed);
  CHECK(kind == "shoal.query");
  q.tag_patterns.resize(16);
  CHECK(decode(peer::encode(q), m) == peer::decode_status::ok);
  q.node_pattern = std::string(257, 'a');
  CHECK(decode(peer::encode(q), m) == peer::decode_status::malformed);
  peer::query_reply r{1, "n2", peer::reply_kind::ack, {}};
  auto rb = peer::encode(r);
  REQUIRE(decode(rb, m) == peer::decode_status::ok);
  REQUIRE(rb[rb.size() - 3] == 0x00);  // the kind, before the empty bin (c4 00)
  rb[rb.size() - 3] = 0x02;
  CHECK(decode(rb, m) == peer::decode_status::malformed);
  // Over the size bound given.
  peer::user_event big{1, "n1", 0, "x", shoal::bytes(1000, 'p'), 0};
  CHECK(peer::decode(peer::encode(big), m, 512) == peer::decode_status::malformed);
}
