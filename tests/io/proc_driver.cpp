// shoal-io-proc-driver: three shoal-node processes (examples/node_example.cpp)
// form a cluster over real sockets.
//
//   shoal-io-proc-driver PATH-TO-shoal-node
//
// Starts p0 on 127.0.0.1 port 0, reads its address from its "started" line,
// starts p1 and p2 joining it, and follows each one's view through its event
// lines until all three see three members alive. Then p3 joins with
// --seconds 3: it must leave and exit 0 on its own, its final member list
// showing the others alive. Then SIGTERM p2 (it leaves) and wait until p0
// and p1 see two alive, then SIGTERM the rest. Every child exits 0 and
// reports its leave, or the test fails. Children get SIGKILL if the driver
// dies; on any failure the driver kills and reaps them all. Exit 0: pass.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct child {
  std::string name;
  pid_t pid = -1;
  int out = -1;  // read end of its stdout
  std::string buffer;
  std::string last_line;
  std::string addr;
  std::map<std::string, std::string> view;   // member -> state, from event lines
  std::map<std::string, std::string> final;  // member -> state, from the exit list
  std::string leave_result;                  // from "left result=..."

  int alive() const {
    int n = 0;
    for (const auto& entry : view) n += entry.second == "alive" ? 1 : 0;
    return n;
  }
};

std::vector<child> children;

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "FAIL: %s\n", why.c_str());
  for (auto& c : children) {
    std::fprintf(stderr, "  %s last: %s\n", c.name.c_str(), c.last_line.c_str());
    if (c.pid > 0) kill(c.pid, SIGKILL);
  }
  for (auto& c : children)
    if (c.pid > 0) waitpid(c.pid, nullptr, 0);
  std::exit(1);
}

child& spawn(const std::string& exe, const std::string& name,
             const std::vector<std::string>& extra) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) fail("pipe2");
  std::vector<std::string> args = {exe,           "--name",   name,   "--bind",
                                   "127.0.0.1:0", "--preset", "local"};
  args.insert(args.end(), extra.begin(), extra.end());
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  children.push_back(child{name, pid, fds[0], {}, {}, {}, {}, {}, {}});
  return children.back();
}

/// The value of `key` in a line of space-separated key=value fields.
std::optional<std::string> field(const std::string& line, const std::string& key) {
  std::size_t pos = 0;
  for (;;) {
    if (line.compare(pos, key.size() + 1, key + "=") == 0) {
      pos += key.size() + 1;
      return line.substr(pos, line.find(' ', pos) - pos);
    }
    pos = line.find(' ', pos);
    if (pos == std::string::npos) return std::nullopt;
    ++pos;
  }
}

void on_line(child& c, const std::string& line) {
  c.last_line = line;
  if (line.rfind("started ", 0) == 0) {
    if (auto a = field(line, "addr")) c.addr = *a;
  } else if (line.rfind("event=", 0) == 0) {
    const auto m = field(line, "member");
    const auto s = field(line, "state");
    if (m && s) c.view[*m] = *s;
  } else if (line.rfind("left ", 0) == 0) {
    c.leave_result = field(line, "result").value_or("?");
  } else if (line.rfind("member ", 0) == 0) {
    const auto m = field(line, "name");
    const auto s = field(line, "state");
    if (m && s) c.final[*m] = *s;
  }
}

/// Reads whatever the children printed, for at most `wait`.
void pump(std::chrono::milliseconds wait) {
  std::vector<pollfd> fds;
  for (auto& c : children)
    if (c.out >= 0) fds.push_back({c.out, POLLIN, 0});
  if (fds.empty()) return;
  poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
  for (auto& c : children) {
    if (c.out < 0) continue;
    char buf[4096];
    for (;;) {
      const ssize_t n = read(c.out, buf, sizeof buf);
      if (n > 0) {
        c.buffer.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) {  // the child closed its stdout
        close(c.out);
        c.out = -1;
      }
      break;
    }
    for (auto nl = c.buffer.find('\n'); nl != std::string::npos; nl = c.buffer.find('\n')) {
      on_line(c, c.buffer.substr(0, nl));
      c.buffer.erase(0, nl + 1);
    }
  }
}

template <class Pred>
void wait_for(Pred pred, std::chrono::seconds timeout, const std::string& what) {
  const auto end = clock_type::now() + timeout;
  while (!pred()) {
    if (clock_type::now() >= end) fail("timed out waiting for " + what);
    pump(50ms);
  }
}

/// Waits (reading its output) for a clean exit: status 0 and a leave
/// reported. SIGTERM first unless `signal` is false.
void finish_child(child& c, bool signal = true) {
  if (signal) kill(c.pid, SIGTERM);
  const auto end = clock_type::now() + 15s;
  int status = 0;
  for (;;) {
    pump(20ms);
    const pid_t r = waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid) break;
    if (clock_type::now() >= end) fail(c.name + " did not exit");
  }
  c.pid = -1;
  pump(0ms);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail(c.name + " exited with status " + std::to_string(status));
  if (c.leave_result.empty()) fail(c.name + " did not report its leave");
  if (c.final.count(c.name) == 0) fail(c.name + " did not print its member list");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: shoal-io-proc-driver PATH-TO-shoal-node\n");
    return 2;
  }
  const std::string exe = argv[1];
  children.reserve(4);
  spawn(exe, "p0", {});
  wait_for([] { return !children[0].addr.empty(); }, 10s, "p0's address");
  const std::string seed = children[0].addr;
  std::printf("p0 listens on %s\n", seed.c_str());
  spawn(exe, "p1", {"--join", seed});
  spawn(exe, "p2", {"--join", seed, "--tag", "role=db"});

  const auto all_see = [](std::size_t first, std::size_t last, int n) {
    for (std::size_t i = first; i < last; ++i)
      if (children[i].alive() != n) return false;
    return true;
  };
  wait_for([&] { return all_see(0, 3, 3); }, 30s, "three processes to see three alive");
  std::printf("cluster of 3 formed\n");

  // A fourth member that leaves by itself after --seconds.
  child& p3 = spawn(exe, "p3", {"--join", seed, "--seconds", "3"});
  finish_child(p3, false);
  for (const char* other : {"p0", "p1", "p2"})
    if (p3.final[other] != "alive") fail(std::string("p3's list lacks ") + other + " alive");
  if (p3.final["p3"] != "left") fail("p3's list does not show itself left");
  std::printf("p3 joined, left after 3 s and listed the others alive\n");
  wait_for([&] { return all_see(0, 3, 3); }, 30s, "p0..p2 to see three alive after p3 left");

  finish_child(children[2]);
  wait_for([&] { return all_see(0, 2, 2); }, 30s, "p0 and p1 to see p2 gone");
  wait_for([] { return children[0].view["p2"] == "left" && children[1].view["p2"] == "left"; }, 30s,
           "p0 and p1 to see p2 left");
  std::printf("p2 left; p0 and p1 see 2 alive\n");

  finish_child(children[1]);
  finish_child(children[0]);
  if (children[0].final["p2"] != "left") fail("p0's final list does not show p2 left");
  std::printf("PASS\n");
  return 0;
}
