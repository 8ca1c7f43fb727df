// shoal::address and the names of the public enumerators.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <shoal/address.hpp>
#include <shoal/events.hpp>
#include <shoal/member.hpp>

using shoal::address;

TEST_CASE("address: parses IPv4", "[unit]") {
  const auto a = address::parse("1.2.3.4:7946");
  REQUIRE(a);
  CHECK_FALSE(a->is_v6());
  CHECK(a->port() == 7946);
  REQUIRE(a->ip().size() == 4);
  CHECK(a->ip()[0] == 1);
  CHECK(a->ip()[3] == 4);
  CHECK(a->to_string() == "1.2.3.4:7946");
  CHECK(a->ip_string() == "1.2.3.4");
  CHECK(*a == address::v4({1, 2, 3, 4}, 7946));

  CHECK(address::parse("0.0.0.0:0") == address{});
  CHECK(address::parse("255.255.255.255:65535") == address::v4({255, 255, 255, 255}, 65535));
}

TEST_CASE("address: parses IPv6", "[unit]") {
  const auto a = address::parse("[::1]:7946");
  REQUIRE(a);
  CHECK(a->is_v6());
  CHECK(a->port() == 7946);
  REQUIRE(a->ip().size() == 16);
  std::array<std::uint8_t, 16> loopback{};
  loopback[15] = 1;
  CHECK(*a == address::v6(loopback, 7946));
  CHECK(a->to_string() == "[::1]:7946");
  CHECK(a->ip_string() == "::1");

  const auto b = address::parse("[2001:db8::42]:80");
  REQUIRE(b);
  CHECK(b->ip()[0] == 0x20);
  CHECK(b->ip()[1] == 0x01);
  CHECK(b->ip()[2] == 0x0d);
  CHECK(b->ip()[3] == 0xb8);
  CHECK(b->ip()[15] == 0x42);
  CHECK(b->to_string() == "[2001:db8::42]:80");

  const auto mapped = address::parse("[::ffff:10.0.0.1]:1");
  REQUIRE(mapped);
  CHECK(mapped->is_v6());
  CHECK(mapped->to_string() == "[::ffff:10.0.0.1]:1");
  CHECK(*mapped != address::v4({10, 0, 0, 1}, 1));

  const auto full = address::parse("[FE80:0000:0000:0000:0202:B3FF:FE1E:8329]:65535");
  REQUIRE(full);
  CHECK(full->to_string() == "[fe80::202:b3ff:fe1e:8329]:65535");
}

TEST_CASE("address: rejects anything else", "[unit]") {
  using namespace std::string_literals;
  const std::vector<std::string> bad{
      "",
      ":",
      ":80",
      "1.2.3.4",
      "1.2.3.4:",
      "1.2.3.4:65536",
      "1.2.3.4:99999",
      "1.2.3.4:123456",
      "1.2.3.4:-1",
      "1.2.3.4:+1",
      "1.2.3.4:12a",
      "1.2.3.4: 80",
      "1.2.3.4:80 ",
      " 1.2.3.4:80",
      "1.2.3.4:80:80",
      "1.2.3:80",
      "1.2.3.4.5:80",
      "256.1.1.1:80",
      "1.2.3.-4:80",
      "localhost:80",
      "example.com:80",
      "::1:80",
      "::1",
      "[::1]",
      "[::1]:",
      "[::1]80",
      "[::1:80",
      "::1]:80",
      "[]:80",
      "[::1]:65536",
      "[::1]:80x",
      "[::1]]:80",
      "[[::1]:80",
      "[1.2.3.4]:80",
      "[fe80::1%eth0]:80",
      "[::g]:80",
      "[1:2:3:4:5:6:7:8:9]:80",
      "1.2.3.4\0:80"s,
      "1.2.3.4\0junk:80"s,
      "[::1\0]:80"s,
      "[" + std::string(100, '1') + "]:80",
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    CHECK_FALSE(address::parse(text));
  }
}

