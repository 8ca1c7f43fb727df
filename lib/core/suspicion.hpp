// One suspicion (Lifeguard): the timeout starts at max and shrinks as
// independent members confirm it; each accuser is counted once. Accusations
// also say how many distinct paths to the suspect one probe found refused
// (ICMP port unreachable: the prober's own ping and its relays', none of them
// answered). Once one accusation reports two, the suspicion ends after the
// short refusal timeout (config.hpp). Reports of different accusers are not
// added up: they may name the same path (a relay two probers both asked).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <shoal/core.hpp>
#include "core/formulas.hpp"

namespace shoal::detail {

/// Refused paths that end a suspicion early: one could be a REJECT rule on a
/// single path or a forged ICMP.
inline constexpr int refused_paths_needed = 2;

class suspicion {
 public:
  /// `refusal_timeout` 0: refusals are not counted.
  suspicion(std::uint64_t token, std::uint64_t incarnation, time_point start, duration min,
            duration max, int k, duration refusal_timeout, std::string first_accuser,
            std::uint32_t refused_paths)
      : token_(token),
        incarnation_(incarnation),
        start_(start),
        min_(min),
        max_(max),
        refusal_timeout_(refusal_timeout),
        k_(k) {
    note_refusals(refused_paths);
    accusers_.push_back(std::move(first_accuser));
  }

  /// Records an accuser; true when it is new to either count (the deadline
  /// may have moved, and peers should hear of it too).
  bool confirm(const std::string& from, std::uint32_t refused_paths) {
    bool recorded = note_refusals(refused_paths);
    if (confirmations() < k_ &&
        std::find(accusers_.begin(), accusers_.end(), from) == accusers_.end()) {
      accusers_.push_back(from);
      recorded = true;
    }
    return recorded;
  }

  /// Confirmations Lifeguard expects (k).
  int expected() const noexcept { return k_; }
  /// Independent confirmations beyond the first accuser.
  int confirmations() const noexcept { return static_cast<int>(accusers_.size()) - 1; }
  /// The most distinct refused paths one accusation reported.
  int refused_paths() const noexcept { return most_reported_; }
  /// Enough refused paths for the short timeout.
  bool refusal_due() const noexcept {
    return refusal_timeout_ > duration::zero() && refused_paths() >= refused_paths_needed;
  }

  time_point deadline() const {
    const time_point lifeguard = start_ + suspicion_timeout(min_, max_, k_, confirmations());
    if (!refusal_due()) return lifeguard;
    return std::min(lifeguard, start_ + refusal_timeout_);
  }
  std::uint64_t token() const noexcept { return token_; }
  std::uint64_t incarnation() const noexcept { return incarnation_; }

 private:
  bool note_refusals(std::uint32_t paths) {
    if (refusal_timeout_ <= duration::zero()) return false;
    const int reported = static_cast<int>(std::min<std::uint32_t>(paths, 1024));
    if (reported <= most_reported_) return false;
    most_reported_ = reported;
    return true;
  }

  std::uint64_t token_;
  std::uint64_t incarnation_;
  time_point start_;
  duration min_, max_, refusal_timeout_;
  int k_;
  int most_reported_ = 0;
  std::vector<std::string> accusers_;
};

}  // namespace shoal::detail
