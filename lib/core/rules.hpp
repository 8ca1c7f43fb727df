// SWIM's precedence rules: may a claim about a member change what we know?
// The only place that decides it (table-tested in tests/unit/test_rules.cpp).
#pragma once

#include <cstdint>
#include <optional>

#include <shoal/member.hpp>

namespace shoal::detail {

enum class claim : std::uint8_t { alive, suspect, dead, left };

/// The most a claim may raise the incarnation held for a known member, and
/// then some: only a member raises its own incarnation, by one per refutation
/// or tag update, or to a persisted value after a restart. A claim further
/// ahead is forged (or from a runtime misusing initial_incarnation), and must
/// not be accepted by anyone, the member included: a member that accepted a
/// claim at j would refute it with j + 1, and every peer that still holds i
/// must accept that. So a claim is in reach only if j + 1 is: j - i <
/// max_incarnation_step, and j is not the largest incarnation (nothing would
/// be left to refute with). A peer that missed 2^32 of a member's refutations
/// or tag updates in a row (it could only by being cut off from it for that
/// many of them) ignores the member's word from then on, counting
/// claims_out_of_reach, until it forgets the member (reconnect_timeout after
/// it died there) and learns it anew (docs/security.md).
inline constexpr std::uint64_t max_incarnation_step = std::uint64_t{1} << 32;

/// Whether a claim at incarnation j may replace what is held at i (j <= i is
/// never a raise; judge() decides about those).
constexpr bool within_reach(std::uint64_t i, std::uint64_t j) noexcept {
  return j <= i || (j - i < max_incarnation_step && j != ~std::uint64_t{0});
}

enum class verdict : std::uint8_t {
  ignore,   ///< stale or meaningless: drop it
  apply,    ///< take the new state and incarnation
  confirm,  ///< same suspicion at the same incarnation: another accuser
};

/// `current` is nullopt for a member we do not know. Rules (i = what we hold,
/// j = the claim's incarnation):
///   unknown:   alive -> apply; anything else is ignored (no address to use).
///   alive(i):  alive j > i; suspect, dead, left j >= i.
///   suspect(i):alive j > i; suspect j > i (j == i confirms); dead, left j >= i.
///   dead(i):   alive, suspect, dead j > i; left j >= i (a graceful leave
///              explains a death at the same incarnation; force-leave is
///              exactly that claim, made by an operator).
///   left(i):   everything only at j > i.
/// Any claim about a known member that is not within_reach(i, j) is ignored.
constexpr verdict judge(std::optional<member_state> current, std::uint64_t i, claim c,
                        std::uint64_t j) noexcept {
  if (!current) return c == claim::alive ? verdict::apply : verdict::ignore;
  if (!within_reach(i, j)) return verdict::ignore;
  switch (*current) {
    case member_state::alive:
      if (c == claim::alive) return j > i ? verdict::apply : verdict::ignore;
      return j >= i ? verdict::apply : verdict::ignore;
    case member_state::suspect:
      if (c == claim::alive) return j > i ? verdict::apply : verdict::ignore;
      if (c == claim::suspect) {
        if (j > i) return verdict::apply;
        return j == i ? verdict::confirm : verdict::ignore;
      }
      return j >= i ? verdict::apply : verdict::ignore;
    case member_state::dead:
      if (c == claim::left) return j >= i ? verdict::apply : verdict::ignore;
      return j > i ? verdict::apply : verdict::ignore;
    case member_state::left:
      return j > i ? verdict::apply : verdict::ignore;
  }
  return verdict::ignore;
}

}  // namespace shoal::detail
