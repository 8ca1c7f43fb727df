// Helpers for the daemon tests: child processes (shoald, shoalctl) that die
// with the test, scratch directories under the build tree, free loopback
// ports, and polling with deadlines (never a sleep standing in for a
// condition).
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "../common/wait_until.hpp"
#include "client.hpp"

#ifndef SHOALD_BIN
#error "SHOALD_BIN (path of shoald) must be defined by the build"
#endif
#ifndef SHOALCTL_BIN
#error "SHOALCTL_BIN (path of shoalctl) must be defined by the build"
#endif
#ifndef DAEMON_TEST_TMP
#error "DAEMON_TEST_TMP (a scratch directory in the build tree) must be defined by the build"
#endif

namespace dtest {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

using shoal::test::wait_until;

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string tail(const std::string& s, std::size_t n) {
  return s.size() <= n ? s : "..." + s.substr(s.size() - n);
}

/// A directory for one test: under the build tree when its paths fit a Unix
/// socket address, else under /tmp. Removed at the end unless the test failed
/// (then kept for its logs, and its path printed).
class scratch_dir {
 public:
  scratch_dir() {
    fs::path base = DAEMON_TEST_TMP;
    if (base.string().size() > 60) base = fs::temp_directory_path();
    fs::create_directories(base);
    std::string tmpl = (base / "shoald-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed in " + base.string());
    path_ = tmpl;
  }
  ~scratch_dir() {
    if (std::uncaught_exceptions() > 0 || std::getenv("SHOAL_KEEP_TMP")) {
      std::fprintf(stderr, "daemon test files kept in %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

/// A child process with stdout and stderr in a log file. SIGKILLed and reaped
/// on destruction if still running, and when the test process dies.
class process {
 public:
  process() = default;
  process(const std::vector<std::string>& argv, const fs::path& log, const fs::path& out = {})
      : argv_(argv), log_(log), out_(out.empty() ? log : out) {
    const pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      const int err = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      const int outfd =
          out_ == log ? err : ::open(out_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      if (err < 0 || outfd < 0) _exit(126);
      dup2(outfd, STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      const int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
      std::vector<char*> args;
      for (auto& a : argv_) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~process() { kill_now(); }
  process(process&& o) noexcept { *this = std::move(o); }
  process& operator=(process&& o) noexcept {
    if (this != &o) {
      kill_now();
      argv_ = std::move(o.argv_);
      log_ = std::move(o.log_);
      out_ = std::move(o.out_);
      pid_ = std::exchange(o.pid_, -1);
      status_ = o.status_;
    }
    return *this;
  }

  pid_t pid() const { return pid_; }
  bool running() {
    reap(false);
    return pid_ > 0;
  }
  void signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }
  /// SIGKILL and reap (no-op when already gone).
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  /// The exit status once it ended within `timeout` (-signal when killed).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    wait_until([&] { return !running(); }, timeout);
    if (pid_ > 0) return std::nullopt;
    return status_;
  }
  std::optional<int> exit_status() const { return pid_ > 0 ? std::nullopt : status_; }
  std::string log() const { return read_file(log_); }
  std::string output() const { return read_file(out_); }
  const fs::path& log_path() const { return log_; }

 private:
  void reap(bool block) {
    if (pid_ <= 0) return;
    int st = 0;
    const pid_t r = waitpid(pid_, &st, block ? 0 : WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
      pid_ = -1;
    }
  }
  std::vector<std::string> argv_;
  fs::path log_, out_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

/// Prints the tail of a file to stderr if the test fails while this exists.
struct show_on_failure {
  fs::path file;
  std::string title;
  ~show_on_failure() {
    if (std::uncaught_exceptions() > 0)
      std::fprintf(stderr, "---- %s (tail) ----\n%s\n", title.c_str(),
                   tail(read_file(file), 3000).c_str());
  }
};

struct run_result {
  int status = -1;  ///< exit status, or -signal
  std::string out, err;
};

/// Runs a command to completion (SIGKILL after `timeout`), capturing stdout and stderr.
inline run_result run(const std::vector<std::string>& argv,
                      std::chrono::milliseconds timeout = 30s) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (auto& a : copy) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  run_result r;
  const auto end = steady::now() + timeout;
  bool out_open = true, err_open = true;
  while (out_open || err_open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - steady::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    if (poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      bool& open_flag = i == 0 ? out_open : err_open;
      if (!open_flag || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0)
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      else if (n == 0 || errno != EINTR)
        open_flag = false;
    }
  }
  close(out[0]);
  close(err[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
  return r;
}

/// A port free for both UDP and TCP on 127.0.0.1 right now, never handed out
/// twice by this process.
inline std::uint16_t free_port() {
  static std::set<std::uint16_t> given;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t len = sizeof sa;
    if (bind(t, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        getsockname(t, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      close(t);
      continue;
    }
    const int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const bool udp_ok = bind(u, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    close(u);
    close(t);
    const auto port = ntohs(sa.sin_port);
    if (udp_ok && given.insert(port).second) return port;
  }
  throw std::runtime_error("no free port on 127.0.0.1");
}

/// One shoald on 127.0.0.1 with its socket, data dir and log in `dir`.
struct daemon_spec {
  std::string name;
  std::uint16_t port = 0;
  fs::path dir;  // the scratch dir
  std::vector<std::string> join;
  std::vector<std::string> extra;
  fs::path socket_path = {};  // default: DIR/NAME.sock

  fs::path socket() const { return socket_path.empty() ? dir / (name + ".sock") : socket_path; }
  fs::path data_dir() const { return dir / name; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port); }
  std::vector<std::string> argv() const {
    std::vector<std::string> a = {SHOALD_BIN, "--name",      name,         "--bind",   addr(),
                                  "--socket", socket(),      "--data-dir", data_dir(), "--preset",
                                  "local",    "--log-level", "debug"};
    for (const auto& j : join) {
      a.push_back("--join");
      a.push_back(j);
    }
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
};

/// A shoald child process; prints its log's tail if the test fails while it exists.
class daemon_proc {
 public:
  daemon_proc() = default;
  explicit daemon_proc(daemon_spec spec) : spec_(std::move(spec)) { start(); }
  ~daemon_proc() {
    if (std::uncaught_exceptions() > 0 && !spec_.name.empty())
      std::fprintf(stderr, "---- %s log (tail) ----\n%s\n", spec_.name.c_str(),
                   tail(proc_.log(), 3000).c_str());
  }
  daemon_proc(daemon_proc&&) = default;
  daemon_proc& operator=(daemon_proc&&) = default;

  void start() {
    fs::create_directories(spec_.data_dir());
    proc_ = process(spec_.argv(), spec_.dir / (spec_.name + ".log"));
  }
  daemon_spec& spec() { return spec_; }
  process& proc() { return proc_; }
  std::string socket() const { return spec_.socket(); }

 private:
  daemon_spec spec_;
  process proc_;
};

/// A handshaken client of `socket`, or nullopt.
inline std::optional<shoal::daemon::client> try_client(const std::string& socket,
                                                       std::chrono::milliseconds timeout = 5s) {
  shoal::daemon::client::options o;
  o.socket_path = socket;
  o.timeout = timeout;
  shoal::daemon::reply r;
  return shoal::daemon::client::connect(o, r);
}

/// Waits until the daemon answers a handshake on its socket (or it exited).
inline bool wait_serving(daemon_proc& d, std::chrono::milliseconds timeout = 20s) {
  return wait_until([&] { return !d.proc().running() || try_client(d.socket(), 1s).has_value(); },
                    timeout) &&
         d.proc().running();
}

/// One single-node shoald ("solo") in its own scratch directory, serving.
struct lone_daemon {
  scratch_dir dir;
  daemon_proc d;
  explicit lone_daemon(std::vector<std::string> extra = {})
      : d(daemon_spec{"solo", free_port(), dir.path(), {}, std::move(extra)}) {
    REQUIRE(wait_serving(d));
  }
  std::string socket() const { return d.socket(); }
};

/// `shoalctl --socket S ARGS...`
inline run_result ctl(const std::string& socket, std::vector<std::string> args,
                      std::chrono::milliseconds timeout = 30s);

/// How many members `socket`'s daemon sees alive (0 when it cannot say).
inline std::size_t alive_count(const std::string& socket) {
  const auto r = ctl(socket, {"members", "--status", "alive", "--format", "json"}, 10s);
  const auto j = json::parse(r.out, nullptr, false);
  if (r.status != 0 || !j.is_object() || !j.contains("members")) return 0;
  return j["members"].size();
}

/// N shoald on loopback ("n1" ... "nN", n2.. joining n1) in one scratch dir,
/// each with `extra(i)` flags (i from 1), every one serving and seeing all
/// N alive when the constructor returns.
struct small_cluster {
  scratch_dir dir;
  std::vector<daemon_proc> nodes;
  small_cluster(
      std::size_t n, const std::function<std::vector<std::string>(std::size_t)>& extra =
                         [](std::size_t) { return std::vector<std::string>{}; }) {
    std::string seed;
    nodes.reserve(n);
    for (std::size_t i = 1; i <= n; ++i) {
      daemon_spec spec{"n" + std::to_string(i), free_port(), dir.path(), {}, extra(i)};
      if (i == 1)
        seed = spec.addr();
      else
        spec.join = {seed};
      nodes.emplace_back(std::move(spec));
      REQUIRE(wait_serving(nodes.back()));
    }
    for (auto& d : nodes) REQUIRE(wait_until([&] { return alive_count(d.socket()) == n; }, 30s));
  }
  daemon_proc& operator[](std::size_t i) { return nodes.at(i - 1); }  ///< 1-based, as the names
};

/// `shoalctl --socket S ARGS...`
inline run_result ctl(const std::string& socket, std::vector<std::string> args,
                      std::chrono::milliseconds timeout) {
  args.insert(args.begin(), {SHOALCTL_BIN, "--socket", socket});
  return run(args, timeout);
}

/// Parses JSON that shoalctl printed; a discarded value when it is no JSON.
inline json parse_json(const std::string& s) {
  return json::parse(s, nullptr, false);
}

}  // namespace dtest
