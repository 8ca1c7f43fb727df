// shoal-loopback: N shoal::node instances in one process on 127.0.0.1, on one
// shared io_context, measured on real sockets. One JSON object on stdout,
// progress on stderr.
//
//   shoal-loopback --nodes N [--preset lan|wan|local] [--window S] [--threads T]
//                  [--refusal-timeout S] [--compression on|off] --json
//
// Measures: join convergence (first join until every node sees N alive), CPU
// (nanoseconds on CPU from /proc/self/task/*/schedstat, every thread) and
// bytes sent (UDP and TCP) per node-second in a steady window, RSS per node,
// and how fast the others suspect and then declare dead one node stopped
// without leaving, and wake-ups of the io thread per node-second (voluntary
// context switches). --compression off turns node_config::compression off
// (default on), to see what deflate saves: window_counts.tcp_bytes_out /
// window_counts.push_pulls is the size of one push-pull exchange, both ways.
// Exit 0 on success, 1 when a bounded wait timed out, 2 on bad usage or a
// start/bind failure.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <shoal/node.hpp>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr auto poll_period = 50ms;
constexpr auto wait_bound = 120s;

struct options {
  std::size_t nodes = 0;
  std::string preset = "lan";
  double window_s = 30.0;
  std::size_t threads = 1;
  std::optional<double> refusal_timeout_s;  ///< protocol.refusal_suspicion_timeout (0: off)
  bool compression = true;                  ///< node_config::compression
  bool json_out = false;
};

void usage() {
  std::cerr << "usage: shoal-loopback --nodes N [--preset lan|wan|local] [--window S (30)]\n"
               "                      [--threads T (1)] [--refusal-timeout S (preset's)]\n"
               "                      [--compression on|off (on)] --json\n";
}

std::optional<options> parse_args(int argc, char** argv) {
  options o;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= args.size()) return std::nullopt;
      return args[++i];
    };
    try {
      if (a == "--nodes") {
        auto v = value();
        if (!v) return std::nullopt;
        o.nodes = static_cast<std::size_t>(std::stoul(*v));
      } else if (a == "--preset") {
        auto v = value();
        if (!v) return std::nullopt;
        o.preset = *v;
      } else if (a == "--window") {
        auto v = value();
        if (!v) return std::nullopt;
        o.window_s = std::stod(*v);
      } else if (a == "--threads") {
        auto v = value();
        if (!v) return std::nullopt;
        o.threads = static_cast<std::size_t>(std::stoul(*v));
      } else if (a == "--refusal-timeout") {
        auto v = value();
        if (!v) return std::nullopt;
        o.refusal_timeout_s = std::stod(*v);
      } else if (a == "--compression") {
        auto v = value();
        if (!v || (*v != "on" && *v != "off")) return std::nullopt;
        o.compression = *v == "on";
      } else if (a == "--json") {
        o.json_out = true;
      } else {
        return std::nullopt;
      }
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }
  if (o.nodes < 2 || o.threads < 1 || !(o.window_s > 0.0) || !o.json_out) return std::nullopt;
  if (o.refusal_timeout_s && !(*o.refusal_timeout_s >= 0.0 && *o.refusal_timeout_s <= 3600.0))
    return std::nullopt;
  return o;
}

double seconds_since(clock_type::time_point t0, clock_type::time_point t1) {
  return std::chrono::duration<double>(t1 - t0).count();
}

/// Resident set size in kB from /proc/self/status (VmRSS), 0 if unreadable.
std::uint64_t rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream s(line.substr(6));
      std::uint64_t kb = 0;
      s >> kb;
      return kb;
    }
  }
  return 0;
}

/// CPU time of this process so far and the threads it was read from.
struct cpu_reading {
  std::uint64_t ns = 0;           ///< nanoseconds on CPU, summed over the threads
  std::vector<std::string> tids;  ///< sorted
};

/// Nanoseconds on CPU of every thread of this process: the first field of
/// /proc/self/task/TID/schedstat (the scheduler's sum_exec_runtime), summed.
/// /proc/self/schedstat covers the main thread only, and /proc/self/stat
/// counts 10 ms ticks. A thread that has exited is no longer listed, so two
/// readings are compared by thread id too (threads_exited).
cpu_reading cpu_now() {
  cpu_reading r;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    std::uint64_t ns = 0;
    if (!(in >> ns)) continue;  // exited while we listed them
    r.ns += ns;
    r.tids.push_back(task.path().filename().string());
  }
  std::sort(r.tids.begin(), r.tids.end());
  return r;
}

