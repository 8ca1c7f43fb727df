// shoal-sim: named scenarios on the deterministic simulator.
//
//   shoal-sim --scenario NAME --nodes N --seed S [--loss P] [--crashes K]
//             [--duration S] [--preset lan|wan|local] [--setup-timeout S]
//             [--start join|converged] [--streams-immune] [--refuse]
//             [--grace S] [--quiet] [--json]
//
// `shoal-sim --help` lists every flag with its default and every scenario in
// one line (CLI11); bad usage exits with 2.
//
// Progress goes to stderr (at most once per wall second: simulated seconds of
// the scenario's phase done / its nominal length); the result is one
// JSON object on stdout (--json) or `key: value` lines.
//
// Every scenario starts in one of two ways (--start):
//   join       N nodes join through n0..n2, each at a random time within the
//              first 10 s, and the run waits (at most --setup-timeout, default
//              600 s simulated) until every node sees all N alive. The default
//              for bootstrap (which measures exactly that).
//   converged  the N nodes start at once, each already knowing all N alive
//              (simulator::start_converged, core::adopt_view): no O(N^2) join
//              burst. The default for every other scenario.
// setup_wall_s is the wall time the start took; wall_s covers the whole run.
// The end of the start is the *mark*: the scenario's own phase starts there and
// lasts --duration simulated seconds (defaults below). Traffic figures
// (msgs_per_node_s: UDP packets sent per node per second; bytes_per_node_s: UDP
// and stream bytes sent per node per second) and the false positives
// (see sim.hpp) are counted from the mark to the end, per node alive at the mark;
// so are packets_by_kind (UDP packets sent, by their first message's type),
// streams_sent (stream requests sent: push-pull, join, TCP ping) and
// view_changes_per_node (membership events per node). A false positive is
// counted once per node whose view it changed (the accuser in sim.hpp's
// sense), so one false suspicion that reaches N - 1 nodes counts N - 1 times.
// The *_by_unhealthy counts are the false positives in the views of slow or
// lossy nodes; a suspicion such a node starts counts there once and under
// false_suspect again for every healthy node it reaches.
//
// Every result states the conditions its figures depend on:
//   grace_s, grace_after  a declaration is not counted as a false positive
//              within grace_s (--grace, default 60) after the end of a fault
//              the scenario injected ("injected faults that end": a restart,
//              a heal, a resume, an unblock, a slowness lowered); never after
//              the start, never for loss below 1 (sim.hpp, false_positive,
//              has the exact rule). Only partition and restart end a fault;
//              in every other scenario no grace applies at all.
//   streams    "feel loss" (default): stream segments (push-pull, join, the
//              TCP fallback ping) are lost like UDP packets and retransmitted
//              as TCP would (network_config::streams_feel_loss); "immune"
//              (--streams-immune): loss below 1 spares streams, which no
//              real network does, for comparison only.
//
// Scenarios (default duration):
//   bootstrap       (30 s)  converged_s: from the first join to the full mesh.
//   crash           (120 s) K nodes crash at random times within the first
//                           10 s; detect_first_s (first suspicion by anyone),
//                           first_dead_s, detect_all_s (the last node's death
//                           declaration): mean and p99 over the crashes.
//                           With --refuse the crashed processes' hosts stay
//                           up and refuse what reaches them (ICMP port
//                           unreachable, RST: network_config::
//                           crashed_hosts_refuse); the output then adds
//                           refuse: true and refusal_deaths (core_stats, summed
//                           over the nodes running at the end). Without it
//                           the hosts go silent, and the output is unchanged.
//                           --refuse works in restart and churn too.
//   loss            (300 s) uniform loss P (default 0.1) on every packet.
//   slow            (300 s) 1% of the nodes (>= 1) handle every input 2 s late;
//                           they are not counted as falsely accused.
//   lossy-minority  (300 s) 1% of the nodes (>= 1) lose 80% of what they send.
//                           healthy_self_benched (here and in loss): times a
//                           healthy node benched itself (core_stats::
//                           self_benched), the margin behind false_dead 0.
//                           pairs: (healthy observer, lossy node) pairs.
//                           removed_s: removed for good, the time from the
//                           start of the phase until each lossy node is dead
//                           in every healthy node's view and stays so to the
//                           end of the run (a later return starts its clock
//                           again), max over them; null unless every lossy
//                           node is removed at the end. removed: how many are.
//                           A return: a healthy observer that declared a lossy
//                           node dead sees it up again (member_joined, or
//                           member_suspected at a newer incarnation).
//                           returns_total: all returns; pairs_with_returns and
//                           returns_share_of_pairs: the pairs that saw at
//                           least one return, and their share of pairs;
//                           returns_max_per_pair: the most returns one
//                           observer saw of one lossy node.
//   partition       (300 s) halves split two ways for 60 s, then healed;
//                           healed_s: from the heal to the full mesh.
//                           The duration counts from the heal.
//   restart         (120 s) 10% of the nodes (>= 1) crash at random times within
//                           10 s and restart 5 s later, same name, incarnation 0;
//                           back_alive_s: from the restart until every node sees
//                           it alive at its new life's incarnation.
//   churn           (300 s) max(1, N/100) actions per second: below N live
//                           nodes a new node joins (through 3 random live
//                           nodes), otherwise a random live node leaves or
//                           crashes (even odds); then
//                           the churn stops and views_agree tells whether all
//                           views converge (same digest, full mesh) within 120 s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <shoal/sim.hpp>

