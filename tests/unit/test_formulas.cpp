#include <catch2/catch.hpp>

#include "core/awareness.hpp"
#include "core/formulas.hpp"
#include "core/suspicion.hpp"

using namespace std::chrono_literals;
using namespace shoal::detail;
using ms = std::chrono::milliseconds;

TEST_CASE("retransmit limit is mult * ceil(log10(n + 1))", "[unit]") {
  const struct {
    std::size_t n;
    int expect;
  } rows[] = {{0, 0},    {1, 4},    {9, 4},     {10, 8},    {99, 8},
              {100, 12}, {999, 12}, {1000, 16}, {10000, 20}};
  for (auto r : rows) {
    CAPTURE(r.n);
    CHECK(retransmit_limit(4, r.n) == r.expect);
  }
}

TEST_CASE("suspicion min is mult * max(1, log10 n) * interval", "[unit]") {
  CHECK(suspicion_min(4, 1, 1s) == 4s);
  CHECK(suspicion_min(4, 10, 1s) == 4s);
  CHECK(std::chrono::duration_cast<ms>(suspicion_min(4, 100, 1s)) == 8000ms);
  CHECK(std::chrono::duration_cast<ms>(suspicion_min(4, 1000, 1s)) == 12000ms);
  CHECK(std::chrono::duration_cast<ms>(suspicion_min(5, 1000, 200ms)) == 3000ms);
}

TEST_CASE("suspicion timeout shrinks logarithmically from max to min", "[unit]") {
  const shoal::duration min = 2s, max = 30s;
  const int k = 3;
  // max - (max - min) * log(c + 1) / log(k + 1)
  CHECK(suspicion_timeout(min, max, k, 0) == 30s);
  CHECK(std::chrono::duration_cast<ms>(suspicion_timeout(min, max, k, 1)) == 16000ms);
  CHECK(std::chrono::duration_cast<ms>(suspicion_timeout(min, max, k, 2)) == 7810ms);
  CHECK(suspicion_timeout(min, max, k, 3) == 2s);
  CHECK(suspicion_timeout(min, max, k, 10) == 2s);  // never below min
  CHECK(suspicion_timeout(min, max, 0, 0) == 2s);   // nobody can confirm: min
}

TEST_CASE("suspicion k is mult - 2, capped by members that can confirm", "[unit]") {
  CHECK(suspicion_k(4, 100) == 2);
  CHECK(suspicion_k(6, 100) == 4);
  CHECK(suspicion_k(4, 3) == 1);
  CHECK(suspicion_k(4, 2) == 0);
  CHECK(suspicion_k(1, 100) == 0);
}

TEST_CASE("a suspicion counts each accuser once", "[unit]") {
  const shoal::time_point t0{};
  suspicion s(1, 7, t0, 2s, 30s, 3, 1s, "a", 0);
  CHECK(s.deadline() == t0 + 30s);
  CHECK(s.confirm("b", 0));
  CHECK_FALSE(s.confirm("b", 0));
  CHECK_FALSE(s.confirm("a", 0));
  CHECK(s.confirmations() == 1);
  CHECK(s.deadline() == t0 + 16s);
  CHECK(s.confirm("c", 0));
  CHECK(s.confirm("d", 0));
  CHECK(s.deadline() == t0 + 2s);
  CHECK_FALSE(s.confirm("e", 0));  // already at min
  CHECK(s.refused_paths() == 0);
}

TEST_CASE("a suspicion takes the refusal timeout once two refused paths are known", "[unit]") {
  const shoal::time_point t0{};
  SECTION("one accuser reporting two paths") {
    suspicion s(1, 7, t0, 8s, 48s, 2, 2s, "a", 2);
    CHECK(s.refused_paths() == 2);
    CHECK(s.refusal_due());
    CHECK(s.deadline() == t0 + 2s);
  }
  SECTION("one path is not enough, however often it is reported") {
    suspicion s(1, 7, t0, 8s, 48s, 2, 2s, "a", 1);
    CHECK(s.refused_paths() == 1);
    CHECK_FALSE(s.refusal_due());
    CHECK_FALSE(s.confirm("a", 1));  // the same accuser again
    CHECK(s.confirm("b", 0));        // a plain accusation is no refusal
    CHECK(s.refused_paths() == 1);
    CHECK(s.deadline() > t0 + 8s);
  }
  SECTION("accusers' reports are not added up: they may name the same path") {
    suspicion s(1, 7, t0, 8s, 48s, 2, 2s, "a", 1);
    CHECK(s.confirm("b", 1));  // a new accuser, one path (maybe a's relay's)
    CHECK(s.refused_paths() == 1);
    CHECK_FALSE(s.refusal_due());
    CHECK(s.confirm("c", 2));  // c's probe found two
    CHECK(s.refusal_due());
    CHECK(s.deadline() == t0 + 2s);
  }
  SECTION("a refusal timeout longer than the Lifeguard deadline changes nothing") {
    suspicion s(1, 7, t0, 1s, 6s, 1, 10s, "a", 2);
    CHECK(s.refusal_due());
    CHECK(s.deadline() == t0 + 6s);
  }
  SECTION("with the refusal timeout 0 refusals are not counted") {
    suspicion s(1, 7, t0, 8s, 48s, 2, 0s, "a", 3);
    CHECK(s.confirm("b", 2));
    CHECK(s.refused_paths() == 0);
    CHECK_FALSE(s.refusal_due());
    CHECK(s.deadline() == t0 + suspicion_timeout(8s, 48s, 2, 1));  // Lifeguard's, b counted
  }
}

TEST_CASE("push-pull interval grows with log2 n past 32 members", "[unit]") {
  CHECK(push_pull_interval(30s, 1) == 30s);
  CHECK(push_pull_interval(30s, 32) == 30s);
  CHECK(push_pull_interval(30s, 33) == 60s);
  CHECK(push_pull_interval(30s, 64) == 60s);
  CHECK(push_pull_interval(30s, 65) == 90s);
  CHECK(push_pull_interval(30s, 1000) == 180s);
  CHECK(push_pull_interval(30s, 10000) == 300s);
  CHECK(push_pull_scale(32) == 1);
  CHECK(push_pull_scale(2000) == 7);
}

TEST_CASE("health multiplier stays within 0..max-1 and scales intervals", "[unit]") {
  awareness a(8);
  CHECK(a.score() == 0);
  a.apply(-1);
  CHECK(a.score() == 0);
  a.apply(3);
  CHECK(a.score() == 3);
  CHECK(a.scale(1s) == 4s);
  a.apply(100);
  CHECK(a.score() == 7);
  CHECK(a.scale(1s) == 8s);
  a.apply(-2);
  CHECK(a.score() == 5);
  awareness off(1);
  off.apply(5);
  CHECK(off.score() == 0);
}
