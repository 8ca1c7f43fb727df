// An io test that cannot run on this machine (no IPv6 loopback, no dual-stack
// socket) must not pass: it says why and the run ends with ctest's skip code,
// so ctest reports it "Skipped", never "Passed". Catch2 v2 has no SKIP, so:
//
//   if (!iotest::loopback_v6()) return;   // or iotest::skip(env, reason)
//
// skip() records the reason (a WARN in the output) and, when the whole run
// had no failure, the process exits with skip_return_code (77, the
// SKIP_RETURN_CODE of the io tests in tests/io/CMakeLists.txt) instead of 0;
// test_skip.cpp holds the Catch listener that does it. A run with a failure
// keeps Catch's own exit code (never 77: 77 failed assertions exit 1).
//
// When the requirement's environment variable is 1 (scripts/test sets
// SHOAL_REQUIRE_IPV6=1), the same call fails the test instead: a CI machine
// that should have IPv6 cannot lose those tests silently.
#pragma once

#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/ip/v6_only.hpp>

namespace iotest {

/// The exit code of a run in which a test case could not run and none
/// failed; ctest's SKIP_RETURN_CODE for the io tests.
inline constexpr int skip_return_code = 77;

/// The running test case cannot run here, for `reason`. Fails it (Catch
/// FAIL, which throws) when the environment variable `require_env` is "1";
/// otherwise records the skip and returns: the caller returns at once.
void skip(std::string_view require_env, const std::string& reason);

/// How many test cases of this run called skip() without failing.
int skipped_count();

/// Opens an IPv6 UDP socket and binds it to `ip` port 0 (dual-stack with
/// IPV6_V6ONLY off when `dual`); the error, if any.
inline boost::system::error_code bind_v6_probe(const char* ip, bool dual) {
  namespace net = boost::asio;
  net::io_context ctx;
  net::ip::udp::socket probe(ctx);
  boost::system::error_code ec;
  probe.open(net::ip::udp::v6(), ec);
  if (!ec && dual) probe.set_option(net::ip::v6_only(false), ec);
  if (!ec) probe.bind({net::ip::make_address(ip), 0}, ec);
  return ec;
}

/// True when a UDP socket binds to [::1]; otherwise skip()s (under
/// SHOAL_REQUIRE_IPV6) and returns false.
inline bool loopback_v6() {
  const auto ec = bind_v6_probe("::1", false);
  if (ec) skip("SHOAL_REQUIRE_IPV6", "cannot bind a UDP socket to [::1]: " + ec.message());
  return !ec;
}

/// True when a UDP socket binds to [::] dual-stack (IPV6_V6ONLY off);
/// otherwise skip()s (under SHOAL_REQUIRE_IPV6) and returns false.
inline bool dual_stack() {
  const auto ec = bind_v6_probe("::", true);
  if (ec)
    skip("SHOAL_REQUIRE_IPV6", "cannot bind a UDP socket to [::] dual-stack: " + ec.message());
  return !ec;
}

}  // namespace iotest
