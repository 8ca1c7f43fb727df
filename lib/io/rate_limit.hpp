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
#include <vector>

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
    if (now - window_start_ >= std::chrono::seconds(1)) start_window(now);
    auto it = counts_.find(from);
    if (it == counts_.end()) {
      if (counts_.size() >= max_sources_) return ++overflow_ <= limit_;
      it = insert(from);
    }
    return ++it->second <= limit_;
  }

  std::size_t tracked() const { return counts_.size(); }

 private:
  using table = std::unordered_map<address, std::uint32_t, address_hash>;

  /// Nodes kept from one window for the next one's sources: a source's first
  /// packet in a window then allocates nothing (with peers sending a packet
  /// or two a second, that was nearly one allocation per datagram). Bounded,
  /// so a flood from many sources does not stay allocated.
  static constexpr std::size_t max_spare_nodes = 64;

  void start_window(clock::time_point now) {
    while (!counts_.empty() && spare_.size() < max_spare_nodes)
      spare_.push_back(counts_.extract(counts_.begin()));
    counts_.clear();
    overflow_ = 0;
    window_start_ = now;
  }

  table::iterator insert(const address& from) {
    if (spare_.empty()) return counts_.emplace(from, 0).first;
    table::node_type node = std::move(spare_.back());
    spare_.pop_back();
    node.key() = from;
    node.mapped() = 0;
    return counts_.insert(std::move(node)).position;
  }

  std::uint32_t limit_;
  std::size_t max_sources_;
  clock::time_point window_start_{};
  std::uint32_t overflow_ = 0;
  table counts_;
  std::vector<table::node_type> spare_;
};

}  // namespace shoal::io
