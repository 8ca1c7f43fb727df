// Helpers for tests on real sockets: nodes on loopback with the local()
// timings and ephemeral ports, and polling with a deadline (never a sleep
// standing in for a condition).
#pragma once

#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <catch2/catch.hpp>

#include <shoal/node.hpp>

#include "../common/wait_until.hpp"

namespace iotest {

using namespace std::chrono_literals;

using shoal::test::wait_until;

/// SHOAL_IO_LOG=debug (or trace, info, ...) logs every node to stderr.
inline std::shared_ptr<spdlog::logger> test_logger(const std::string& name) {
  const char* level = std::getenv("SHOAL_IO_LOG");
  if (!level) return nullptr;
  auto logger =
      std::make_shared<spdlog::logger>(name, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(spdlog::level::from_str(level));
  return logger;
}

/// A node config on `ip` (default 127.0.0.1), ephemeral port, local() timings.
inline shoal::node_config local_config(const std::string& name, std::vector<std::string> seeds = {},
                                       const std::string& ip = "127.0.0.1") {
  auto nc = *shoal::node_config::preset("local");
  nc.protocol.name = name;
  nc.protocol.logger = test_logger(name);
  nc.bind =
      *shoal::address::parse(ip.find(':') == std::string::npos ? ip + ":0" : "[" + ip + "]:0");
  nc.seeds = std::move(seeds);
  return nc;
}

inline std::string seed_of(const shoal::node& n) {
  return n.local_member().addr.to_string();
}

/// State of `name` in n's view (nullopt: not visible).
inline std::optional<shoal::member_state> state_at(const shoal::node& n, const std::string& name) {
  const auto m = n.find(name);
  if (!m) return std::nullopt;
  return m->state;
}

inline std::size_t alive_count(const shoal::node& n) {
  std::size_t k = 0;
  for (const auto& m : n.members()) k += m.state == shoal::member_state::alive ? 1 : 0;
  return k;
}

/// Every node in `nodes` sees exactly `expected` members alive.
template <class Nodes>
bool full_mesh(const Nodes& nodes, std::size_t expected) {
  for (const auto& n : nodes)
    if (alive_count(*n) != expected) return false;
  return true;
}

/// Every node in `nodes` sees `name` in state `s`.
template <class Nodes>
bool everyone_sees(const Nodes& nodes, const std::string& name, shoal::member_state s) {
  for (const auto& n : nodes)
    if (state_at(*n, name) != s) return false;
  return true;
}

/// Describes each node's view, for failure messages.
template <class Nodes>
std::string views(const Nodes& nodes) {
  std::string out;
  for (const auto& n : nodes) {
    out += n->local_member().name + ":";
    for (const auto& m : n->members())
      out += " " + m.name + "=" + shoal::to_string(m.state) + "/" + std::to_string(m.incarnation);
    out += "\n";
  }
  return out;
}

using node_list = std::vector<std::unique_ptr<shoal::node>>;

/// n own-thread nodes named prefix0..prefix{n-1} (local_config, then `tweak`);
/// all but the first join the first.
inline node_list start_cluster(const std::string& prefix, std::size_t n,
                               const std::function<void(shoal::node_config&)>& tweak = {}) {
  node_list nodes;
  std::string seed;
  for (std::size_t i = 0; i < n; ++i) {
    auto cfg = local_config(prefix + std::to_string(i));
    if (i > 0) cfg.seeds = {seed};
    if (tweak) tweak(cfg);
    nodes.push_back(std::make_unique<shoal::node>(cfg));
    REQUIRE_FALSE(nodes.back()->start());
    if (i == 0) seed = seed_of(*nodes[0]);
  }
  return nodes;
}

/// Waits (30 s at most) until every node sees `expected` members alive.
inline void require_mesh(const node_list& nodes, std::size_t expected) {
  const bool ok = wait_until([&] { return full_mesh(nodes, expected); }, std::chrono::seconds(30));
  INFO(views(nodes));
  REQUIRE(ok);
}

}  // namespace iotest
