// The demo story on the deterministic simulator: five nodes form a cluster,
// one crashes (the simulated SIGKILL), another leaves gracefully, and we print
// the view of n0 after each step with the events that led to it. Everything
// printed is computed by real shoal cores on the virtual clock.
#include <chrono>
#include <cstdio>
#include <string>

#include <shoal/sim.hpp>

namespace {
using namespace std::chrono_literals;

double seconds(shoal::duration d) {
  return std::chrono::duration<double>(d).count();
}

void print_members(const shoal::sim::simulator& sim, shoal::sim::node_id observer) {
  std::printf("\n  view of %s at t=%.1fs\n", sim.name(observer).c_str(), seconds(sim.elapsed()));
  std::printf("  %-6s %-18s %-8s %s\n", "NAME", "ADDRESS", "STATUS", "INCARNATION");
  for (const auto& m : sim.node_core(observer).members())
    std::printf("  %-6s %-18s %-8s %llu\n", m.name.c_str(), m.addr.to_string().c_str(),
                shoal::to_string(m.state), static_cast<unsigned long long>(m.incarnation));
}
}  // namespace

int main(int argc, char** argv) {
  shoal::sim::options opts;
  opts.seed = argc > 1 ? std::stoull(argv[1]) : 1;
  shoal::sim::simulator sim(opts);
  const shoal::sim::node_id observer = 0;
  sim.on_event([&](shoal::sim::node_id n, const shoal::event& e) {
    if (n != observer || e.who.name == sim.name(observer)) return;
    std::printf("  [t=%6.2fs] %s: %s %s\n", seconds(sim.elapsed()), sim.name(n).c_str(),
                shoal::to_string(e.type), e.who.name.c_str());
  });

  std::printf("== 5 nodes join through n0 (simulated LAN, seed %llu)\n",
              static_cast<unsigned long long>(opts.seed));
  sim.bootstrap(5, 1, 2s);
  const auto everyone_alive = [&] { return sim.live_count() == 5 && sim.full_mesh(); };
  if (!sim.wait_until(everyone_alive, 60s)) {
    std::printf("the cluster did not converge\n");
    return 1;
  }
  print_members(sim, observer);

  std::printf("\n== n3 crashes (no goodbye)\n");
  const auto crash_at = sim.elapsed();
  sim.crash(3);
  if (!sim.wait_status_everywhere("n3", shoal::member_state::dead, 120s)) {
    std::printf("n3 was not declared failed everywhere\n");
    return 1;
  }
  std::printf("  failed everywhere %.1fs after the crash\n", seconds(sim.elapsed() - crash_at));
  print_members(sim, observer);

  std::printf("\n== n4 leaves gracefully\n");
  sim.leave(4);
  if (!sim.wait_status_everywhere("n4", shoal::member_state::left, 30s)) {
    std::printf("n4 was not seen as left everywhere\n");
    return 1;
  }
  print_members(sim, observer);
  std::printf(
      "\n(demo on the simulator; shoald and shoalctl will tell the same story on real"
      " sockets)\n");
  return 0;
}
