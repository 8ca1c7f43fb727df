// Seed syntax and stream framing: pure functions of the runtime.
#include <catch2/catch.hpp>

#include "io/framing.hpp"
#include "io/seeds.hpp"

using shoal::io::parse_seed;

TEST_CASE("seeds are parsed as host and port", "[io]") {
  struct row {
    const char* text;
    const char* host;  // nullptr: rejected
    std::uint16_t port;
  };
  const row rows[] = {
      {"10.0.0.1:7946", "10.0.0.1", 7946},
      {"seed-1.internal:8000", "seed-1.internal", 8000},
      {"seed-1.internal", "seed-1.internal", 7000},  // default port
      {"[::1]:7946", "::1", 7946},
      {"[fe80::1]", "fe80::1", 7000},
      {"fe80::1", "fe80::1", 7000},  // bare IPv6 literal
      {"  host:1  ", "host", 1},
      {"", nullptr, 0},
      {"host:", nullptr, 0},
      {"host:0", nullptr, 0},
      {"host:65536", nullptr, 0},
      {"host:12ab", nullptr, 0},
      {":7946", nullptr, 0},
      {"[::1", nullptr, 0},
      {"[]:1", nullptr, 0},
      {"[::1]x", nullptr, 0},
  };
  for (const auto& r : rows) {
    INFO(r.text);
    const auto spec = parse_seed(r.text, 7000);
    if (!r.host) {
      CHECK_FALSE(spec);
      continue;
    }
    REQUIRE(spec);
    CHECK(spec->host == r.host);
    CHECK(spec->port == r.port);
  }
  CHECK_FALSE(parse_seed("host", 0));  // no port at all
}

TEST_CASE("frame headers are 4-byte big-endian lengths", "[io]") {
  using namespace shoal::io;
  CHECK(encode_frame_header(0x01020304u) == frame_header{1, 2, 3, 4});
  for (const std::uint32_t n : {0u, 1u, 255u, 256u, 65536u, 16u << 20, 0xffffffffu})
    CHECK(decode_frame_header(encode_frame_header(n)) == n);
}
