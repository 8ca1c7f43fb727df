// The bounded msgpack reader on its own: every encoding of each type it
// accepts, the types it refuses, and truncation at every byte.
#include <catch2/catch.hpp>

#include <cstdint>
#include <string_view>
#include <vector>

#include "wire/msgpack_reader.hpp"

using shoal::errc;
using shoal::wire::msgpack_reader;
using bytes = std::vector<std::uint8_t>;

TEST_CASE("msgpack reader: unsigned integers in every encoding", "[unit]") {
  const std::vector<std::pair<bytes, std::uint64_t>> cases{
      {{0x00}, 0},
      {{0x7f}, 127},
      {{0xcc, 0x80}, 128},
      {{0xcd, 0x01, 0x00}, 256},
      {{0xce, 0x00, 0x01, 0x00, 0x00}, 65536},
      {{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, ~std::uint64_t{0}},
      {{0xd0, 0x7f}, 127},  // signed encodings of non-negative values
      {{0xd1, 0x00, 0x80}, 128},
      {{0xd2, 0x00, 0x01, 0x00, 0x00}, 65536},
      {{0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x7fffffffffffffffULL},
  };
  for (const auto& [in, want] : cases) {
    CAPTURE(in.size(), want);
    msgpack_reader r{in};
    std::uint64_t v = 1;
    REQUIRE(r.read_uint(v) == errc::ok);
    CHECK(v == want);
    CHECK(r.remaining() == 0);
    // Every strict prefix runs out.
    for (std::size_t n = 0; n < in.size(); ++n) {
      msgpack_reader p{std::span<const std::uint8_t>(in.data(), n)};
      CHECK(p.read_uint(v) == errc::truncated);
    }
  }
}

TEST_CASE("msgpack reader: negative integers and other types are not unsigned", "[unit]") {
  for (const bytes& in : {bytes{0xff}, bytes{0xe0}, bytes{0xd0, 0x80}, bytes{0xd1, 0xff, 0xff},
                          bytes{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, bytes{0xc0}, bytes{0xc3},
                          bytes{0xa1, 'x'}, bytes{0xca, 0, 0, 0, 0}}) {
    CAPTURE(in[0]);
    msgpack_reader r{in};
    std::uint64_t v = 0;
    CHECK(r.read_uint(v) == errc::malformed);
  }
}

TEST_CASE("msgpack reader: strings and byte arrays are views into the input", "[unit]") {
  const bytes fix{0xa3, 'a', 'b', 'c'};
  msgpack_reader r{fix};
  std::string_view s;
  REQUIRE(r.read_str(s) == errc::ok);
  CHECK(s == "abc");
  CHECK(reinterpret_cast<const std::uint8_t*>(s.data()) == fix.data() + 1);

  bytes str16{0xda, 0x01, 0x00};
  str16.resize(3 + 256, 'x');
  msgpack_reader r16{str16};
  REQUIRE(r16.read_str(s) == errc::ok);
  CHECK(s.size() == 256);

  const bytes bin{0xc4, 0x02, 0x01, 0x02};
  msgpack_reader rb{bin};
  std::span<const std::uint8_t> b;
  REQUIRE(rb.read_bin(b) == errc::ok);
  CHECK(b.size() == 2);
  CHECK(b.data() == bin.data() + 2);

  // A str is not a bin and a bin is not a str.
  msgpack_reader wrong1{bin};
  CHECK(wrong1.read_str(s) == errc::malformed);
  msgpack_reader wrong2{fix};
  CHECK(wrong2.read_bin(b) == errc::malformed);

  // A length past the end is truncated, never read.
  const bytes short_str{0xd9, 0xff, 'a'};
  msgpack_reader rs{short_str};
  CHECK(rs.read_str(s) == errc::truncated);
}

TEST_CASE("msgpack reader: container headers are bounded by the bytes left", "[unit]") {
  std::size_t n = 0;
  const bytes fix_in{0x92, 0x01, 0x02};
  msgpack_reader fix{fix_in};
  REQUIRE(fix.read_array(n) == errc::ok);
  CHECK(n == 2);
  // array16 claiming 65535 elements with 2 bytes left: each takes a byte.
  const bytes big_in{0xdc, 0xff, 0xff, 0x01, 0x02};
  msgpack_reader big{big_in};
  CHECK(big.read_array(n) == errc::truncated);
  // map32 claiming 2 pairs with 3 bytes left: each pair takes two.
  const bytes m_in{0xdf, 0, 0, 0, 2, 1, 2, 3};
  msgpack_reader m{m_in};
  CHECK(m.read_map(n) == errc::truncated);
  const bytes ok_map_in{0x81, 0xa1, 'k', 0xa1, 'v'};
  msgpack_reader ok_map{ok_map_in};
  REQUIRE(ok_map.read_map(n) == errc::ok);
  CHECK(n == 1);
  bool flag = false;
  const bytes boolean_in{0xc3};
  msgpack_reader boolean{boolean_in};
  REQUIRE(boolean.read_bool(flag) == errc::ok);
  CHECK(flag);
}

TEST_CASE("msgpack reader: skip walks every type and bounds nesting", "[unit]") {
  // Eleven objects, one of each kind, then a marker.
  const bytes all{0x05, 0xe0, 0xc0, 0xc2, 0xa1, 'x',  0xc4, 0x01, 0x00, 0xca, 0,    0,    0,
                  0,    0xcb, 0,    0,    0,    0,    0,    0,    0,    0,    0xd4, 0x01, 0x02,
                  0xc7, 0x01, 0x05, 0x09, 0x92, 0x01, 0x81, 0xa1, 'k',  0x02, 0x7f};
  msgpack_reader r{all};
  REQUIRE(r.skip_objects(11, 0) == errc::ok);
  std::uint64_t marker = 0;
  REQUIRE(r.read_uint(marker) == errc::ok);
  CHECK(marker == 0x7f);

  // 0xc1 is never used.
  const bytes never_in{0xc1};
  msgpack_reader never{never_in};
  CHECK(never.skip(0) == errc::malformed);

  // Nesting past max_depth stops, whatever the bytes say.
  bytes deep(shoal::wire::max_depth + 2, 0x91);
  deep.push_back(0x01);
  msgpack_reader d{deep};
  CHECK(d.skip(0) == errc::malformed);
  bytes shallow(shoal::wire::max_depth, 0x91);
  shallow.push_back(0x01);
  msgpack_reader s{shallow};
  CHECK(s.skip(0) == errc::ok);
}
