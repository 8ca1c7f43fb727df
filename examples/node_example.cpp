// shoal-node: one cluster member in its own process, on real sockets.
//
//   shoal-node --name NAME [--bind IP:PORT] [--join HOST:PORT]... [--seconds N]
//              [--preset lan|wan|local] [--tag KEY=VALUE]...
//
// Start three in three terminals and they form a cluster:
//
//   shoal-node --name a --bind 127.0.0.1:7946
//   shoal-node --name b --bind 127.0.0.1:7947 --join 127.0.0.1:7946
//   shoal-node --name c --bind 127.0.0.1:7948 --join 127.0.0.1:7946
//
// Each prints one line per line of news, as key=value fields:
//
//   started name=a addr=127.0.0.1:7946
//   event=member_joined member=b addr=127.0.0.1:7947 state=alive inc=0
//   ...
//
// After --seconds (0, the default: until SIGINT or SIGTERM) it leaves the
// cluster gracefully (at most 5 s), stops, and prints its member list:
//
//   left result=ok
//   members count=3
//   member name=a addr=127.0.0.1:7946 state=left inc=0
//   member name=b addr=127.0.0.1:7947 state=alive inc=0 tags=role:web
//   ...
//
// Exit status: 0 after a leave (even one that timed out: the result says so),
// 1 when the node cannot start, 2 on bad usage. tests/io/proc_driver.cpp runs
// three of these as the multi-process test.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <shoal/node.hpp>

namespace {

std::mutex out_mu;  // events print from the node's thread, the rest from main

void print_line(const std::string& line) {
  std::lock_guard lock(out_mu);
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

/// `key`=NAME addr=... state=... inc=... [tags=k:v,...]
std::string describe(const char* key, const shoal::member& m) {
  std::string s = std::string(key) + "=" + m.name + " addr=" + m.addr.to_string() +
                  " state=" + shoal::to_string(m.state) + " inc=" + std::to_string(m.incarnation);
  if (!m.tags.empty()) {
    s += " tags=";
    bool first = true;
    for (const auto& [k, v] : m.tags) {
      s += (first ? "" : ",") + k + ":" + v;
      first = false;
    }
  }
  return s;
}

/// Waits for SIGINT or SIGTERM (blocked in every thread) for at most
/// `seconds`; 0 waits for a signal alone.
void wait_for_signal_or(const sigset_t& signals, long seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (;;) {
    timespec period{1, 0};
    if (seconds > 0) {
      const auto left = end - std::chrono::steady_clock::now();
      if (left <= std::chrono::nanoseconds::zero()) return;
      const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      if (ns < 1'000'000'000) period = {0, static_cast<long>(ns)};
    }
    const int sig = sigtimedwait(&signals, nullptr, &period);
    if (sig == SIGINT || sig == SIGTERM) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"shoal-node: one cluster member on real sockets"};
  std::string name, bind = "0.0.0.0:7946", preset = "lan";
  std::vector<std::string> joins, tags;
  long seconds = 0;
  app.add_option("--name", name, "unique member name")->required();
  app.add_option("--bind", bind, "IP:PORT for UDP and TCP (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--join", joins, "HOST:PORT of a member to join through (repeatable)");
  app.add_option("--seconds", seconds, "leave and exit after N seconds (0: on SIGINT/SIGTERM)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--preset", preset, "protocol timings")
      ->check(CLI::IsMember({"lan", "wan", "local"}))
      ->capture_default_str();
  app.add_option("--tag", tags, "KEY=VALUE advertised to the cluster (repeatable)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  auto nc = shoal::node_config::preset(preset);
  const auto bind_addr = shoal::address::parse(bind);
  if (!nc || !bind_addr) {
    std::fprintf(stderr, "shoal-node: --bind wants a numeric IP:PORT, got '%s'\n", bind.c_str());
    return 2;
  }
  nc->protocol.name = name;
  nc->bind = *bind_addr;
  nc->seeds = joins;  // joined in the background, retried until someone answers
  for (const auto& t : tags) {
    const auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "shoal-node: --tag wants KEY=VALUE, got '%s'\n", t.c_str());
      return 2;
    }
    nc->protocol.tags[t.substr(0, eq)] = t.substr(eq + 1);
  }

  // Block the signals before the node starts its thread, which inherits the
  // mask; main then takes them synchronously.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    shoal::node n(*nc);
    n.subscribe([](const shoal::event& e) {
      print_line(std::string("event=") + shoal::to_string(e.type) + " " +
                 describe("member", e.who));
    });
    if (auto ec = n.start()) {
      std::fprintf(stderr, "shoal-node: start: %s\n", ec.message().c_str());
      return 1;
    }
    print_line("started name=" + name + " addr=" + n.local_member().addr.to_string());
    wait_for_signal_or(signals, seconds);
    const auto ec = n.leave(std::chrono::seconds(5));
    n.stop();
    print_line(std::string("left result=") + (ec ? ec.message() : "ok"));
    const auto members = n.members();
    print_line("members count=" + std::to_string(members.size()));
    for (const auto& m : members) print_line("member " + describe("name", m));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shoal-node: %s\n", e.what());
    return 1;
  }
  return 0;
}
