// A few cores wired by hand: packets are delivered in order after a fixed
// latency, streams synchronously; time jumps to the next deadline. Only for
// unit tests of the core (the real simulator is lib/sim).
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <shoal/core.hpp>

namespace test {

using namespace std::chrono_literals;

inline shoal::address addr_of(int i) {
  return shoal::address::v4({10, 0, 0, static_cast<std::uint8_t>(i + 1)}, 7946);
}

struct mini_net {
  struct node {
    std::unique_ptr<shoal::core> core;
    bool up = true;
    std::vector<shoal::event> events;
    std::vector<shoal::user_message> user_messages;
  };
  struct in_flight {
    shoal::time_point at;
    shoal::address from, to;
    shoal::bytes data;
    bool refusal = false;  ///< an ICMP port unreachable for `from`'s datagram to `to`
  };

  shoal::time_point now{};
  std::vector<node> nodes;
  std::deque<in_flight> wire;
  shoal::duration latency = 1ms;
  std::function<bool(const shoal::address&, const shoal::address&)> drop = nullptr;
  /// Hosts of down nodes answer datagrams with port unreachable (process
  /// gone, host up); otherwise they are silent.
  bool down_hosts_refuse = false;
  /// A forged refusal for a datagram that was delivered (from, to).
  std::function<bool(const shoal::address&, const shoal::address&)> forge_refusal = nullptr;

  shoal::config make_config(int i) const {
    auto c = shoal::config::lan();
    c.name = "n" + std::to_string(i);
    c.advertise = addr_of(i);
    return c;
  }

  int add(shoal::config c, std::uint64_t seed) {
    nodes.push_back(node{std::make_unique<shoal::core>(std::move(c), seed), true, {}, {}});
    return static_cast<int>(nodes.size()) - 1;
  }

  int index_of(const shoal::address& a) const {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].core->local_member().addr == a) return static_cast<int>(i);
    return -1;
  }

  void drain(int i, shoal::outbox& out) {
    auto& n = nodes[static_cast<std::size_t>(i)];
    const auto self = n.core->local_member().addr;
    for (auto& e : out.events) n.events.push_back(e);
    for (auto& m : out.user_messages) n.user_messages.push_back(m);
    for (auto& p : out.packets)
      wire.push_back({now + latency, self, p.to, std::move(p.data), false});
    auto streams = std::move(out.streams);
    out.clear();
    for (auto& s : streams) {
      const int j = index_of(s.to);
      shoal::outbox o2;
      if (j < 0 || !nodes[static_cast<std::size_t>(j)].up ||
          (drop && (drop(self, s.to) || drop(s.to, self)))) {
        n.core->stream_failed(now, s.id, o2);
        drain(i, o2);
        continue;
      }
      auto reply = nodes[static_cast<std::size_t>(j)].core->handle_stream(now, self, s.data, o2);
      drain(j, o2);
      shoal::outbox o3;
      if (reply.empty())
        n.core->stream_failed(now, s.id, o3);
      else
        n.core->handle_stream_reply(now, s.id, reply, o3);
      drain(i, o3);
    }
  }

  void join(int i, std::vector<shoal::address> seeds) {
    shoal::outbox out;
    nodes[static_cast<std::size_t>(i)].core->join(now, seeds, out);
    drain(i, out);
  }

  // Advance virtual time to `until`, delivering packets and firing timers.
  void run_until(shoal::time_point until) {
    for (;;) {
      shoal::time_point next = until;
      for (auto& n : nodes)
        if (n.up) next = std::min(next, n.core->next_deadline());
      if (!wire.empty()) next = std::min(next, wire.front().at);
      if (next >= until && (wire.empty() || wire.front().at > until)) {
        now = until;
        return;
      }
      now = std::max(now, next);
      while (!wire.empty() && wire.front().at <= now) {
        auto f = std::move(wire.front());
        wire.pop_front();
        if (f.refusal) {
          const int s = index_of(f.from);
          if (s < 0 || !nodes[static_cast<std::size_t>(s)].up) continue;
          shoal::outbox out;
          nodes[static_cast<std::size_t>(s)].core->handle_unreachable(now, f.to, out);
          drain(s, out);
          continue;
        }
        const int j = index_of(f.to);
        if (drop && drop(f.from, f.to)) continue;
        if (j < 0 || !nodes[static_cast<std::size_t>(j)].up) {
          if (down_hosts_refuse) wire.push_back({now + latency, f.from, f.to, {}, true});
          continue;
        }
        if (forge_refusal && forge_refusal(f.from, f.to))
          wire.push_back({now + latency, f.from, f.to, {}, true});
        shoal::outbox out;
        nodes[static_cast<std::size_t>(j)].core->handle_packet(now, f.from, f.data, out);
        drain(j, out);
      }
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        if (!nodes[i].up || nodes[i].core->next_deadline() > now) continue;
        shoal::outbox out;
        nodes[i].core->tick(now, out);
        drain(static_cast<int>(i), out);
      }
    }
  }
  void run_for(shoal::duration d) { run_until(now + d); }

  bool wait_until(const std::function<bool()>& pred, shoal::duration timeout,
                  shoal::duration step = 100ms) {
    const auto end = now + timeout;
    while (now < end) {
      if (pred()) return true;
      run_for(step);
    }
    return pred();
  }

  // State of `name` as node i's user sees it (nullopt: not visible).
  std::optional<shoal::member_state> state_at(int i, const std::string& name) const {
    auto m = nodes[static_cast<std::size_t>(i)].core->find(name);
    if (!m) return std::nullopt;
    return m->state;
  }

  bool everyone_sees(const std::string& name, shoal::member_state s) const {
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (!nodes[i].up || nodes[i].core->local_member().name == name) continue;
      if (state_at(static_cast<int>(i), name) != s) return false;
    }
    return true;
  }

  bool full_mesh() const {
    std::size_t live = 0;
    for (auto& n : nodes) live += n.up ? 1 : 0;
    for (auto& n : nodes)
      if (n.up && n.core->count(shoal::member_state::alive) != live) return false;
    return true;
  }
};

}  // namespace test
