// Logging costs nothing when its level is off: SHOAL_LOG evaluates no
// argument then, and warn_limited builds its detail only for a line it
// writes. The lines written are the same as before either way.
#include <catch2/catch.hpp>

#include <memory>
#include <sstream>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <boost/asio/io_context.hpp>

#include "io/net.hpp"
#include "io/runtime.hpp"

namespace {

struct captured {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;

  explicit captured(spdlog::level::level_enum level) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
    sink->set_pattern("%l %v");
    logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(level);
  }
  std::string take() {
    std::string s = out.str();
    out.str({});
    return s;
  }
};

}  // namespace

TEST_CASE("SHOAL_LOG evaluates its arguments only when the level is on", "[io][logging]") {
  captured cap(spdlog::level::debug);
  const shoal::io::log_sink log(cap.logger);
  int evaluated = 0;
  auto costly = [&] {
    ++evaluated;
    return std::string("10.0.0.1:7946");
  };
  SHOAL_LOG(log, spdlog::level::trace, "udp in from={} bytes={}", costly(), 42);
  CHECK(evaluated == 0);
  CHECK(cap.take().empty());
  SHOAL_LOG(log, spdlog::level::debug, "udp in from={} bytes={}", costly(), 42);
  CHECK(evaluated == 1);
  CHECK(cap.take() == "debug udp in from=10.0.0.1:7946 bytes=42\n");

  const shoal::io::log_sink none(nullptr);  // no logger: nothing at any level
  SHOAL_LOG(none, spdlog::level::err, "x={}", costly());
  CHECK(evaluated == 1);
}

TEST_CASE("warn_limited builds its detail only for a line it writes", "[io][logging]") {
  captured cap(spdlog::level::warn);
  shoal::node_config cfg;
  cfg.protocol.logger = cap.logger;
  boost::asio::io_context ctx;
  auto rt = std::make_shared<shoal::io::runtime>(cfg, ctx, nullptr);
  int built = 0;
  auto detail = [&] {
    ++built;
    return std::string("from=10.0.0.1:7946");
  };

  rt->warn_limited("udp datagram dropped: larger than any peer sends", detail);
  CHECK(built == 1);
  CHECK(cap.take() ==
        "warning udp datagram dropped: larger than any peer sends from=10.0.0.1:7946\n");

  // Within the period: held back to debug, which is off, so nothing is built.
  for (int i = 0; i < 100; ++i)
    rt->warn_limited("udp datagram dropped: larger than any peer sends", detail);
  CHECK(built == 1);
  CHECK(cap.take().empty());

  // Another `what` has its own period.
  rt->warn_limited("decrypt_failed", detail);
  CHECK(built == 2);
  CHECK(cap.take() == "warning decrypt_failed from=10.0.0.1:7946\n");

  // With debug on, the held-back lines are written at debug, as before.
  cap.logger->set_level(spdlog::level::debug);
  rt->warn_limited("udp datagram dropped: larger than any peer sends", detail);
  CHECK(built == 3);
  CHECK(cap.take() ==
        "debug udp datagram dropped: larger than any peer sends from=10.0.0.1:7946\n");
}
