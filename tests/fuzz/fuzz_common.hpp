// Shared by the fuzz targets: the world the seed corpus was recorded in (node
// n0 at 10.0.0.1:7946 with peers n1.. at 10.0.0.2.., as the simulator names
// and places its nodes), a core already part of that cluster, and the checks
// every target runs on what the core does with hostile input. A failed check
// aborts, which libFuzzer reports as a crash with the input that caused it.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <shoal/core.hpp>

#include "wire/codec.hpp"

namespace fuzz {

using namespace std::chrono_literals;

/// Peers the core under test knows when an input starts: n1 .. n<peers>.
inline constexpr std::size_t peers = 4;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

inline void check(bool ok, const char* what) {
  if (!ok) fail(what);
}

/// n<i>'s address, as the simulator places it (n0 is 10.0.0.1:7946).
inline shoal::address addr_of(std::size_t i) {
  return shoal::address::v4({10, 0, 0, static_cast<std::uint8_t>(i + 1)}, 7946);
}

inline shoal::config config_of(std::size_t i) {
  auto c = shoal::config::local();
  c.name = "n" + std::to_string(i);
  c.advertise = addr_of(i);
  return c;
}

/// Keys of the encrypted-packet target and its corpus: key k is 32 bytes of
/// value k * 32 + i. Test keys, public on purpose.
inline std::array<std::uint8_t, 32> sealing_key(std::uint8_t k) {
  std::array<std::uint8_t, 32> key{};
  for (std::size_t i = 0; i < key.size(); ++i) key[i] = static_cast<std::uint8_t>(k * 32 + i);
  return key;
}
inline constexpr const char* sealing_label = "fuzz-cluster";

/// The simulator's start time, so recorded and fuzzed runs share a clock.
inline shoal::time_point start_time() {
  return shoal::time_point(1000s);
}

/// Every packet the core sends fits its MTU and decodes; every stream
/// request decodes and fits the push-pull bound. What a node sends after
/// hostile input must still be well formed: a malformed packet from us is a
/// bug on our side and would poison every peer.
inline void check_outbox(const shoal::outbox& out, const shoal::config& cfg) {
  std::vector<shoal::wire::message> msgs;
  shoal::wire::decode_counters counters;
  const shoal::wire::limits lim;
  for (const auto& p : out.packets) {
    check(p.data.size() <= cfg.udp_buffer_size, "sent packet over udp_buffer_size");
    check(!shoal::wire::decode_packet(p.data, lim, msgs, counters), "sent packet does not decode");
    check(!msgs.empty(), "sent packet is empty");
  }
  for (const auto& s : out.streams) {
    check(s.data.size() <= cfg.max_push_pull_bytes, "stream request over max_push_pull_bytes");
    shoal::wire::limits big;
    big.max_packet_bytes = cfg.max_push_pull_bytes;
    check(!shoal::wire::decode_packet(s.data, big, msgs, counters),
          "stream request does not decode");
  }
}

/// The view is consistent with itself whatever the input was.
inline void check_view(const shoal::core& c) {
  const auto view = c.members();
  std::size_t by_state[4] = {0, 0, 0, 0};
  for (std::size_t i = 0; i < view.size(); ++i) {
    if (i > 0) check(view[i - 1].name < view[i].name, "members() not sorted or duplicated");
    check(!view[i].name.empty(), "a member without a name");
    check(view[i].name.size() <= c.cfg().max_name_length, "a member name over max_name_length");
    const auto s = static_cast<std::size_t>(view[i].state);
    check(s < 4, "a member in no known state");
    ++by_state[s];
  }
  check(view.size() <= c.cfg().max_members, "more members than max_members");
  for (std::size_t s = 0; s < 4; ++s)
    check(c.count(static_cast<shoal::member_state>(s)) == by_state[s],
          "count() disagrees with members()");
  const auto self = c.local_member();
  check(self.name == c.cfg().name, "the local member lost its name");
  const auto found = c.find(self.name);
  check(found && found->incarnation == self.incarnation, "the local member is not in the view");
  check(c.health_score() >= 0 && c.health_score() < c.cfg().awareness_max_multiplier,
        "health score out of range");
}

/// n0, joined, knowing n1 .. n<peers> alive: the state the corpus was recorded
/// against.
inline std::unique_ptr<shoal::core> make_member(std::size_t self, shoal::time_point now,
                                                shoal::outbox& out) {
  auto c = std::make_unique<shoal::core>(config_of(self), 0x5eed + self);
  c->join(now, {}, out);
  std::vector<shoal::member> view;
  for (std::size_t i = 0; i <= peers; ++i)
    if (i != self)
      view.push_back(shoal::member{"n" + std::to_string(i),
                                   addr_of(i),
                                   0,
                                   shoal::member_state::alive,
                                   {},
                                   shoal::protocol_version});
  c->adopt_view(now, view);
  return c;
}

/// Runs one member: n<self> as make_member() builds it, at start_time().
/// Answers its stream requests with failures (deterministic, no peer),
/// checks everything it sends, and runs its timers.
class driver {
 public:
  explicit driver(std::size_t self = 0) : now_(start_time()) {
    c_ = make_member(self, now_, out_);
    drain();
  }

  shoal::core& core() { return *c_; }
  shoal::time_point now() const { return now_; }
  shoal::outbox& out() { return out_; }

  /// Checks and empties the outbox; failed streams feed stream_failed().
  void drain() {
    for (int round = 0; round < 8 && !out_.empty(); ++round) {
      check_outbox(out_, c_->cfg());
      auto streams = std::move(out_.streams);
      out_.clear();
      for (const auto& s : streams) c_->stream_failed(now_, s.id, out_);
    }
    out_.clear();
  }

  /// Runs every timer up to now() + d.
  void advance(shoal::duration d) {
    const auto end = now_ + d;
    for (int guard = 0; guard < 100000; ++guard) {
      const auto next = c_->next_deadline();
      if (next > end) break;
      now_ = std::max(now_, next);
      c_->tick(now_, out_);
      check(c_->next_deadline() > now_, "tick() left a timer due now: the runtime would spin");
      drain();
    }
    now_ = end;
  }

 private:
  std::unique_ptr<shoal::core> c_;
  shoal::time_point now_;
  shoal::outbox out_;
};

}  // namespace fuzz