namespace {

using namespace std::chrono_literals;
using json = nlohmann::ordered_json;
using shoal::duration;
using shoal::member_state;
using shoal::time_point;
using shoal::sim::node_id;
using shoal::sim::simulator;
using wall_clock = std::chrono::steady_clock;

struct args {
  std::string scenario;
  std::size_t nodes = 100;
  std::uint64_t seed = 1;
  std::optional<double> loss;
  std::size_t crashes = 1;
  std::optional<double> duration_s;
  std::string preset = "lan";
  double setup_timeout_s = 600;
  bool json_out = false;
  bool quiet = false;
  bool streams_immune = false;
  bool refuse = false;
  double grace_s = 60;
  std::size_t count = 10;   // broadcast: payloads
  std::size_t size = 100;   // broadcast: bytes each
  bool churn_tags = false;  // broadcast: membership churn meanwhile
  std::string start;        // join | converged; empty: per scenario
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "shoal-sim: %s\nRun with --help for more information.\n", why.c_str());
  std::exit(2);
}

// One line per scenario, for --help (the header above says more).
constexpr const char* scenarios_help =
    "Scenarios (default --duration, simulated):\n"
    "  bootstrap       (30 s)  N nodes join; converged_s: first join to full mesh\n"
    "  crash           (120 s) --crashes K nodes crash within 10 s; detection times\n"
    "  loss            (300 s) uniform --loss P (default 0.1) on every packet\n"
    "  slow            (300 s) 1% of the nodes handle every input 2 s late\n"
    "  lossy-minority  (300 s) 1% of the nodes lose 80% of what they send; removed_s, returns\n"
    "  partition       (300 s) halves split for 60 s, then healed; healed_s\n"
    "  restart         (120 s) 10% of the nodes crash and restart 5 s later; back_alive_s\n"
    "  churn           (300 s) N/100 joins, leaves or crashes a second; views_agree after\n"
    "  broadcast       (30 s)  n0 broadcasts --count payloads of --size bytes, one a second\n"
    "                          (--churn-tags: 1% of the nodes change tags every 100 ms);\n"
    "                          delivered_share, rounds to the last delivery\n"
    "  flapping        (160 s) 2 nodes lose all they receive 20 s of every 40 s, 4 times,\n"
    "                          then recover; view changes per observer and flapping node\n"
    "\n"
    "Result: one JSON object on stdout (--json) or `key: value` lines; progress on stderr.\n";

args parse(int argc, char** argv) {
  args a;
  CLI::App app{"shoal-sim: named scenarios on shoal's deterministic simulator", "shoal-sim"};
  app.footer(scenarios_help);
  // A negative count would wrap around to a huge one: refuse it as typed.
  const CLI::Validator non_negative(
      [](std::string& v) {
        return v.find('-') == std::string::npos ? "" : "expected a non-negative integer";
      },
      "");
  app.add_option("--scenario", a.scenario, "the scenario to run (below)")
      ->required()
      ->check(CLI::IsMember({"bootstrap", "crash", "loss", "slow", "lossy-minority", "partition",
                             "restart", "churn", "broadcast", "flapping"}));
  app.add_option("--nodes", a.nodes, "cluster size N")->check(non_negative)->capture_default_str();
  app.add_option("--seed", a.seed, "the one seed of the run")
      ->check(non_negative)
      ->capture_default_str();
  double loss = 0.1;
  auto* o_loss =
      app.add_option("--loss", loss, "loss probability in [0, 1], loss scenario (default 0.1)");
  app.add_option("--crashes", a.crashes, "nodes that crash, crash scenario")
      ->check(non_negative)
      ->capture_default_str();
  double duration_s = 0;
  auto* o_duration = app.add_option("--duration", duration_s,
                                    "simulated seconds of the scenario's phase (default: below)");
  app.add_option("--preset", a.preset, "config and network preset")
      ->check(CLI::IsMember({"lan", "wan", "local"}))
      ->capture_default_str();
  app.add_option("--setup-timeout", a.setup_timeout_s,
                 "simulated seconds a join start may take to reach the full mesh")
      ->capture_default_str();
  app.add_option(
         "--start", a.start,
         "join through n0..n2, or start converged (default: join for bootstrap, else converged)")
      ->check(CLI::IsMember({"join", "converged"}));
  auto* o_immune = app.add_flag("--streams-immune", a.streams_immune,
                                "loss below 1 spares streams (default off: streams lose "
                                "segments and retransmit as TCP would)");
  bool feel_loss = false;
  app.add_flag("--streams-feel-loss", feel_loss, "the default; accepted for older scripts")
      ->excludes(o_immune);
  app.add_option("--grace", a.grace_s,
                 "seconds after the end of an injected fault (restart, heal, resume, unblock) "
                 "during which declarations it explains are not false positives; never after "
                 "the start")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--refuse", a.refuse,
               "crashed nodes' hosts refuse (ICMP, RST), not silent (default off); "
               "crash, restart, churn");
  app.add_option("--count", a.count, "payloads n0 broadcasts, broadcast scenario")
      ->check(non_negative)
      ->capture_default_str();
  app.add_option("--size", a.size, "bytes of each payload, broadcast scenario")
      ->check(non_negative)
      ->capture_default_str();
  app.add_flag("--churn-tags", a.churn_tags,
               "broadcast: 1% of the nodes change their tags every 100 ms meanwhile");
  app.add_flag("--quiet", a.quiet, "no progress lines on stderr (default off)");
  app.add_flag("--json", a.json_out, "one JSON object on stdout (default off: key: value lines)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e) == 0 ? 0 : 2);
  }
  if (*o_loss) a.loss = loss;
  if (*o_duration) a.duration_s = duration_s;
  if (a.nodes < 1) usage("--nodes must be >= 1");
  if (a.loss && (*a.loss < 0 || *a.loss > 1)) usage("--loss must be in [0, 1]");
  if (!(a.grace_s >= 0 && a.grace_s <= 1e9)) usage("--grace must be in [0, 1e9] seconds");
  if (a.start.empty()) a.start = a.scenario == "bootstrap" ? "join" : "converged";
  if (a.scenario == "bootstrap" && a.start != "join") usage("bootstrap measures the join");
  if (a.refuse && a.scenario != "crash" && a.scenario != "restart" && a.scenario != "churn")
    usage("--refuse needs a scenario that crashes nodes (crash, restart, churn)");
  return a;
}

