// Rate-limited warnings: one line per period for input a peer can provoke,
// with the count of the lines held back since the last one. Pure: the caller
// passes the time (the core its `now`, the runtime its clock). The core and
// the runtime both use this one.
#pragma once

#include <cstdint>
#include <optional>

#include <shoal/core.hpp>

namespace shoal::detail {

class rate_limit {
 public:
  explicit rate_limit(duration period) : period_(period) {}

  /// True when a line may be written at `t`; otherwise it is counted as held
  /// back.
  bool allow(time_point t) {
    if (last_ && t - *last_ < period_) {
      ++held_back_;
      return false;
    }
    last_ = t;
    return true;
  }

  /// Lines held back since the last one allowed; reading resets it.
  std::uint64_t take_held_back() noexcept {
    const std::uint64_t n = held_back_;
    held_back_ = 0;
    return n;
  }

 private:
  duration period_;
  std::optional<time_point> last_;
  std::uint64_t held_back_ = 0;
};

}  // namespace shoal::detail
