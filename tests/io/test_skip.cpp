// How an io test that cannot run here reports it (skip.hpp): the reason in
// the output, and ctest's skip code as the exit status of a run in which
// nothing failed. Catch2 v2's main returns the number of failed assertions,
// so the code is changed after main returns, by an atexit handler that a
// listener installs at the end of the run.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>

// The listener and reporter types (TestEventListenerBase, TestRunStats).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "skip.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define SHOAL_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHOAL_TEST_LSAN 1
#endif
#endif
#ifdef SHOAL_TEST_LSAN
#include <sanitizer/lsan_interface.h>
#endif

namespace iotest {
namespace {

std::atomic<int> skipped{0};

/// _Exit skips what exit() still had to do after this handler: flush the
/// streams, and (sanitizer builds) LeakSanitizer's check, run here instead.
[[noreturn]] void exit_now(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
#ifdef SHOAL_TEST_LSAN
  __lsan_do_leak_check();  // a leak still fails the run (LeakSanitizer exits with its code)
#endif
  std::_Exit(code);
}

void exit_skipped() {
  std::cerr << "io tests: " << skipped.load() << " test case(s) could not run on this machine "
            << "(see the SKIPPED warnings): exit code " << skip_return_code << ", not 0\n";
  exit_now(skip_return_code);
}

void exit_failed() {
  std::cerr << "io tests: Catch's exit code would be " << skip_return_code
            << " (failed assertions), which ctest reads as a skip: exit code 1 instead\n";
  exit_now(1);
}

/// At the end of the run: a skip and no failure -> exit code 77; a failure
/// whose count Catch would return as 77 -> exit code 1.
struct skip_listener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;

  void testRunEnded(Catch::TestRunStats const& stats) override {
    const auto& t = stats.totals;
    const bool failed = t.assertions.failed > 0 || t.testCases.failed > 0 || stats.aborting;
    if (!failed && skipped.load() > 0) {
      std::atexit(exit_skipped);
    } else if (failed && t.assertions.failed == static_cast<std::uint64_t>(skip_return_code)) {
      std::atexit(exit_failed);
    }
  }
};

CATCH_REGISTER_LISTENER(skip_listener)

}  // namespace

void skip(std::string_view require_env, const std::string& reason) {
  const std::string env(require_env);
  const char* required = std::getenv(env.c_str());
  if (required != nullptr && std::string_view(required) == "1") {
    FAIL(reason << " (and " << env << "=1: this test must run here)");
  }
  ++skipped;
  WARN("SKIPPED: " << reason << " (" << env << "=1 makes this a failure)");
}

int skipped_count() {
  return skipped.load();
}

}  // namespace iotest
