// A downstream project: find_package(shoal), link shoal::io, run a node on
// loopback (an ephemeral port) and read its view.
#include <cstdio>
#include <shoal/node.hpp>
#include <shoal/version.hpp>

int main() {
  shoal::node_config cfg;
  cfg.protocol = shoal::config::local();
  cfg.protocol.name = "consumer";
  cfg.bind = *shoal::address::parse("127.0.0.1:0");
  shoal::node node(cfg);
  if (auto ec = node.start()) {
    std::printf("start failed: %s\n", ec.message().c_str());
    return 1;
  }
  const auto members = node.members();
  std::printf("linked shoal %s: %zu member(s), first %s\n", shoal::library_version(),
              members.size(), members.empty() ? "-" : members[0].name.c_str());
  node.stop();
  return members.size() == 1 ? 0 : 1;
}
