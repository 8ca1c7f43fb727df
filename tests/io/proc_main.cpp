// shoal-io-proc: one shoal::node in its own process, for multi-process tests.
//
//   shoal-io-proc --name NAME [--bind IP:PORT] [--join HOST:PORT]... [--preset lan|wan|local]
//
// Prints one JSON line on stdout every 200 ms:
//   {"name":"p0","addr":"127.0.0.1:40123","members":3,"alive":3}
// On SIGTERM or SIGINT it leaves (2 s at most), stops, prints
//   {"name":"p0","event":"stopped","leave":"Success"}
// and exits 0. Exit 2: bad arguments; 1: the node did not start.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <shoal/node.hpp>

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: shoal-io-proc --name NAME [--bind IP:PORT] [--join HOST:PORT]... "
               "[--preset lan|wan|local]\n");
  return 2;
}

void print_status(const shoal::node& n) {
  std::size_t alive = 0;
  const auto members = n.members();
  for (const auto& m : members) alive += m.state == shoal::member_state::alive ? 1 : 0;
  std::printf("{\"name\":\"%s\",\"addr\":\"%s\",\"members\":%zu,\"alive\":%zu}\n",
              n.local_member().name.c_str(), n.local_member().addr.to_string().c_str(),
              members.size(), alive);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::string name, bind = "127.0.0.1:0", preset = "local";
  std::vector<std::string> seeds;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) return usage();
    const std::string value = argv[++i];
    if (arg == "--name")
      name = value;
    else if (arg == "--bind")
      bind = value;
    else if (arg == "--join")
      seeds.push_back(value);
    else if (arg == "--preset")
      preset = value;
    else
      return usage();
  }
  auto nc = shoal::node_config::preset(preset);
  const auto bind_addr = shoal::address::parse(bind);
  if (name.empty() || !nc || !bind_addr) return usage();
  nc->protocol.name = name;
  nc->bind = *bind_addr;
  nc->seeds = seeds;

  // Block the signals before the node starts its thread, which inherits the
  // mask; main then takes them synchronously with sigtimedwait().
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    shoal::node n(*nc);
    if (auto ec = n.start()) {
      std::fprintf(stderr, "shoal-io-proc: start: %s\n", ec.message().c_str());
      return 1;
    }
    const timespec period{0, 200'000'000};
    for (;;) {
      print_status(n);
      const int sig = sigtimedwait(&signals, nullptr, &period);
      if (sig == SIGTERM || sig == SIGINT) break;
    }
    const auto ec = n.leave(std::chrono::seconds(2));
    n.stop();
    std::printf("{\"name\":\"%s\",\"event\":\"stopped\",\"leave\":\"%s\"}\n", name.c_str(),
                ec ? ec.message().c_str() : "Success");
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shoal-io-proc: %s\n", e.what());
    return 1;
  }
  return 0;
}
