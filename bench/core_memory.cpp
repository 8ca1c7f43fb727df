// shoal-core-memory: heap bytes one core spends per known member.
//   shoal-core-memory [--members N] [--tags]
// Measures malloc's in-use bytes (mallinfo2) before and after a core learns N
// members, in steady state (after a few protocol periods, queues drained), and
// prints one JSON object.
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <shoal/core.hpp>

namespace {
std::size_t heap_in_use() {
  malloc_trim(0);
  return mallinfo2().uordblks;
}
}  // namespace

int main(int argc, char** argv) {
  std::size_t n = 10000;
  bool tags = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--members") == 0 && i + 1 < argc)
      n = std::stoul(argv[++i]);
    else if (std::strcmp(argv[i], "--tags") == 0)
      tags = true;
    else {
      std::fprintf(stderr, "usage: shoal-core-memory [--members N] [--tags]\n");
      return 2;
    }
  }
  using namespace std::chrono_literals;
  std::vector<shoal::member> view;
  view.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    shoal::member m;
    m.name = "node-" + std::to_string(i);
    m.addr = shoal::address::v4({10, static_cast<std::uint8_t>(i >> 16),
                                 static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)},
                                7946);
    if (tags) m.tags = {{"role", "web"}, {"dc", "eu-1"}};
    view.push_back(std::move(m));
  }
  auto cfg = shoal::config::lan();
  cfg.name = "observer";
  cfg.advertise = *shoal::address::parse("10.255.255.254:7946");
  shoal::time_point now{};
  shoal::outbox out;

  const std::size_t before = heap_in_use();
  shoal::core core(cfg, 1);
  core.join(now, {}, out);
  const std::size_t empty = heap_in_use();
  core.adopt_view(now, view);
  // A few protocol periods: probes go out (and fail, nobody answers), timers
  // settle; the steady-state footprint is what we report.
  for (int i = 0; i < 50; ++i) {
    now += 100ms;
    out.clear();
    core.tick(now, out);
  }
  out.clear();
  out.packets.shrink_to_fit();
  const std::size_t after = heap_in_use();
  const double per = static_cast<double>(after - empty) / static_cast<double>(n);
  std::printf(
      "{\"members\":%zu,\"tags\":%s,\"core_empty_bytes\":%zu,\"bytes_per_member\":%.1f,"
      "\"estimate_per_member\":%.1f,\"known\":%zu}\n",
      n, tags ? "true" : "false", empty - before, per,
      static_cast<double>(core.memory_estimate()) / static_cast<double>(n),
      core.count(shoal::member_state::alive));
  return 0;
}