/// Threads of `a` missing from `b`: their time is gone from b.ns.
std::size_t threads_exited(const cpu_reading& a, const cpu_reading& b) {
  std::vector<std::string> gone;
  std::set_difference(a.tids.begin(), a.tids.end(), b.tids.begin(), b.tids.end(),
                      std::back_inserter(gone));
  return gone.size();
}

/// Context switches of every thread of this process (voluntary, involuntary),
/// from /proc/self/task/*/status. With one io thread, the voluntary ones are
/// its wake-ups: a load-independent measure of timer and socket activity.
std::pair<std::uint64_t, std::uint64_t> context_switches() {
  std::uint64_t vol = 0, invol = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "status");
    std::string line;
    while (std::getline(in, line)) {
      std::uint64_t* into = nullptr;
      std::size_t skip = 0;
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
        into = &vol;
        skip = 24;
      } else if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
        into = &invol;
        skip = 27;
      }
      if (!into) continue;
      std::istringstream v(line.substr(skip));
      std::uint64_t k = 0;
      v >> k;
      *into += k;
    }
  }
  return {vol, invol};
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.
std::uint64_t raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit want = rl;
    want.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
  }
  return static_cast<std::uint64_t>(rl.rlim_cur);
}

/// Polls `pred` every 50 ms until it holds or `bound` passed.
bool poll_until(const std::function<bool()>& pred, clock_type::duration bound) {
  const auto end = clock_type::now() + bound;
  for (;;) {
    if (pred()) return true;
    if (clock_type::now() >= end) return pred();
    std::this_thread::sleep_for(poll_period);
  }
}

// Counted under the node's lock without copying its view: polling 1,024
// nodes' members() every 50 ms would copy 1,024^2 snapshots per poll and
// compete with the nodes for the CPU it measures.
std::size_t alive_count(const shoal::node& n) {
  return n.count(shoal::member_state::alive);
}

struct traffic {
  std::uint64_t bytes_out = 0, packets_out = 0;  ///< socket bytes sent, UDP + TCP
  std::uint64_t udp_bytes_out = 0, tcp_bytes_out = 0;
  std::uint64_t push_pulls = 0, streams_ok = 0, streams_failed = 0, tcp_accepted = 0;
  std::uint64_t udp_send_dropped = 0, udp_send_errors = 0, suspicions = 0, deaths = 0;
  std::uint64_t icmp_unreachable_in = 0, refusals = 0, refusal_deaths = 0;
};

traffic sum_stats(const std::vector<std::unique_ptr<shoal::node>>& nodes) {
  traffic t;
  for (const auto& n : nodes) {
    const auto s = n->stats();
    t.udp_bytes_out += s.runtime.udp_bytes_out;
    t.tcp_bytes_out += s.runtime.tcp_bytes_out;
    t.bytes_out += s.runtime.udp_bytes_out + s.runtime.tcp_bytes_out;
    t.packets_out += s.runtime.udp_packets_out;
    t.push_pulls += s.core.push_pulls;
    t.streams_ok += s.runtime.streams_ok;
    t.streams_failed += s.runtime.streams_failed;
    t.tcp_accepted += s.runtime.tcp_accepted;
    t.udp_send_dropped += s.runtime.udp_send_dropped;
    t.udp_send_errors += s.runtime.udp_send_errors;
    t.suspicions += s.core.suspicions;
    t.deaths += s.core.deaths;
    t.icmp_unreachable_in += s.runtime.icmp_unreachable_in;
    t.refusals += s.core.refusals;
    t.refusal_deaths += s.core.refusal_deaths;
  }
  return t;
}

