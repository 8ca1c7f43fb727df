// The seeds the simulated tests loop over: 1..8, or 1..K with
// SHOAL_SIM_SEEDS=K in the environment. A failing test CAPTUREs its seed, and
// that seed replays exactly.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

inline const std::vector<std::uint64_t>& sim_seeds() {
  static const std::vector<std::uint64_t> v = [] {
    std::uint64_t k = 8;
    if (const char* env = std::getenv("SHOAL_SIM_SEEDS")) k = std::strtoull(env, nullptr, 10);
    std::vector<std::uint64_t> s;
    for (std::uint64_t i = 1; i <= std::max<std::uint64_t>(k, 1); ++i) s.push_back(i);
    return s;
  }();
  return v;
}
