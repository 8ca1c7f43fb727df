// The scaling formulas of the protocol, as small pure functions (table-tested
// in tests/unit/test_formulas.cpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>

#include <shoal/config.hpp>

namespace shoal::detail {

/// Times each update is piggybacked: mult * ceil(log10(n + 1)).
inline int retransmit_limit(int mult, std::size_t n) {
  return mult * static_cast<int>(std::ceil(std::log10(static_cast<double>(n) + 1.0)));
}

/// Lifeguard minimum suspicion timeout: mult * max(1, log10(n)) * interval.
inline duration suspicion_min(int mult, std::size_t n, duration interval) {
  const double scale = std::max(1.0, std::log10(static_cast<double>(std::max<std::size_t>(n, 1))));
  return std::chrono::duration_cast<duration>(interval * (mult * scale));
}

/// Lifeguard dynamic suspicion timeout after `confirmations` independent
/// confirmations, `k` of which are expected: starts at max, reaches min at k,
///   max - (max - min) * log(c + 1) / log(k + 1), never below min.
inline duration suspicion_timeout(duration min, duration max, int k, int confirmations) {
  if (k < 1) return min;
  const double frac =
      std::log(static_cast<double>(confirmations) + 1.0) / std::log(static_cast<double>(k) + 1.0);
  const auto span = static_cast<double>((max - min).count());
  const auto raw =
      duration(static_cast<duration::rep>(static_cast<double>(max.count()) - frac * span));
  // Whole milliseconds, as the timer granularity users reason in.
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(raw);
  return std::max(min, duration(ms));
}

/// Confirmations a suspicion waits for: suspicion_mult - 2, but no more than
/// the members that could confirm (n - 2: not the suspect, not us).
inline int suspicion_k(int suspicion_mult, std::size_t n) {
  const int k = suspicion_mult - 2;
  const int others = static_cast<int>(std::min<std::size_t>(n, 1u << 20)) - 2;
  return std::max(0, std::min(k, others));
}

/// How much rarer anti-entropy gets in a cluster of n, so the cluster-wide
/// stream load stays bounded: 1 up to 32 members, else
///   ceil(log2(n) - log2(32)) + 1.
inline int push_pull_scale(std::size_t n) {
  if (n <= 32) return 1;
  return static_cast<int>(std::ceil(std::log2(static_cast<double>(n)) - 5.0)) + 1;
}

/// Mean push-pull interval for a cluster of n: interval * push_pull_scale(n).
inline duration push_pull_interval(duration interval, std::size_t n) {
  return interval * push_pull_scale(n);
}

}  // namespace shoal::detail
