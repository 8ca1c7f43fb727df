// shoald: a shoal cluster member as a service. Serves the view to local
// processes over a Unix socket (daemon/PROTOCOL.md). Configuration:
// daemon/shoald.example.toml; `shoald --help` lists the flags.
#include <cstdio>
#include <exception>

#include "agent.hpp"
#include "config.hpp"

int main(int argc, char** argv) {
  int code = 0;
  auto cfg = shoal::daemon::load_config(argc, argv, code);
  if (!cfg) return code;
  try {
    shoal::daemon::agent a(std::move(*cfg), argc, argv);
    return a.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shoald: fatal: %s\n", e.what());
    return 1;
  }
}
