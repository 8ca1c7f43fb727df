// Every counter of the lists (SHOAL_CORE_COUNTERS, SHOAL_RUNTIME_COUNTERS,
// SHOAL_SERVER_COUNTERS) reaches `shoalctl stats` and /metrics, and docs/metrics.md is the
// reference generated from the same lists.
#include <arpa/inet.h>

#include <fstream>
#include <sstream>

#include <shoal/core.hpp>
#include <shoal/node.hpp>

#include "daemon_test_util.hpp"
#include "handlers.hpp"
#include "metrics.hpp"
#include "server.hpp"

using namespace dtest;

namespace {

/// GET /metrics from 127.0.0.1:port: the whole HTTP response, or "".
std::string fetch_metrics(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  std::string out;
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0 &&
      ::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) break;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

/// "name value" lines of the exposition text, by name (labels included).
bool has_sample(const std::string& metrics, const std::string& name) {
  return metrics.find("\n" + name + " ") != std::string::npos;
}

}  // namespace

TEST_CASE("stats fields: every core and runtime counter reaches stats and /metrics",
          "[daemon][stats]") {
  const std::uint16_t metrics_port = free_port();
  lone_daemon d({"--metrics-bind", "127.0.0.1:" + std::to_string(metrics_port)});
  shoal::daemon::reply r;
  auto c = shoal::daemon::client::connect(shoal::daemon::client::options{d.socket(), 10s}, r);
  REQUIRE(c);
  r = c->call("stats");
  REQUIRE(r.ok());
  const json& s = r.result;
  std::string metrics;
  REQUIRE(wait_until(
      [&] {
        metrics = fetch_metrics(metrics_port);
        return metrics.find("\r\n\r\n") != std::string::npos;
      },
      10s));

  std::size_t seen = 0;
  auto check = [&](const char* group, const char* prefix, const char* name) {
    INFO(group << "." << name);
    CHECK(s.at(group).contains(name));
    const std::string_view n(name);
    if (n.rfind("invalid_", 0) == 0)
      CHECK(has_sample(metrics,
                       "shoal_invalid_packets_total{reason=\"" + std::string(n.substr(8)) + "\"}"));
    else
      CHECK(has_sample(metrics, std::string(prefix) + name + "_total"));
    ++seen;
  };
  shoal::visit_counters(shoal::core_stats{}, [&](const char* name, const char*, std::uint64_t) {
    check("core", "shoal_", name);
  });
  shoal::visit_counters(shoal::runtime_stats{}, [&](const char* name, const char*, std::uint64_t) {
    check("runtime", "shoal_runtime_", name);
  });
  shoal::daemon::visit_counters(shoal::daemon::server_stats{},
                                [&](const char* name, const char*, std::uint64_t) {
                                  check("daemon", "shoal_socket_", name);
                                });
  shoal::daemon::visit_counters(
      shoal::daemon::handler_stats{},
      [&](const char* name, const char*, std::uint64_t) { check("handlers", "shoal_", name); });
  // The counter security.md tells operators to watch, once missing from both.
  CHECK(s.at("core").contains("claims_out_of_reach"));
  CHECK(has_sample(metrics, "shoal_claims_out_of_reach_total"));
  CHECK(seen > 60);
}

TEST_CASE("stats fields: docs/metrics.md is generated from the counter lists", "[daemon][stats]") {
  const std::string path = std::string(SHOAL_SOURCE_DIR) + "/docs/metrics.md";
  const std::string want = shoal::daemon::render_metrics_reference();
  if (const char* update = std::getenv("SHOAL_UPDATE_DOCS"); update && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << want;
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream have;
  have << in.rdbuf();
  INFO("regenerate with: SHOAL_UPDATE_DOCS=1 ctest --test-dir build -R 'docs/metrics.md'");
  CHECK(have.str() == want);
}