double secs(duration d) {
  return std::chrono::duration<double>(d).count();
}
duration from_secs(double s) {
  return std::chrono::duration_cast<duration>(std::chrono::duration<double>(s));
}

json stat(std::vector<double> v) {
  if (v.empty()) return json{{"mean", nullptr}, {"p99", nullptr}, {"max", nullptr}, {"n", 0}};
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  // nearest rank
  const auto rank = static_cast<std::size_t>(std::ceil(0.99 * static_cast<double>(v.size())));
  return json{{"mean", sum / static_cast<double>(v.size())},
              {"p99", v[std::max<std::size_t>(rank, 1) - 1]},
              {"max", v.back()},
              {"n", v.size()}};
}

json opt_secs(std::optional<duration> d) {
  if (!d) return nullptr;
  return secs(*d);
}

// Picks k distinct nodes among [lo, n), or among [0, n) when that is too few.
std::vector<node_id> pick(shoal::sim::rng& r, std::size_t n, std::size_t k, std::size_t lo) {
  if (n - std::min(lo, n) < k) lo = 0;
  std::vector<node_id> pool;
  for (std::size_t i = lo; i < n; ++i) pool.push_back(static_cast<node_id>(i));
  k = std::min(k, pool.size());
  for (std::size_t i = 0; i < k; ++i) {
    const auto j = i + r.below(pool.size() - i);
    std::swap(pool[i], pool[j]);
  }
  pool.resize(k);
  return pool;
}

class runner {
 public:
  explicit runner(const args& a) : a_(a), sim_(make_options(a)) {
    if (!a.quiet) {
      sim_.on_progress(
          [this](const shoal::sim::progress& p) {
            const auto now = wall_clock::now();
            if (now - last_print_ < 1s) return;
            last_print_ = now;
            print_progress(p, now);
          },
          1 << 14);
    }
  }

  int run() {
    out_["scenario"] = a_.scenario;
    out_["nodes"] = a_.nodes;
    out_["seed"] = a_.seed;
    out_["preset"] = a_.preset;
    out_["grace_s"] = a_.grace_s;
    out_["grace_after"] = "injected faults that end";
    out_["streams"] = a_.streams_immune ? "immune" : "feel loss";
    // SWIM's analytic expected time to first detection is e/(e-1) of these.
    out_["probe_interval_s"] = secs(make_options(a_).base.probe_interval);
    const std::string& s = a_.scenario;
    if (s == "bootstrap")
      bootstrap();
    else if (s == "crash")
      crash();
    else if (s == "loss")
      loss();
    else if (s == "slow")
      slow();
    else if (s == "lossy-minority")
      lossy_minority();
    else if (s == "partition")
      partition();
    else if (s == "restart")
      restart();
    else if (s == "churn")
      churn();
    else if (s == "broadcast")
      broadcast();
    else if (s == "flapping")
      flapping();
    else
      usage("unknown scenario " + s);
    finish();
    print();
    return 0;
  }

 private:
  static shoal::sim::options make_options(const args& a) {
    shoal::sim::options o;
    o.seed = a.seed;
    if (a.preset == "wan") {
      o.base = shoal::config::wan();
      o.net = shoal::sim::network_config::wan();
    } else if (a.preset == "local") {
      o.base = shoal::config::local();
      o.net = shoal::sim::network_config::local();
    } else {
      o.base = shoal::config::lan();
      o.net = shoal::sim::network_config::lan();
    }
    o.net.streams_feel_loss = !a.streams_immune;
    o.false_positive_grace = from_secs(a.grace_s);
    o.net.crashed_hosts_refuse = a.refuse;
    return o;
  }

