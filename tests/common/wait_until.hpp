// Polling with a deadline for the tests on real sockets and processes
// (tests/io, tests/daemon): never a sleep standing in for a condition. The
// simulator's tests wait on virtual time instead (shoal::sim, mini_net.hpp).
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace shoal::test {

/// Polls `pred` every 20 ms until it holds or `timeout` passed; true when it
/// held (checked once more at the deadline).
inline bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= end) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace shoal::test
