// The transmit-limited dissemination queue. Each item is an already encoded
// message; a newer item with the same key replaces the older one; packets are
// filled least-sent first, then newest first; an item is dropped after it was
// sent `limit` times.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "wire/format.hpp"

namespace shoal::detail {

class broadcast_queue {
 public:
  explicit broadcast_queue(std::size_t max_items) : max_items_(max_items) {}

  /// Queues `encoded`. A non-empty key replaces the queued item with that key.
  /// Returns false when an item had to be dropped to respect the bound.
  bool push(std::string key, std::vector<std::uint8_t> encoded, bool marks_leave = false);

  struct fill_result {
    std::size_t added = 0;        ///< messages appended
    std::size_t leave_marks = 0;  ///< of which flagged marks_leave
  };

  /// Appends items to `b` while the packet stays within `max_packet` bytes;
  /// items that reached `limit` transmissions are removed. `packet` names the
  /// packet being built (any value unique per packet): an item already added
  /// to it by an earlier fill() is not added twice.
  fill_result fill(wire::packet_builder& b, std::size_t max_packet, int limit,
                   std::uint64_t packet = 0);

  std::size_t size() const noexcept { return items_.size(); }
  /// Encoded size of the item fill() would try first (0 when empty).
  std::size_t front_size() const noexcept {
    return items_.empty() ? 0 : items_.begin()->encoded.size();
  }
  bool empty() const noexcept { return items_.empty(); }
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  struct item {
    int transmits;
    std::uint64_t id;  // newer items have larger ids
    std::string key;
    std::vector<std::uint8_t> encoded;
    bool marks_leave;
    std::uint64_t in_packet = 0;  // the last packet it was added to
  };
  struct order {
    bool operator()(const item& a, const item& b) const noexcept {
      if (a.transmits != b.transmits) return a.transmits < b.transmits;
      return a.id > b.id;
    }
  };
  using set_t = std::set<item, order>;

  std::size_t max_items_;
  std::uint64_t next_id_ = 0;
  std::uint64_t dropped_ = 0;
  set_t items_;
  // Pointers stay valid when fill() re-inserts an item's node, so the index
  // needs no update on every send.
  std::unordered_map<std::string, const item*> by_key_;
};

}  // namespace shoal::detail