  duration scenario_duration(double dflt) const { return from_secs(a_.duration_s.value_or(dflt)); }

  /// The nominal length of the scenario's own phase, for the progress line.
  /// partition and churn end with a wait for agreement that may end sooner
  /// or run past it (bounded, see the header).
  duration nominal_phase() const {
    const std::string& s = a_.scenario;
    if (s == "bootstrap") return scenario_duration(30);
    if (s == "crash" || s == "restart") return scenario_duration(120);
    if (s == "partition") return 60s + scenario_duration(300);
    if (s == "broadcast") return std::chrono::seconds(a_.count) + scenario_duration(30);
    if (s == "flapping") return 220s;
    return scenario_duration(300);
  }

  // One line: during the start, simulated time since the start (and, when
  // joining, the setup limit); after it, simulated seconds of the scenario's
  // phase done / its nominal length.
  void print_progress(const shoal::sim::progress& p, wall_clock::time_point now) {
    const double wall = secs(now - wall_start_);
    if (!marked_) {
      std::fprintf(stderr,
                   "[shoal-sim] %s N=%zu setup (%s): t=%.1fs of at most %.0fs simulated, "
                   "running=%zu events=%llu wall=%.1fs\n",
                   a_.scenario.c_str(), a_.nodes, a_.start.c_str(), secs(p.elapsed),
                   a_.setup_timeout_s, p.running, static_cast<unsigned long long>(p.events), wall);
      return;
    }
    const double done = secs(p.now - mark_);
    const double total = secs(nominal_phase());
    std::fprintf(stderr,
                 "[shoal-sim] %s N=%zu: %.1f/%.0fs simulated (%.0f%%) running=%zu events=%llu "
                 "wall=%.1fs\n",
                 a_.scenario.c_str(), a_.nodes, done, total,
                 total > 0 ? std::min(100.0, 100.0 * done / total) : 100.0, p.running,
                 static_cast<unsigned long long>(p.events), wall);
  }

  // Bootstrap and wait for the full mesh; then mark the steady phase.
  void setup() {
    out_["start"] = a_.start;
    if (a_.start == "converged") {
      if (!a_.quiet)
        std::fprintf(stderr, "[shoal-sim] setup: %zu nodes adopt a converged view of %zu...\n",
                     a_.nodes, a_.nodes);
      sim_.start_converged(a_.nodes, 3);
      if (!a_.quiet)
        std::fprintf(stderr, "[shoal-sim] setup: converged start done, %.1fs wall\n",
                     secs(wall_clock::now() - wall_start_));
      out_["converged"] = sim_.full_mesh();
      out_["converged_s"] = 0.0;
      mark();
      return;
    }
    const time_point t0 = sim_.now();
    sim_.bootstrap(a_.nodes, 3, 10s);
    const bool ok =
        sim_.wait_until([this] { return sim_.live_count() == a_.nodes && sim_.full_mesh(); },
                        from_secs(a_.setup_timeout_s), 250ms);
    converged_ = ok;
    if (ok) converged_after_ = sim_.now() - t0;
    out_["converged"] = ok;
    out_["converged_s"] = opt_secs(converged_after_);
    if (!a_.quiet)
      std::fprintf(stderr, "[shoal-sim] setup: %s after %.1fs simulated, %.1fs wall\n",
                   ok ? "full mesh" : "NO full mesh", secs(sim_.elapsed()),
                   secs(wall_clock::now() - wall_start_));
    mark();
  }

  void mark() {
    // Wall time spent before the scenario's own phase (joining or adopting
    // the converged view); wall_s - setup_wall_s is the phase itself.
    out_["setup_wall_s"] = secs(wall_clock::now() - wall_start_);
    mark_ = sim_.now();
    marked_ = true;
    sent_at_mark_ = sim_.total_sent();
    live_at_mark_ = sim_.live_count();
    fs_at_mark_ = sim_.false_suspicions();
    fd_at_mark_ = sim_.false_deaths();
    fs_unhealthy_at_mark_ = sim_.false_suspicions_by_unhealthy();
    fd_unhealthy_at_mark_ = sim_.false_deaths_by_unhealthy();
    views_at_mark_ = view_changes();
  }

  std::uint64_t view_changes() const {
    std::uint64_t v = 0;
    for (node_id i = 0; i < sim_.size(); ++i) v += sim_.metrics(i).view_changes();
    return v;
  }

  void bootstrap() {
    setup();
    sim_.run_for(scenario_duration(30));
  }

