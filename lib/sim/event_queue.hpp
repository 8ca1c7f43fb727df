// The simulator's event queue: a binary min-heap of compact records ordered
// by virtual time, then by insertion order (a sequence number), so two runs
// with the same inputs pop the same events in the same order.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace shoal::sim::detail {

enum class ev_kind : std::uint8_t {
  tick,             // node: core.tick if aux == the node's tick generation
  packet,           // node <- from: UDP packet, payload slot, life = from's
  stream_in,        // node <- from: stream request id aux, payload slot, life = requester's
  stream_reply,     // node <- from: reply to request aux, payload slot, life = node's
  stream_fail,      // node: request aux failed (unusable link), life
  stream_deadline,  // node: request aux failed unless already answered, life
  action,           // user callback, payload = callback slot
  resume,           // node: end of a pause, aux = pause generation
  leave_deadline,   // node: stop leaving, life
  unreachable,      // node <- from: ICMP port unreachable for what node sent to from, life = node's
};

/// 40 bytes; payload and callbacks live in side tables indexed by `slot`.
struct ev {
  std::int64_t t = 0;     // virtual time, ns since the clock's epoch
  std::uint64_t seq = 0;  // insertion order (assigned by the queue)
  std::uint64_t aux = 0;  // stream id, tick or pause generation
  std::uint32_t node = 0;
  std::uint32_t from = 0;
  std::uint32_t slot = 0;  // payload or callback index
  std::uint16_t life = 0;  // the life (restart count) an event belongs to
  ev_kind kind = ev_kind::tick;
};

inline bool earlier(const ev& a, const ev& b) noexcept {
  return a.t != b.t ? a.t < b.t : a.seq < b.seq;
}

class event_queue {
 public:
  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  const ev& top() const noexcept { return heap_.front(); }
  std::uint64_t pushed() const noexcept { return next_seq_; }

  void push(ev e) {
    e.seq = next_seq_++;
    heap_.push_back(e);
    sift_up(heap_.size() - 1);
  }

  ev pop() {
    assert(!heap_.empty());
    ev top = heap_.front();
    ev last = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) sift_down(last);
    return top;
  }

 private:
  void sift_up(std::size_t i) {
    ev e = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!earlier(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }

  // Places `e` (the former last element) starting from the root.
  void sift_down(const ev& e) {
    const std::size_t n = heap_.size();
    std::size_t i = 0;
    for (;;) {
      std::size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && earlier(heap_[child + 1], heap_[child])) ++child;
      if (!earlier(heap_[child], e)) break;
      heap_[i] = heap_[child];
      i = child;
    }
    heap_[i] = e;
  }

  std::vector<ev> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace shoal::sim::detail
