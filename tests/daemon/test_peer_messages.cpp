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
  peer::key_request q{5, "n2", "install", k};
  peer::key_request l{6, "n2", "list", std::nullopt};
  peer::key_reply r{5, "n3", "", {k, k}, k};
  peer::key_reply r_err{5, "n3", "key not installed", {}, std::nullopt};
  for (const peer::message& m : {peer::message(e), peer::message(q), peer::message(l),
                                 peer::message(r), peer::message(r_err)}) {
    peer::message back;
    REQUIRE(decode(peer::encode(m), back) == peer::decode_status::ok);
    CHECK(back == m);
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
  CHECK(decode(peer::encode(peer::key_request{1, "n1", "use", std::nullopt}), m) ==
        peer::decode_status::malformed);
  CHECK(decode(peer::encode(peer::key_request{1, "n1", "burn", std::nullopt}), m) ==
        peer::decode_status::malformed);
  // Over the size bound given.
  peer::user_event big{1, "n1", 0, "x", shoal::bytes(1000, 'p'), 0};
  CHECK(peer::decode(peer::encode(big), m, 512) == peer::decode_status::malformed);
}