json delta_json(const traffic& a, const traffic& b) {
  return json{{"udp_bytes_out", b.udp_bytes_out - a.udp_bytes_out},
              {"tcp_bytes_out", b.tcp_bytes_out - a.tcp_bytes_out},
              {"udp_packets_out", b.packets_out - a.packets_out},
              {"push_pulls", b.push_pulls - a.push_pulls},
              {"streams_ok", b.streams_ok - a.streams_ok},
              {"streams_failed", b.streams_failed - a.streams_failed},
              {"tcp_accepted", b.tcp_accepted - a.tcp_accepted},
              {"udp_send_dropped", b.udp_send_dropped - a.udp_send_dropped},
              {"udp_send_errors", b.udp_send_errors - a.udp_send_errors},
              {"suspicions", b.suspicions - a.suspicions},
              {"deaths", b.deaths - a.deaths}};
}

/// Detection of the victim's failure, written by event callbacks on the strands.
struct detection {
  std::atomic<bool> armed{false};
  std::atomic<std::int64_t> first_ns{-1};          ///< since `stopped_at`, first suspect/failed
  std::atomic<std::uint64_t> false_suspicions{0};  ///< suspect/failed events before arming
  std::atomic<std::uint64_t> other_suspicions{0};  ///< about others than the victim, after
  clock_type::time_point stopped_at{};
};

}  // namespace