  void crash() {
    setup();
    const duration d = scenario_duration(120);
    const duration spread = std::min<duration>(10s, d / 4);
    auto& r = sim_.scenario_rng();
    const auto victims = pick(r, a_.nodes, a_.crashes, 3);
    for (node_id v : victims) {
      const duration when = r.between(duration(0), spread);
      sim_.after(when, [this, v] { sim_.crash(v); });
    }
    sim_.run_for(d);
    std::vector<double> first, first_dead, all;
    std::size_t undetected = 0;
    for (const auto& c : sim_.crashes()) {
      if (c.first_suspect) first.push_back(secs(*c.first_suspect - c.at));
      if (c.first_dead) first_dead.push_back(secs(*c.first_dead - c.at));
      if (c.all_dead)
        all.push_back(secs(*c.all_dead - c.at));
      else
        ++undetected;
    }
    out_["crashes"] = sim_.crashes().size();
    out_["detect_first_s"] = stat(first);
    out_["first_dead_s"] = stat(first_dead);
    out_["detect_all_s"] = stat(all);
    out_["undetected"] = undetected;
  }

  void broadcast() {
    setup();
    const double p = a_.loss.value_or(0.0);
    out_["loss"] = p;
    sim_.set_loss(p);
    const std::size_t count = std::max<std::size_t>(a_.count, 1);
    const std::size_t size = std::clamp<std::size_t>(a_.size, 2, 65536);
    out_["count"] = count;
    out_["size"] = size;
    out_["churn_tags"] = a_.churn_tags;
    std::vector<std::vector<std::uint8_t>> got(count, std::vector<std::uint8_t>(a_.nodes, 0));
    std::vector<time_point> sent(count);
    std::vector<duration> last(count, duration::zero());
    std::uint64_t deliveries = 0, duplicates = 0;
    sim_.on_user_message([&](node_id n, const shoal::user_message& m) {
      if (m.data.size() < 2) return;
      const std::size_t i = static_cast<std::size_t>(m.data[0]) << 8 | m.data[1];
      if (i >= count) return;
      if (got[i][n]++ > 0) {
        ++duplicates;
        return;
      }
      ++deliveries;
      last[i] = std::max(last[i], sim_.now() - sent[i]);
    });
    std::uint64_t version = 0;
    auto& r = sim_.scenario_rng();
    std::function<void()> churn = [&] {
      for (std::size_t k = 0; k < std::max<std::size_t>(1, a_.nodes / 100); ++k) {
        const auto who = static_cast<node_id>(1 + r.below(a_.nodes - 1));
        const shoal::tag_map tags{{"v", std::to_string(++version)}, {"pad", std::string(300, 'p')}};
        if (sim_.has_core(who))
          sim_.act(who, [&](shoal::core& c, shoal::outbox& o) {
            (void)c.set_tags(sim_.now(), tags, o);
          });
      }
      sim_.after(100ms, churn);
    };
    if (a_.churn_tags) sim_.after(0ms, churn);
    std::uint64_t refused = 0;
    for (std::size_t i = 0; i < count; ++i) {
      std::vector<std::uint8_t> payload(size, 0xab);
      payload[0] = static_cast<std::uint8_t>(i >> 8);
      payload[1] = static_cast<std::uint8_t>(i);
      sent[i] = sim_.now();
      sim_.act(0, [&](shoal::core& c, shoal::outbox&) {
        if (c.broadcast(payload)) ++refused;
      });
      sim_.run_for(1s);
    }
    sim_.run_for(scenario_duration(30));
    const auto gossip = make_options(a_).base.gossip_interval;
    std::size_t fewest = a_.nodes;
    double worst_rounds = 0;
    for (std::size_t i = 0; i < count; ++i) {
      std::size_t reached = 0;
      for (std::size_t n = 1; n < a_.nodes; ++n)
        if (got[i][n] > 0) ++reached;
      fewest = std::min(fewest, reached);
      worst_rounds = std::max(worst_rounds, secs(last[i]) / secs(gossip));
    }
    out_["refused"] = refused;
    out_["deliveries"] = deliveries;
    out_["duplicates"] = duplicates;
    out_["delivered_share"] =
        static_cast<double>(deliveries) / static_cast<double>(count * (a_.nodes - 1));
    out_["fewest_reached"] = fewest;
    out_["others"] = a_.nodes - 1;
    out_["rounds_to_last_delivery_max"] = worst_rounds;
    out_["rounds_bound"] = 3 * std::log2(static_cast<double>(a_.nodes));
    out_["tag_changes"] = version;
  }

