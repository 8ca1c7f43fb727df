// SWIM's precedence rules, table-tested. Rows follow the paper (Das et al.,
// "SWIM", section 4.2 / 5): {Alive Ml, inc=i} overrides {Suspect Ml, inc=j}
// iff i > j; {Suspect Ml, inc=i} overrides {Suspect, j} iff i > j and
// {Alive, j} iff i >= j; {Confirm (dead), inc=i} overrides everything at i
// or newer. A graceful leave is a confirmed departure.
#include <limits>

#include <catch2/catch.hpp>

#include "core/rules.hpp"

using shoal::member_state;
using shoal::detail::claim;
using shoal::detail::judge;
using shoal::detail::verdict;

namespace {
struct row {
  std::optional<member_state> current;
  std::uint64_t i;
  claim c;
  std::uint64_t j;
  verdict expect;
};
}  // namespace

TEST_CASE("precedence rules follow the SWIM paper", "[unit]") {
  using enum member_state;
  const auto A = claim::alive, S = claim::suspect, D = claim::dead, L = claim::left;
  const auto apply = verdict::apply, ignore = verdict::ignore, conf = verdict::confirm;
  const std::optional<member_state> unknown;
  const std::uint64_t step = shoal::detail::max_incarnation_step;
  const std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  const row rows[] = {
      // unknown member: only an alive claim carries enough to add it
      {unknown, 0, A, 0, apply},
      {unknown, 0, S, 5, ignore},
      {unknown, 0, D, 5, ignore},
      {unknown, 0, L, 5, ignore},
      // alive(3)
      {alive, 3, A, 2, ignore},
      {alive, 3, A, 3, ignore},
      {alive, 3, A, 4, apply},
      {alive, 3, S, 2, ignore},
      {alive, 3, S, 3, apply},
      {alive, 3, S, 4, apply},
      {alive, 3, D, 2, ignore},
      {alive, 3, D, 3, apply},
      {alive, 3, D, 9, apply},
      {alive, 3, L, 2, ignore},
      {alive, 3, L, 3, apply},
      // suspect(3): only a newer alive refutes; same suspicion is a confirmation
      {suspect, 3, A, 3, ignore},
      {suspect, 3, A, 4, apply},
      {suspect, 3, S, 2, ignore},
      {suspect, 3, S, 3, conf},
      {suspect, 3, S, 4, apply},
      {suspect, 3, D, 2, ignore},
      {suspect, 3, D, 3, apply},
      {suspect, 3, L, 3, apply},
      // dead(3): confirm overrides everything at its incarnation
      {dead, 3, A, 3, ignore},
      {dead, 3, A, 4, apply},
      {dead, 3, S, 3, ignore},
      {dead, 3, S, 4, apply},
      {dead, 3, D, 3, ignore},
      {dead, 3, D, 4, apply},
      {dead, 3, L, 2, ignore},
      {dead, 3, L, 3, apply},
      // left(3): terminal at its incarnation
      {left, 3, A, 3, ignore},
      {left, 3, A, 4, apply},
      {left, 3, S, 3, ignore},
      {left, 3, D, 3, ignore},
      {left, 3, L, 3, ignore},
      {left, 3, L, 4, apply},
      // no claim moves a known member so far that a refutation (one more)
      // would be out of reach of those still holding the old incarnation: at
      // most max_incarnation_step - 1 at once, and never to 2^64 - 1, which
      // leaves nothing to refute with; a new member may start anywhere
      {alive, 3, A, 2 + step, apply},
      {alive, 3, A, 3 + step, ignore},
      {alive, 3, A, 4 + step, ignore},
      {alive, 3, S, 2 + step, apply},
      {alive, 3, S, 3 + step, ignore},
      {suspect, 3, A, 2 + step, apply},
      {suspect, 3, A, 3 + step, ignore},
      {dead, 3, A, 3 + step, ignore},
      {alive, 3, D, max, ignore},
      {suspect, 3, A, 4 + step, ignore},
      {suspect, 3, D, max, ignore},
      {dead, 3, A, 4 + step, ignore},
      {dead, 3, L, max, ignore},
      {left, 3, A, max, ignore},
      {alive, max - 1, A, max, ignore},
      {alive, max - 2, A, max - 1, apply},
      {alive, max, A, max, ignore},  // not a raise: judge's own rule (alive needs j > i)
      {unknown, 0, A, max, apply},
  };
  for (const auto& r : rows) {
    CAPTURE(r.current ? static_cast<int>(*r.current) : -1, r.i, static_cast<int>(r.c), r.j);
    CHECK(judge(r.current, r.i, r.c, r.j) == r.expect);
  }
}
