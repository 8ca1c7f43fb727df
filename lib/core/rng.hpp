// The core's generator and hash: shoal::rng and shoal::stable_hash
// (shoal/random.hpp), under the names the core's sources use.
#pragma once

#include <cstdint>

#include <shoal/random.hpp>

namespace shoal::detail {

/// shoal::rng, plus splitmix() (one splitmix64 step) for mixing entry hashes.
class rng : public shoal::rng {
 public:
  using shoal::rng::rng;

  static std::uint64_t splitmix(std::uint64_t& x) noexcept { return splitmix64(x); }
};

using shoal::stable_hash;

}  // namespace shoal::detail
