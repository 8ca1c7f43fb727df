// The simulator's event queue: a binary heap (std::push_heap/pop_heap) of
// compact records ordered by virtual time, then by insertion order (a
// sequence number). (time, sequence) is a strict total order, so two runs with
// the same inputs pop the same events in the same order, whatever the heap's
// internal layout.
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
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
    std::push_heap(heap_.begin(), heap_.end(), later);
  }

  ev pop() {
    assert(!heap_.empty());
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const ev e = heap_.back();
    heap_.pop_back();
    return e;
  }

 private:
  // std:: heaps put the greatest element first; the earliest must come first.
  static bool later(const ev& a, const ev& b) noexcept { return earlier(b, a); }

  std::vector<ev> heap_;
  std::uint64_t next_seq_ = 0;
};

}  // namespace shoal::sim::detail
