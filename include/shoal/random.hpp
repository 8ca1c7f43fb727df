// shoal/random.hpp: the one seeded generator and the one stable hash.
//
// Everything random in shoal comes from here: the core's choices (probe
// order, gossip targets, timer jitter), the simulator's network (delay, loss)
// and its scenarios (victims, times). Two runs with the same seed must make
// the same choices on every machine, so nothing here uses a std::
// distribution (std::uniform_int_distribution and friends are specified by
// what they produce, not by how, and libstdc++, libc++ and MSVC differ) or
// std::hash. Every function below is defined bit for bit:
//
//   splitmix64     Steele, Lea and Flood's 64-bit mixer (SplittableRandom),
//                  used to expand one seed into many.
//   derive_seed    an independent seed for (stream, index) from a master seed.
//   rng            xoshiro256** (Blackman and Vigna), seeded with splitmix64;
//                  bounded draws by Lemire's multiply-shift with rejection, so
//                  they are exactly uniform.
//   fnv1a, mix64,  FNV-1a over bytes, and splitmix64's finaliser to spread its
//   stable_hash    weak low bits: hashes that may cross the wire (digests) or
//                  be pinned in tests.
//
// None of it is cryptographic: never use it for keys, nonces or anything an
// attacker must not predict.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace shoal {

// ---------------------------------------------------------------------------
// Mixing and seeding
// ---------------------------------------------------------------------------

/// splitmix64's finaliser: a bijection of 64-bit words whose every output bit
/// depends on every input bit.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// One step of splitmix64 on `state`: advances it by the golden gamma and
/// returns the mix of the new state.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  state += 0x9e3779b97f4a7c15ULL;
  return mix64(state);
}

/// An independent 64-bit seed for (stream, index) derived from a master seed.
/// The simulator uses stream 1 for core seeds (index = node and life), 2 for
/// the network, 3 for simulator::scenario_rng().
constexpr std::uint64_t derive_seed(std::uint64_t seed, std::uint64_t stream,
                                    std::uint64_t index = 0) noexcept {
  std::uint64_t s = seed;
  const std::uint64_t a = splitmix64(s);
  s = a ^ (stream * 0xd1b54a32d192ed03ULL);
  const std::uint64_t b = splitmix64(s);
  s = b ^ (index * 0xa0761d6478bd642fULL);
  return splitmix64(s);
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

/// xoshiro256**: small (32 bytes of state), fast, and the same sequence for
/// the same seed everywhere. Not thread-safe: one generator per owner.
class rng {
 public:
  /// The four state words are four splitmix64 steps from `seed`.
  explicit rng(std::uint64_t seed = 1) noexcept {
    for (auto& w : s_) w = splitmix64(seed);
  }

  /// The next 64 random bits.
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, n), exactly (Lemire's multiply-shift: the high word of
  /// next() * n, drawing again in the rare case, probability below n / 2^64,
  /// where that would be biased). n == 0 gives 0 and draws nothing.
  std::uint64_t below(std::uint64_t n) noexcept {
    if (n == 0) return 0;
    u128 m = static_cast<u128>(next()) * n;
    auto low = static_cast<std::uint64_t>(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<u128>(next()) * n;
        low = static_cast<std::uint64_t>(m);
      }
    }
    return static_cast<std::uint64_t>(m >> 64);
  }

  /// Uniform in [0, 1), with 53 random bits (every double of the form k / 2^53).
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// True with probability p. Draws nothing when p <= 0 or p >= 1, so adding
  /// a zero-loss rule to a simulation never changes its run.
  bool chance(double p) noexcept {
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    return uniform() < p;
  }

  /// Uniform duration in [lo, hi] at nanosecond resolution; lo when hi <= lo.
  std::chrono::nanoseconds between(std::chrono::nanoseconds lo,
                                   std::chrono::nanoseconds hi) noexcept {
    if (hi <= lo) return lo;
    const auto span = static_cast<std::uint64_t>((hi - lo).count()) + 1;
    return lo + std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(below(span)));
  }

  /// Fisher-Yates shuffle of `v`, from the back. `on_move(i)` is called for
  /// both indices of every swap (to keep back-references into `v` current).
  template <class T, class OnMove>
  void shuffle(std::vector<T>& v, OnMove&& on_move) {
    for (std::size_t i = v.size(); i > 1; --i) {
      const auto j = static_cast<std::size_t>(below(i));
      std::swap(v[i - 1], v[j]);
      on_move(i - 1);
      on_move(j);
    }
  }
  template <class T>
  void shuffle(std::vector<T>& v) {
    shuffle(v, [](std::size_t) {});
  }

 private:
  __extension__ using u128 = unsigned __int128;  // GCC and Clang; not ISO C++
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }
  std::uint64_t s_[4] = {};
};

// ---------------------------------------------------------------------------
// Stable hashing
// ---------------------------------------------------------------------------

/// FNV-1a's starting value (the 64-bit offset basis).
inline constexpr std::uint64_t fnv1a_offset = 0xcbf29ce484222325ULL;

/// One FNV-1a step: folds `byte` into `h`.
constexpr std::uint64_t fnv1a(std::uint64_t h, std::uint8_t byte) noexcept {
  return (h ^ byte) * 0x100000001b3ULL;
}

/// FNV-1a over n bytes, continuing from `h`.
inline std::uint64_t fnv1a(const void* data, std::size_t n,
                           std::uint64_t h = fnv1a_offset) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = fnv1a(h, p[i]);
  return h;
}

/// A 64-bit hash of n bytes, the same on every machine and every build, so it
/// may cross the wire (membership digests): FNV-1a, then one splitmix64 step.
inline std::uint64_t stable_hash(const void* data, std::size_t n) noexcept {
  std::uint64_t h = fnv1a(data, n);
  return splitmix64(h);
}

}  // namespace shoal