  void flapping() {
    setup();
    // Twelve-host lab shape at any N: two nodes lose everything they receive
    // for 20 s, recover for 20 s, four times, then 60 s of recovery.
    const auto faulty = pick(sim_.scenario_rng(), a_.nodes, 2, 3);
    std::vector<std::uint8_t> is_faulty(a_.nodes, 0);
    for (node_id f : faulty) {
      is_faulty[f] = 1;
      sim_.set_healthy(f, false);
    }
    // Per (healthy observer, faulty node): changes between up and down as
    // the observer's user sees them.
    std::unordered_map<std::uint64_t, int> changes;
    std::unordered_map<std::uint64_t, bool> up;
    sim_.on_event([&](node_id obs, const shoal::event& e) {
      const auto who = sim_.find_node(e.who.name);
      if (!who || !is_faulty[*who] || is_faulty[obs]) return;
      const std::uint64_t key = (std::uint64_t{obs} << 32) | *who;
      const bool now_up =
          e.who.state == member_state::alive || e.who.state == member_state::suspect;
      auto [it, fresh] = up.try_emplace(key, true);
      if (now_up != it->second) {
        ++changes[key];
        it->second = now_up;
      }
    });
    std::uint64_t healthy_damped = 0;
    const auto count_damped = [&] {
      for (node_id i : sim_.live_nodes())
        for (const auto& m : sim_.node_core(i).members()) {
          const auto id = sim_.find_node(m.name);
          if (m.damped && id && !is_faulty[*id]) ++healthy_damped;
        }
    };
    for (int cycle = 0; cycle < 4; ++cycle) {
      for (node_id f : faulty) sim_.set_ingress_loss(f, 1.0);
      sim_.run_for(20s);
      for (node_id f : faulty) sim_.set_ingress_loss(f, 0.0);
      sim_.run_for(20s);
      count_damped();
    }
    sim_.run_for(60s);
    int most = 0;
    std::uint64_t total = 0;
    for (const auto& [key, n] : changes) {
      most = std::max(most, n);
      total += static_cast<std::uint64_t>(n);
    }
    std::size_t pairs = 0, up_at_end = 0;
    for (node_id f : faulty)
      for (node_id o = 0; o < a_.nodes; ++o) {
        if (is_faulty[o] || !sim_.is_live(o)) continue;
        ++pairs;
        if (sim_.status_seen_by(o, sim_.name(f)) == member_state::alive) ++up_at_end;
      }
    out_["pairs"] = pairs;
    out_["changes_total"] = total;
    out_["changes_max_per_pair"] = most;
    out_["alive_at_end_share"] =
        pairs ? static_cast<double>(up_at_end) / static_cast<double>(pairs) : 0.0;
    out_["healthy_damped_sightings"] = healthy_damped;
  }

  void loss() {
    setup();
    const double p = a_.loss.value_or(0.1);
    out_["loss"] = p;
    sim_.set_loss(p);
    sim_.run_for(scenario_duration(300));
    out_["dead_in_views"] = dead_in_views();
    out_["healthy_self_benched"] = healthy_self_benched();
  }

  // Times healthy nodes (running at the end) judged their own network broken
  // and stopped refuting (core_stats::self_benched): the margin behind
  // false_dead 0 under loss, which a benched node that is accused reaches.
  std::uint64_t healthy_self_benched() const {
    std::uint64_t n = 0;
    for (node_id i : sim_.live_nodes())
      if (sim_.is_healthy(i)) n += sim_.node_core(i).stats().self_benched;
    return n;
  }

  void slow() {
    setup();
    const std::size_t k = std::max<std::size_t>(1, a_.nodes / 100);
    const auto slow = pick(sim_.scenario_rng(), a_.nodes, k, 3);
    for (node_id n : slow) {
      sim_.set_slow(n, 2s);
      sim_.set_healthy(n, false);
    }
    sim_.run_for(scenario_duration(300));
    std::size_t slow_dead = 0;
    for (node_id n : slow)
      if (seen_dead_by_some_healthy(n)) ++slow_dead;
    out_["slow_nodes"] = slow.size();
    out_["slow_seen_dead_at_end"] = slow_dead;
    out_["dead_in_views"] = dead_in_views();
  }

  void lossy_minority() {
    setup();
    const std::size_t k = std::max<std::size_t>(1, a_.nodes / 100);
    const auto lossy = pick(sim_.scenario_rng(), a_.nodes, k, 3);
    constexpr std::size_t not_lossy = ~std::size_t{0};
    std::vector<std::size_t> index(a_.nodes, not_lossy);  // node -> its place in `lossy`
    for (std::size_t i = 0; i < lossy.size(); ++i) {
      sim_.set_egress_loss(lossy[i], 0.8);
      sim_.set_healthy(lossy[i], false);
      index[lossy[i]] = i;
    }
    std::size_t observers = 0;
    for (node_id i : sim_.live_nodes())
      if (sim_.is_healthy(i)) ++observers;
    const time_point start = sim_.now();
    // Since when each lossy node has been dead in every healthy view, with no
    // return since (none: it is not, or it came back).
    std::vector<std::optional<time_point>> removed_since(lossy.size());
    // Per (healthy observer, lossy node) pair: declared dead and not back
    // since; and how many times it came back.
    std::unordered_set<std::uint64_t> declared;
    std::unordered_map<std::uint64_t, std::uint64_t> returns_by_pair;
    std::uint64_t returns = 0;
    sim_.on_event([&](node_id obs, const shoal::event& e) {
      if (obs >= index.size() || index[obs] != not_lossy || !sim_.is_healthy(obs)) return;
      const auto who = sim_.find_node(e.who.name);
      if (!who || *who >= index.size() || index[*who] == not_lossy) return;
      const std::size_t i = index[*who];
      const std::uint64_t key = (std::uint64_t{obs} << 32) | *who;
      if (e.type == shoal::event_type::member_failed) {
        declared.insert(key);
        if (!removed_since[i] && dead_in_all_healthy(*who)) removed_since[i] = sim_.now();
        return;
      }
      const bool back = e.type == shoal::event_type::member_joined ||
                        e.type == shoal::event_type::member_suspected;
      if (back && declared.erase(key)) {
        ++returns;
        ++returns_by_pair[key];
        removed_since[i].reset();
      }
    });
    const time_point end = start + scenario_duration(300);
    while (sim_.now() < end) {
      sim_.run_until(std::min(end, sim_.now() + duration(1s)));
      // What the events do not show (a view that changed without one).
      for (std::size_t i = 0; i < lossy.size(); ++i) {
        const bool dead = dead_in_all_healthy(lossy[i]);
        if (!dead)
          removed_since[i].reset();
        else if (!removed_since[i])
          removed_since[i] = sim_.now();
      }
    }
    sim_.on_event(nullptr);
    std::optional<duration> worst;
    std::size_t n_removed = 0;
    for (const auto& r : removed_since)
      if (r) {
        ++n_removed;
        worst = worst ? std::max(*worst, *r - start) : *r - start;
      }
    const std::size_t pairs = observers * lossy.size();
    std::uint64_t max_returns = 0;
    for (const auto& [pair, n] : returns_by_pair) max_returns = std::max(max_returns, n);
    out_["lossy_nodes"] = lossy.size();
    out_["pairs"] = pairs;
    out_["removed"] = n_removed;
    out_["removed_s"] = n_removed == lossy.size() ? opt_secs(worst) : json(nullptr);
    out_["returns_total"] = returns;
    out_["healthy_self_benched"] = healthy_self_benched();
    out_["pairs_with_returns"] = returns_by_pair.size();
    out_["returns_share_of_pairs"] =
        pairs == 0 ? 0.0 : static_cast<double>(returns_by_pair.size()) / static_cast<double>(pairs);
    out_["returns_max_per_pair"] = max_returns;
  }

