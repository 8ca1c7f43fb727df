// One suspicion (Lifeguard): the timeout starts at max and shrinks as
// independent members confirm it; each accuser is counted once. Accusers
// that saw the target's port refused are counted apart: enough of them end
// the suspicion after the short refusal timeout (config.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <shoal/core.hpp>
#include "core/formulas.hpp"

namespace shoal::detail {

class suspicion {
 public:
  /// `refusal_timeout` 0: refusals are not counted. `refusers_needed`
  /// distinct refusing accusers switch the deadline to start + refusal_timeout.
  suspicion(std::uint64_t token, std::uint64_t incarnation, time_point start, duration min,
            duration max, int k, duration refusal_timeout, int refusers_needed,
            std::string first_accuser, bool refused)
      : token_(token),
        incarnation_(incarnation),
        start_(start),
        min_(min),
        max_(max),
        refusal_timeout_(refusal_timeout),
        k_(k),
        refusers_needed_(std::max(1, refusers_needed)) {
    if (refused && refusal_timeout_ > duration::zero()) refusers_.push_back(first_accuser);
    accusers_.push_back(std::move(first_accuser));
  }

  /// Records an accuser; true when it is new to either count (the deadline
  /// may have moved, and peers should hear of it too).
  bool confirm(const std::string& from, bool refused) {
    bool recorded = false;
    if (refused && refusal_timeout_ > duration::zero() && !refusal_due() &&
        std::find(refusers_.begin(), refusers_.end(), from) == refusers_.end()) {
      refusers_.push_back(from);
      recorded = true;
    }
    if (confirmations() < k_ &&
        std::find(accusers_.begin(), accusers_.end(), from) == accusers_.end()) {
      accusers_.push_back(from);
      recorded = true;
    }
    return recorded;
  }

  /// Independent confirmations beyond the first accuser.
  int confirmations() const noexcept { return static_cast<int>(accusers_.size()) - 1; }
  /// Distinct accusers that saw the port refused.
  int refusals() const noexcept { return static_cast<int>(refusers_.size()); }
  /// Enough refusals for the short timeout.
  bool refusal_due() const noexcept { return refusals() >= refusers_needed_; }

  time_point deadline() const {
    const time_point lifeguard = start_ + suspicion_timeout(min_, max_, k_, confirmations());
    if (!refusal_due()) return lifeguard;
    return std::min(lifeguard, start_ + refusal_timeout_);
  }
  std::uint64_t token() const noexcept { return token_; }
  std::uint64_t incarnation() const noexcept { return incarnation_; }

 private:
  std::uint64_t token_;
  std::uint64_t incarnation_;
  time_point start_;
  duration min_, max_, refusal_timeout_;
  int k_;
  int refusers_needed_;
  std::vector<std::string> accusers_;
  std::vector<std::string> refusers_;
};

}  // namespace shoal::detail
