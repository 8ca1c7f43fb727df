// A bounded set of recently seen ids (user events and queries, by origin and
// id): an id is remembered for `max_age` and at most `capacity` ids are kept,
// the oldest forgotten first. Insertion is amortised O(log n).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <utility>

namespace shoal::daemon {

class recent_ids {
 public:
  using key = std::pair<std::string, std::uint64_t>;
  using clock = std::chrono::steady_clock;

  recent_ids(std::size_t capacity, clock::duration max_age)
      : capacity_(capacity), max_age_(max_age) {}

  /// Remembers `k` seen at `now`; false when it was remembered already.
  bool insert(const key& k, clock::time_point now) {
    while (!order_.empty() &&
           (now - order_.front().second > max_age_ || order_.size() >= capacity_)) {
      seen_.erase(order_.front().first);
      order_.pop_front();
    }
    if (!seen_.insert(k).second) return false;
    order_.emplace_back(k, now);
    return true;
  }
  bool contains(const key& k) const { return seen_.count(k) != 0; }
  std::size_t size() const { return seen_.size(); }

 private:
  std::size_t capacity_;
  clock::duration max_age_;
  std::set<key> seen_;
  std::deque<std::pair<key, clock::time_point>> order_;  ///< oldest first
};

}  // namespace shoal::daemon
