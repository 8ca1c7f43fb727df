// Lifeguard local health: a score this node keeps about itself. Failed probes,
// missed nacks and refutations raise it; successful probes lower it. The
// multiplier (score + 1) stretches the probe interval, so a node that is
// itself slow probes (and accuses) less.
#pragma once

#include <algorithm>

#include <shoal/config.hpp>

namespace shoal::detail {

class awareness {
 public:
  explicit awareness(int max_multiplier) : max_(std::max(1, max_multiplier)) {}

  void apply(int delta) noexcept { score_ = std::clamp(score_ + delta, 0, max_ - 1); }
  int score() const noexcept { return score_; }
  duration scale(duration d) const noexcept { return d * (score_ + 1); }

 private:
  int max_;
  int score_ = 0;
};

}  // namespace shoal::detail