int main(int argc, char** argv) {
  const auto opt = parse_args(argc, argv);
  if (!opt) {
    usage();
    return 2;
  }
  auto base = shoal::node_config::preset(opt->preset);
  if (!base) {
    std::cerr << "unknown preset '" << opt->preset << "'\n";
    return 2;
  }
  if (opt->refusal_timeout_s)
    base->protocol.refusal_suspicion_timeout = std::chrono::duration_cast<shoal::duration>(
        std::chrono::duration<double>(*opt->refusal_timeout_s));
  base->compression = opt->compression;
  const std::size_t n = opt->nodes;
  const std::uint64_t fd_limit = raise_fd_limit();
  std::cerr << "nodes=" << n << " preset=" << opt->preset << " window=" << opt->window_s
            << "s threads=" << opt->threads << " fd_limit=" << fd_limit << "\n";

  const auto wall_start = clock_type::now();
  bool timed_out = false;
  json out;
  out["nodes"] = n;
  out["preset"] = opt->preset;
  out["window_s"] = opt->window_s;
  out["threads"] = opt->threads;
  out["refusal_suspicion_timeout_s"] =
      std::chrono::duration<double>(base->protocol.refusal_suspicion_timeout).count();
  out["compression"] = base->compression;
  out["bytes_per_node_s_counts"] =
      "runtime_stats.udp_bytes_out + tcp_bytes_out: bytes handed to the sockets "
      "(UDP payloads and TCP stream bytes, after compression), without IP/UDP/TCP headers";
  out["cpu_s_per_node_s_counts"] =
      "nanoseconds on CPU of every thread of this process in the window (first field of "
      "/proc/self/task/*/schedstat, summed; window_counts.cpu_ns), in seconds, per node-second";

  const std::uint64_t rss_before = rss_kb();

  boost::asio::io_context ctx;
  auto work = boost::asio::make_work_guard(ctx);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < opt->threads; ++i) threads.emplace_back([&ctx] { ctx.run(); });

  const std::size_t victim = n - 1;
  const std::string victim_name = "n" + std::to_string(victim);
  detection det;

  std::vector<std::unique_ptr<shoal::node>> nodes;
  nodes.reserve(n);
  int rc = 0;
  for (std::size_t i = 0; i < n && rc == 0; ++i) {
    auto nc = *base;
    nc.protocol.name = "n" + std::to_string(i);
    nc.bind = *shoal::address::parse("127.0.0.1:0");
    nodes.push_back(std::make_unique<shoal::node>(nc, ctx));
    if (i != victim) {
      nodes.back()->subscribe([&det, &victim_name](const shoal::event& e) {
        if (e.type != shoal::event_type::member_suspected &&
            e.type != shoal::event_type::member_failed)
          return;
        if (!det.armed.load()) {
          det.false_suspicions.fetch_add(1);
          return;
        }
        if (e.who.name != victim_name) {
          det.other_suspicions.fetch_add(1);
          return;
        }
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - det.stopped_at)
                .count();
        std::int64_t expected = -1;
        det.first_ns.compare_exchange_strong(expected, static_cast<std::int64_t>(ns));
      });
    }
    if (auto ec = nodes.back()->start()) {
      std::cerr << "start of n" << i << " failed: " << ec.message() << "\n";
      rc = 2;
    }
  }

  // Join everyone through node 0.
  std::optional<double> converge_s;
  std::optional<double> join_calls_s;
  std::size_t join_errors = 0;
  if (rc == 0) {
    const std::string seed = nodes[0]->local_member().addr.to_string();
    std::cerr << "started " << n << " nodes; joining through " << seed << "\n";
    const auto t0 = clock_type::now();
    for (std::size_t i = 1; i < n; ++i) {
      const auto r = nodes[i]->join({seed});
      if (r.error || r.contacted == 0) {
        ++join_errors;
        std::cerr << "join of n" << i << ": " << r.error.message() << "\n";
      }
    }
    join_calls_s = seconds_since(t0, clock_type::now());
    std::cerr << "join calls done in " << *join_calls_s << " s; waiting for convergence\n";
    auto next_report = t0 + 1s;
    const bool ok = poll_until(
        [&] {
          std::size_t lowest = n, done = 0;
          for (const auto& nd : nodes) {
            const std::size_t k = alive_count(*nd);
            lowest = std::min(lowest, k);
            if (k == n) ++done;
          }
          if (clock_type::now() >= next_report) {
            next_report += 1s;
            std::cerr << "  t=" << seconds_since(t0, clock_type::now()) << " s: " << done << "/"
                      << n << " nodes converged, lowest alive count " << lowest << "\n";
            if (done + 8 >= n) {  // a few stragglers: show what they miss
              for (std::size_t i = 0; i < n; ++i) {
                const auto view = nodes[i]->members();
                std::size_t alive = 0;
                std::string gaps;
                std::vector<bool> seen(n, false);
                for (const auto& m : view) {
                  if (m.state == shoal::member_state::alive)
                    ++alive;
                  else
                    gaps += " " + m.name + "=" + shoal::to_string(m.state);
                  if (m.name.size() > 1) {
                    const auto j = static_cast<std::size_t>(std::stoul(m.name.substr(1)));
                    if (j < n) seen[j] = true;
                  }
                }
                if (alive == n) continue;
                for (std::size_t j = 0; j < n; ++j)
                  if (!seen[j]) gaps += " n" + std::to_string(j) + "=unknown";
                std::cerr << "    n" << i << " misses:" << gaps.substr(0, 200) << "\n";
              }
            }
          }
          return done == n;
        },
        wait_bound);
    if (ok) {
      converge_s = seconds_since(t0, clock_type::now());
      std::cerr << "converged in " << *converge_s << " s\n";
    } else {
      std::size_t worst = n;
      for (const auto& nd : nodes) worst = std::min(worst, alive_count(*nd));
      std::cerr << "TIMEOUT: no convergence within 120 s (lowest alive count " << worst << " of "
                << n << ")\n";
      timed_out = true;
    }
  }
  out["join_calls_s"] = join_calls_s ? json(*join_calls_s) : json(nullptr);
  out["join_errors"] = join_errors;
  out["join_convergence_s"] = converge_s ? json(*converge_s) : json(nullptr);

  // Memory and the steady window.
  json rss_per_node = nullptr, cpu_per = nullptr, bytes_per = nullptr, window_counts = nullptr;
  json first_suspect = nullptr, all_removed = nullptr, wakeups_per = nullptr;
  if (converge_s) {
    const std::uint64_t rss_after = rss_kb();
    rss_per_node =
        (static_cast<double>(rss_after) - static_cast<double>(rss_before)) / static_cast<double>(n);
    out["rss_before_kb"] = rss_before;
    out["rss_after_kb"] = rss_after;

    std::cerr << "steady window of " << opt->window_s << " s\n";
    const traffic t_a = sum_stats(nodes);
    const auto cs_a = context_switches();
    const cpu_reading cpu_a = cpu_now();
    const auto w0 = clock_type::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(opt->window_s));
    const cpu_reading cpu_b = cpu_now();
    const auto w1 = clock_type::now();
    const auto cs_b = context_switches();
    const traffic t_b = sum_stats(nodes);
    const double window = seconds_since(w0, w1);
    const double denom = window * static_cast<double>(n);
    const std::uint64_t cpu_ns = cpu_b.ns - cpu_a.ns;
    cpu_per = static_cast<double>(cpu_ns) / 1e9 / denom;
    bytes_per = static_cast<double>(t_b.bytes_out - t_a.bytes_out) / denom;
    window_counts = delta_json(t_a, t_b);
    window_counts["measured_s"] = window;
    window_counts["voluntary_ctxt_switches"] = cs_b.first - cs_a.first;
    window_counts["nonvoluntary_ctxt_switches"] = cs_b.second - cs_a.second;
    window_counts["cpu_ns"] = cpu_ns;
    window_counts["cpu_threads"] = cpu_b.tids.size();
    // 0: cpu_ns is complete; otherwise a lower bound.
    window_counts["cpu_threads_exited"] = threads_exited(cpu_a, cpu_b);
    wakeups_per = static_cast<double>(cs_b.first - cs_a.first) / denom;
    std::cerr << "window: cpu " << static_cast<double>(cpu_ns) / 1e9 << " s (" << cpu_b.tids.size()
              << " threads), udp bytes " << (t_b.udp_bytes_out - t_a.udp_bytes_out)
              << ", tcp bytes " << (t_b.tcp_bytes_out - t_a.tcp_bytes_out) << "\n";

    // Stop one node abruptly and watch the others.
    const std::uint64_t false_before = det.false_suspicions.load();
    out["false_suspicions_before_stop"] = false_before;
    std::cerr << "stopping " << victim_name << " without leave\n";
    det.stopped_at = clock_type::now();
    det.armed.store(true);
    nodes[victim]->stop();
    const auto s0 = det.stopped_at;
    const bool removed = poll_until(
        [&] {
          for (std::size_t i = 0; i < n; ++i) {
            if (i == victim) continue;
            const auto m = nodes[i]->find(victim_name);
            if (m && m->state != shoal::member_state::dead) return false;
          }
          return true;
        },
        wait_bound);
    const auto s1 = clock_type::now();
    if (removed) {
      all_removed = seconds_since(s0, s1);
      std::cerr << "all others see " << victim_name << " dead after " << seconds_since(s0, s1)
                << " s\n";
    } else {
      std::size_t still = 0;
      for (std::size_t i = 0; i < n; ++i) {
        if (i == victim) continue;
        const auto m = nodes[i]->find(victim_name);
        if (m && m->state != shoal::member_state::dead) ++still;
      }
      std::cerr << "TIMEOUT: " << still << " nodes still do not see " << victim_name
                << " dead after 120 s\n";
      timed_out = true;
    }
    const std::int64_t first = det.first_ns.load();
    if (first >= 0) {
      first_suspect = static_cast<double>(first) / 1e9;
    } else {
      std::cerr << "TIMEOUT: no member_suspected/member_failed event for " << victim_name << "\n";
      timed_out = true;
    }
    // Other members suspected while detecting (should be 0: only the victim failed).
    out["false_suspicions_during_detection"] = det.other_suspicions.load();
    // The refused-ping path (ICMP port unreachable), summed over the nodes.
    const traffic t_d = sum_stats(nodes);
    out["detection_counts"] = json{{"icmp_unreachable_in", t_d.icmp_unreachable_in},
                                   {"refusals", t_d.refusals},
                                   {"refusal_deaths", t_d.refusal_deaths}};
  }
  out["rss_per_node_kb"] = rss_per_node;
  out["cpu_s_per_node_s"] = cpu_per;
  out["bytes_per_node_s"] = bytes_per;
  out["wakeups_per_node_s"] = wakeups_per;
  out["window_counts"] = window_counts;
  out["detect_first_suspect_s"] = first_suspect;
  out["detect_all_removed_s"] = all_removed;
  if (!converge_s) out["false_suspicions_before_stop"] = det.false_suspicions.load();

  // Shut down: every node (the victim again is a no-op), then the threads.
  std::cerr << "stopping all nodes\n";
  const auto st0 = clock_type::now();
  for (auto& nd : nodes) nd->stop();
  nodes.clear();
  work.reset();
  for (auto& t : threads) t.join();
  out["shutdown_s"] = seconds_since(st0, clock_type::now());
  out["wall_s"] = seconds_since(wall_start, clock_type::now());
  out["timed_out"] = timed_out;

  std::cout << out.dump() << std::endl;
  if (rc != 0) return rc;
  return timed_out ? 1 : 0;
}
