// A downstream project: find_package(shoal), link shoal::io, run a core.
#include <cstdio>
#include <shoal/core.hpp>
#include <shoal/version.hpp>

int main() {
  auto cfg = shoal::config::lan();
  cfg.name = "consumer";
  cfg.advertise = *shoal::address::parse("127.0.0.1:7946");
  shoal::core node(cfg, 42);
  shoal::outbox out;
  node.join(shoal::time_point{}, {}, out);
  const auto members = node.members();
  std::printf("linked shoal %s: %zu member(s), first %s\n", shoal::library_version(),
              members.size(), members.empty() ? "-" : members[0].name.c_str());
  return members.size() == 1 ? 0 : 1;
}