  void partition() {
    setup();
    std::vector<node_id> a, b;
    for (node_id i = 0; i < a_.nodes; ++i) (i < a_.nodes / 2 ? a : b).push_back(i);
    const auto p = sim_.partition(a, b, true);
    sim_.run_for(60s);
    std::size_t dead_across = 0;
    for (node_id i : sim_.live_nodes()) dead_across += sim_.node_core(i).count(member_state::dead);
    out_["split_s"] = 60;
    out_["dead_in_views_at_heal"] = dead_across;
    sim_.heal(p);
    const time_point healed_at = sim_.now();
    const bool ok =
        sim_.wait_until([this] { return sim_.live_count() == a_.nodes && sim_.full_mesh(); },
                        scenario_duration(300), 250ms);
    out_["healed"] = ok;
    out_["healed_s"] = ok ? json(secs(sim_.now() - healed_at)) : json(nullptr);
    const bool agree = sim_.wait_until([this] { return sim_.converged(); }, 60s, 250ms);
    out_["views_agree"] = agree;
  }

  void restart() {
    setup();
    const duration d = scenario_duration(120);
    const std::size_t k = std::max<std::size_t>(1, a_.nodes / 10);
    auto& r = sim_.scenario_rng();
    const auto victims = pick(r, a_.nodes, k, 3);
    std::vector<time_point> restarted_at(victims.size(), time_point::max());
    for (std::size_t i = 0; i < victims.size(); ++i) {
      const duration when = r.between(duration(0), 10s);
      const node_id v = victims[i];
      sim_.after(when, [this, v] { sim_.crash(v); });
      sim_.after(when + 5s, [this, v, i, &restarted_at] {
        sim_.restart(v);
        restarted_at[i] = sim_.now();
      });
    }
    std::vector<std::optional<duration>> back(victims.size());
    const time_point end = sim_.now() + d;
    while (sim_.now() < end) {
      sim_.run_until(std::min(end, sim_.now() + duration(500ms)));
      for (std::size_t i = 0; i < victims.size(); ++i)
        if (!back[i] && restarted_at[i] != time_point::max() && back_alive(victims[i]))
          back[i] = sim_.now() - restarted_at[i];
    }
    std::vector<double> v;
    for (const auto& b : back)
      if (b) v.push_back(secs(*b));
    out_["restarted"] = victims.size();
    out_["back_alive_s"] = stat(v);
    out_["all_back"] = v.size() == victims.size();
  }

  void churn() {
    setup();
    const duration d = scenario_duration(300);
    const std::size_t per_second = std::max<std::size_t>(1, a_.nodes / 100);
    const duration every =
        std::chrono::duration_cast<duration>(1s) / static_cast<duration::rep>(per_second);
    auto& r = sim_.scenario_rng();
    std::size_t joins = 0, leaves = 0, crashes = 0;
    const time_point end = sim_.now() + d;
    while (sim_.now() < end) {
      sim_.run_until(std::min(end, sim_.now() + every));
      if (sim_.now() >= end) break;
      const auto live = sim_.live_nodes();
      if (live.size() < a_.nodes) {
        const node_id n = sim_.add_node();
        std::vector<node_id> seeds;
        for (int i = 0; i < 3 && !live.empty(); ++i) seeds.push_back(live[r.below(live.size())]);
        sim_.join(n, seeds);
        ++joins;
      } else if (r.below(2) == 0) {
        sim_.leave(live[r.below(live.size())], 5s);
        ++leaves;
      } else {
        sim_.crash(live[r.below(live.size())]);
        ++crashes;
      }
    }
    out_["joins"] = joins;
    out_["leaves"] = leaves;
    out_["crashes"] = crashes;
    const time_point quiet = sim_.now();
    const bool agree = sim_.wait_until([this] { return sim_.converged(); }, 120s, 250ms);
    out_["views_agree"] = agree;
    out_["settle_s"] = agree ? json(secs(sim_.now() - quiet)) : json(nullptr);
    out_["live_at_end"] = sim_.live_count();
  }

