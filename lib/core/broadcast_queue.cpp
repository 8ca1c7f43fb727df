#include "core/broadcast_queue.hpp"

namespace shoal::detail {

bool broadcast_queue::push(std::string key, std::vector<std::uint8_t> encoded, bool marks_leave) {
  if (!key.empty()) {
    if (auto it = by_key_.find(key); it != by_key_.end()) {
      items_.erase(items_.find(*it->second));
      by_key_.erase(it);
    }
  }
  bool kept_all = true;
  while (max_items_ > 0 && items_.size() >= max_items_) {
    // Drop the most-sent, oldest item: it has done most of its work.
    auto last = std::prev(items_.end());
    if (!last->key.empty()) by_key_.erase(last->key);
    items_.erase(last);
    ++dropped_;
    kept_all = false;
  }
  auto [it, inserted] =
      items_.insert(item{0, next_id_++, std::move(key), std::move(encoded), marks_leave});
  if (inserted && !it->key.empty()) by_key_.emplace(it->key, &*it);
  return kept_all;
}

broadcast_queue::fill_result broadcast_queue::fill(wire::packet_builder& b, std::size_t max_packet,
                                                   int limit, std::uint64_t packet) {
  fill_result r;
  if (items_.empty() || b.size_with(0) >= max_packet) return r;
  // The smallest message we encode is a few bytes; stop scanning when no item
  // could fit any more, or after examining a bounded number that did not
  // (a long queue must not be walked for every packet). Not "a few misses in
  // a row": large items never sent sit at the front for good, and would stop
  // every scan before the small ones behind them.
  constexpr std::size_t smallest = 4;
  constexpr int max_misses = 64;
  int misses = 0;
  std::vector<set_t::iterator> sent;
  for (auto it = items_.begin(); it != items_.end(); ++it) {
    if (b.size_with(smallest) > max_packet) break;
    if (packet != 0 && it->in_packet == packet) continue;  // in this packet already
    if (b.size_with(it->encoded.size()) > max_packet) {
      if (++misses >= max_misses) break;
      continue;
    }
    b.add_encoded(it->encoded);
    sent.push_back(it);
    ++r.added;
    if (it->marks_leave) ++r.leave_marks;
  }
  for (auto it : sent) {
    auto node = items_.extract(it);
    node.value().transmits += 1;
    node.value().in_packet = packet;
    if (node.value().transmits >= limit) {
      if (!node.value().key.empty()) by_key_.erase(node.value().key);
      continue;  // node handle frees the item
    }
    items_.insert(std::move(node));
  }
  return r;
}

}  // namespace shoal::detail
