// The simulator's network model: which packets a link drops and why.
//
// A UDP packet from A to B is blocked (never delivered) when a partition rule
// separates A -> B or when any loss that applies to it is 1; otherwise it is
// dropped with probability 1 - (1 - global)(1 - egress[A])(1 - ingress[B])
// (1 - link[A -> B]): independent drops, drawn with one random number, and
// none when the probability is 0. Streams are blocked the same way; loss
// below 1 delays or fails them through TCP's retransmissions when
// network_config::streams_feel_loss (the default), and spares them otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

namespace shoal::sim::detail {

class network_model {
 public:
  void resize(std::size_t n) {
    ingress_.resize(n, 0.0);
    egress_.resize(n, 0.0);
  }

  void set_loss(double p) noexcept { loss_ = p; }
  double loss() const noexcept { return loss_; }
  void set_ingress(std::uint32_t n, double p) { ingress_[n] = p; }
  void set_egress(std::uint32_t n, double p) { egress_[n] = p; }
  double ingress(std::uint32_t n) const { return ingress_[n]; }
  double egress(std::uint32_t n) const { return egress_[n]; }
  void set_link(std::uint32_t from, std::uint32_t to, double p) {
    if (p <= 0.0)
      links_.erase(key(from, to));
    else
      links_[key(from, to)] = p;
  }
  double link(std::uint32_t from, std::uint32_t to) const {
    if (links_.empty()) return 0.0;
    auto it = links_.find(key(from, to));
    return it == links_.end() ? 0.0 : it->second;
  }

  /// Adds a rule blocking a -> b (and b -> a when two_way). Returns its id.
  std::uint32_t add_partition(std::span<const std::uint32_t> a, std::span<const std::uint32_t> b,
                              bool two_way, std::size_t n) {
    rule r;
    r.side.assign(n, 0);
    for (auto x : a) r.side[x] |= in_a;
    for (auto x : b) r.side[x] |= in_b;
    r.two_way = two_way;
    rules_.push_back(std::move(r));
    ++active_;
    return static_cast<std::uint32_t>(rules_.size() - 1);
  }
  /// Deactivates a rule; returns the nodes it involved (empty if it was not active).
  std::vector<std::uint32_t> heal(std::uint32_t id) {
    std::vector<std::uint32_t> involved;
    if (id >= rules_.size() || !rules_[id].active) return involved;
    rule& r = rules_[id];
    for (std::size_t i = 0; i < r.side.size(); ++i)
      if (r.side[i] != 0) involved.push_back(static_cast<std::uint32_t>(i));
    r.active = false;
    r.side.clear();
    r.side.shrink_to_fit();
    --active_;
    return involved;
  }
  std::size_t rule_count() const noexcept { return rules_.size(); }
  bool rule_active(std::uint32_t id) const noexcept {
    return id < rules_.size() && rules_[id].active;
  }

  bool partitioned(std::uint32_t from, std::uint32_t to) const noexcept {
    if (active_ == 0) return false;
    for (const rule& r : rules_) {
      if (!r.active) continue;
      const std::uint8_t f = from < r.side.size() ? r.side[from] : 0;
      const std::uint8_t t = to < r.side.size() ? r.side[to] : 0;
      if ((f & in_a) && (t & in_b)) return true;
      if (r.two_way && (f & in_b) && (t & in_a)) return true;
    }
    return false;
  }

  /// Partitioned, or some applicable loss is 1.
  bool blocked(std::uint32_t from, std::uint32_t to) const noexcept {
    if (loss_ >= 1.0 || egress_[from] >= 1.0 || ingress_[to] >= 1.0) return true;
    if (!links_.empty() && link(from, to) >= 1.0) return true;
    return partitioned(from, to);
  }

  /// Probability that a UDP packet from -> to is lost (blocks excluded).
  double drop_probability(std::uint32_t from, std::uint32_t to) const noexcept {
    double keep = (1.0 - loss_) * (1.0 - egress_[from]) * (1.0 - ingress_[to]);
    if (!links_.empty()) keep *= 1.0 - link(from, to);
    return 1.0 - keep;
  }

 private:
  static constexpr std::uint8_t in_a = 1, in_b = 2;
  struct rule {
    std::vector<std::uint8_t> side;  // per node: in_a | in_b
    bool two_way = true;
    bool active = true;
  };
  static std::uint64_t key(std::uint32_t from, std::uint32_t to) noexcept {
    return (static_cast<std::uint64_t>(from) << 32) | to;
  }

  double loss_ = 0.0;
  std::vector<double> ingress_, egress_;
  std::unordered_map<std::uint64_t, double> links_;
  std::vector<rule> rules_;
  std::size_t active_ = 0;
};

}  // namespace shoal::sim::detail