  // ---- helpers ----
  bool dead_in_all_healthy(node_id n) const {
    for (node_id i : sim_.live_nodes()) {
      if (i == n || !sim_.is_healthy(i)) continue;
      const auto s = sim_.status_seen_by(i, sim_.name(n));
      if (s && *s != member_state::dead && *s != member_state::left) return false;
    }
    return true;
  }

  bool seen_dead_by_some_healthy(node_id n) const {
    for (node_id i : sim_.live_nodes()) {
      if (i == n || !sim_.is_healthy(i)) continue;
      if (sim_.status_seen_by(i, sim_.name(n)) == member_state::dead) return true;
    }
    return false;
  }

  bool back_alive(node_id n) const {
    if (!sim_.is_live(n)) return false;
    const auto inc = sim_.node_core(n).local_member().incarnation;
    for (node_id i : sim_.live_nodes()) {
      if (i == n) continue;
      const auto m = sim_.node_core(i).find(sim_.name(n));
      if (!m || m->state != member_state::alive || m->incarnation < inc) return false;
    }
    return true;
  }

  std::size_t dead_in_views() const {
    std::size_t d = 0;
    for (node_id i : sim_.live_nodes()) d += sim_.node_core(i).count(member_state::dead);
    return d;
  }

  void finish() {
    const double span = secs(sim_.now() - mark_);
    const auto sent = sim_.total_sent();
    const double per =
        static_cast<double>(std::max<std::size_t>(live_at_mark_, 1)) * std::max(span, 1e-9);
    out_["simulated_s"] = secs(sim_.elapsed());
    out_["steady_s"] = span;
    out_["wall_s"] = secs(wall_clock::now() - wall_start_);
    out_["events"] = sim_.events_processed();
    out_["msgs_per_node_s"] =
        static_cast<double>(sent.total_packets() - sent_at_mark_.total_packets()) / per;
    out_["bytes_per_node_s"] =
        static_cast<double>(sent.total_bytes() - sent_at_mark_.total_bytes()) / per;
    out_["false_suspect"] = sim_.false_suspicions() - fs_at_mark_;
    out_["false_dead"] = sim_.false_deaths() - fd_at_mark_;
    // the part of them an unhealthy node (slow, lossy) made about healthy ones
    out_["false_suspect_by_unhealthy"] =
        sim_.false_suspicions_by_unhealthy() - fs_unhealthy_at_mark_;
    out_["false_dead_by_unhealthy"] = sim_.false_deaths_by_unhealthy() - fd_unhealthy_at_mark_;
    json by_kind = json::object();
    for (std::size_t k = 0; k < shoal::sim::packet_kinds; ++k) {
      const auto n = sent.packets[k] - sent_at_mark_.packets[k];
      if (n != 0) by_kind[shoal::sim::packet_kind_name(k)] = n;
    }
    out_["packets_by_kind"] = by_kind;
    out_["streams_sent"] = sent.streams - sent_at_mark_.streams;
    out_["view_changes_per_node"] = static_cast<double>(view_changes() - views_at_mark_) /
                                    static_cast<double>(std::max<std::size_t>(live_at_mark_, 1));
    out_["tick_anomalies"] = sim_.tick_anomalies();
    if (a_.refuse) {
      out_["refuse"] = true;
      std::uint64_t refusal_deaths = 0;
      for (node_id i : sim_.live_nodes())
        refusal_deaths += sim_.node_core(i).stats().refusal_deaths;
      out_["refusal_deaths"] = refusal_deaths;
    }
  }

  void print() {
    if (a_.json_out) {
      std::cout << out_.dump() << "\n";
      return;
    }
    for (const auto& [k, v] : out_.items()) std::cout << k << ": " << v.dump() << "\n";
  }

  const args& a_;
  simulator sim_;
  json out_;
  wall_clock::time_point wall_start_ = wall_clock::now();
  wall_clock::time_point last_print_ = wall_start_;
  bool converged_ = false;
  std::optional<duration> converged_after_;
  time_point mark_{};
  bool marked_ = false;
  shoal::sim::traffic sent_at_mark_;
  std::size_t live_at_mark_ = 0;
  std::uint64_t fs_at_mark_ = 0, fd_at_mark_ = 0, views_at_mark_ = 0;
  std::uint64_t fs_unhealthy_at_mark_ = 0, fd_unhealthy_at_mark_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  try {
    runner r(a);
    return r.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shoal-sim: %s\n", e.what());
    return 1;
  }
}
