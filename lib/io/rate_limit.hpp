// Incoming packets per second per source address: a fixed one-second window
// per source, in a table of bounded size. Used on the runtime's strand only.
//
// Sources beyond `max_sources` in one window share one overflow slot (with the
// same limit), so a flood from many spoofed addresses costs a bounded table
// and is still limited in aggregate; legitimate new sources are then limited
// with it until the window ends (at most one second).
#pragma once

#include <chrono>
#include <cstdint>
#include <unordered_map>

#include <shoal/address.hpp>

namespace shoal::io {

class source_rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// `per_second` 0 disables the limit.
  source_rate_limiter(std::uint32_t per_second, std::size_t max_sources)
      : limit_(per_second), max_sources_(max_sources) {}

  /// True when a packet from `from` arriving at `now` may be handled.
  bool allow(const address& from, clock::time_point now) {
    if (limit_ == 0) return true;
    if (now - window_start_ >= std::chrono::seconds(1)) {
      counts_.clear();
      overflow_ = 0;
      window_start_ = now;
    }
    auto it = counts_.find(from);
    if (it == counts_.end()) {
      if (counts_.size() >= max_sources_) return ++overflow_ <= limit_;
      it = counts_.emplace(from, 0).first;
    }
    return ++it->second <= limit_;
  }

  std::size_t tracked() const { return counts_.size(); }

 private:
  std::uint32_t limit_;
  std::size_t max_sources_;
  clock::time_point window_start_{};
  std::uint32_t overflow_ = 0;
  std::unordered_map<address, std::uint32_t, address_hash> counts_;
};

}  // namespace shoal::io
