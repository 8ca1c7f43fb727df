// SWIM's precedence rules: may a claim about a member change what we know?
// The only place that decides it (table-tested in tests/unit/test_rules.cpp).
#pragma once

#include <cstdint>
#include <optional>

#include <shoal/member.hpp>

namespace shoal::detail {

enum class claim : std::uint8_t { alive, suspect, dead, left };

/// The most a claim may raise the incarnation held for a known member. Only a
/// member raises its own incarnation: by one per refutation or tag update, or
/// to a persisted value after a restart. A claim further ahead is forged (or
/// from a runtime misusing initial_incarnation): accepting one at 2^64 - 1
/// would leave its victim no higher incarnation to refute with, out of the
/// cluster for good. Such claims are ignored by everyone, the member included.
inline constexpr std::uint64_t max_incarnation_step = std::uint64_t{1} << 32;

/// False when claim incarnation j is more than max_incarnation_step above i.
constexpr bool within_reach(std::uint64_t i, std::uint64_t j) noexcept {
  return j <= i || j - i <= max_incarnation_step;
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
/// Any claim about a known member with j > i + max_incarnation_step is ignored.
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