TEST_CASE("address: from_bytes takes 4 or 16 bytes", "[unit]") {
  const std::array<std::uint8_t, 17> raw{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
  for (std::size_t n = 0; n <= raw.size(); ++n) {
    CAPTURE(n);
    const auto a = address::from_bytes({raw.data(), n}, 99);
    if (n == 4 || n == 16) {
      REQUIRE(a);
      CHECK(a->is_v6() == (n == 16));
      CHECK(a->port() == 99);
      CHECK(std::vector<std::uint8_t>(a->ip().begin(), a->ip().end()) ==
            std::vector<std::uint8_t>(raw.begin(), raw.begin() + static_cast<std::ptrdiff_t>(n)));
    } else {
      CHECK_FALSE(a);
    }
  }
  CHECK(address::from_bytes(std::array<std::uint8_t, 4>{127, 0, 0, 1}, 5) ==
        address::parse("127.0.0.1:5"));
}

TEST_CASE("address: ordering and equality see family, bytes and port", "[unit]") {
  const auto a = address::v4({10, 0, 0, 1}, 1);
  const auto b = address::v4({10, 0, 0, 1}, 2);
  const auto c = address::v4({10, 0, 0, 2}, 1);
  const auto zero4 = address::v4({0, 0, 0, 0}, 0);
  const auto zero6 = address::v6({}, 0);
  CHECK(a != b);
  CHECK(a < b);
  CHECK(a != c);
  CHECK(zero4 == address{});
  CHECK(zero4 != zero6);
  CHECK(address::parse("10.0.0.1:1") == a);
}

TEST_CASE("address: hash is stable and spreads", "[unit]") {
  const auto a = address::v4({10, 0, 0, 1}, 7946);
  CHECK(a.hash() == address::parse("10.0.0.1:7946")->hash());
  // Pinned: the hash must be the same on every machine and every build (FNV-1a
  // over family, ip bytes and port, then the splitmix64 finalizer).
  CHECK(a.hash() == 0xd2f684d01ad0059eull);
  CHECK(address::v6({}, 0).hash() != address{}.hash());

  std::unordered_set<address, shoal::address_hash> set;
  std::set<std::uint64_t> hashes;
  std::set<std::uint64_t> low_bits;
  for (int i = 0; i < 256; ++i) {
    for (std::uint16_t port : {std::uint16_t{7946}, std::uint16_t{7947}}) {
      const auto x = address::v4({10, 0, 0, static_cast<std::uint8_t>(i)}, port);
      set.insert(x);
      hashes.insert(x.hash());
      low_bits.insert(x.hash() & 0xff);
    }
  }
  CHECK(set.size() == 512);
  CHECK(hashes.size() == 512);
  CHECK(low_bits.size() > 200);  // 512 draws into 256 buckets fill about 222
}

TEST_CASE("to_string names member states and event types", "[unit]") {
  CHECK(std::string_view{shoal::to_string(shoal::member_state::alive)} == "alive");
  CHECK(std::string_view{shoal::to_string(shoal::member_state::suspect)} == "suspect");
  CHECK(std::string_view{shoal::to_string(shoal::member_state::dead)} == "dead");
  CHECK(std::string_view{shoal::to_string(shoal::member_state::left)} == "left");

  using shoal::event_type;
  CHECK(std::string_view{shoal::to_string(event_type::member_joined)} == "member_joined");
  CHECK(std::string_view{shoal::to_string(event_type::member_updated)} == "member_updated");
  CHECK(std::string_view{shoal::to_string(event_type::member_suspected)} == "member_suspected");
  CHECK(std::string_view{shoal::to_string(event_type::member_alive)} == "member_alive");
  CHECK(std::string_view{shoal::to_string(event_type::member_failed)} == "member_failed");
  CHECK(std::string_view{shoal::to_string(event_type::member_left)} == "member_left");
  CHECK(std::string_view{shoal::to_string(event_type::member_reaped)} == "member_reaped");
}
