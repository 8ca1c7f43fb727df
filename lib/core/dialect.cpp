// The decisions in which wire dialects differ (wire::rules, from the format
// the core was built with), each made here and nowhere else. shoal's own
// format answers: members may move to a new address, a leave is its own
// message, incarnations are 64 bits, and acks carry the view digest.
#include "core/core_impl.hpp"

namespace shoal::detail {

bool core_impl::reachable_claim(std::uint64_t held, std::uint64_t claimed) const noexcept {
  // The step bound (rules.hpp), and room for a refutation within what the
  // format can carry.
  if (claimed <= held) return true;
  return claimed < fmt_.rules().max_incarnation && within_reach(held, claimed);
}

std::uint64_t core_impl::refutation_incarnation(std::uint64_t claimed) const noexcept {
  const std::uint64_t top = std::max(self_->incarnation, claimed);
  // At the format's maximum there is nothing higher: it stays.
  return top >= fmt_.rules().max_incarnation ? top : top + 1;
}

bool core_impl::may_move(const member_entry& e, const address& claimed) const noexcept {
  return e.addr == claimed || fmt_.rules().alive_may_move;
}

bool core_impl::must_refute(const wire::alive& m) const noexcept {
  // A newer incarnation than ours is always refuted. At our own, anything
  // that is not what we say now: another address (another process claims our
  // name), or other tags or protocol (our previous life, restarted at the same
  // incarnation with new ones, whose word would otherwise stand for good).
  if (m.incarnation > self_->incarnation) return true;
  if (m.incarnation < self_->incarnation) return false;
  return m.addr != self_->addr || m.protocol != self_->protocol || !self_->tags.equals(m.tags);
}

wire::message core_impl::leave_message() const {
  if (fmt_.rules().leave == wire::rules::leave_form::dead_from_self)
    return wire::dead{self_->incarnation, *self_->name, *self_->name};
  return wire::left{self_->incarnation, *self_->name};
}

std::optional<std::uint64_t> core_impl::ack_digest(const wire::ack& m) const noexcept {
  if (!fmt_.rules().digest_on_ack) return std::nullopt;
  return m.digest;
}

}  // namespace shoal::detail
