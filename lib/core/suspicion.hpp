// One suspicion (Lifeguard): the timeout starts at max and shrinks as
// independent members confirm it; each accuser is counted once.
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
  suspicion(std::uint64_t token, std::uint64_t incarnation, time_point start, duration min,
            duration max, int k, std::string first_accuser)
      : token_(token), incarnation_(incarnation), start_(start), min_(min), max_(max), k_(k) {
    accusers_.push_back(std::move(first_accuser));
  }

  /// Records an accuser; true when it is new (the deadline may have moved).
  bool confirm(const std::string& from) {
    if (std::find(accusers_.begin(), accusers_.end(), from) != accusers_.end()) return false;
    if (confirmations() >= k_) return false;  // already at the minimum
    accusers_.push_back(from);
    return true;
  }

  /// Independent confirmations beyond the first accuser.
  int confirmations() const noexcept { return static_cast<int>(accusers_.size()) - 1; }
  time_point deadline() const {
    return start_ + suspicion_timeout(min_, max_, k_, confirmations());
  }
  std::uint64_t token() const noexcept { return token_; }
  std::uint64_t incarnation() const noexcept { return incarnation_; }

 private:
  std::uint64_t token_;
  std::uint64_t incarnation_;
  time_point start_;
  duration min_, max_;
  int k_;
  std::vector<std::string> accusers_;
};

}  // namespace shoal::detail
