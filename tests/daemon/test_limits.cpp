// The protocol's limits set through shoald's configuration, crossed on
// loopback: each refusal is what daemon/shoald.example.toml documents, counted
// where it says (socket `stats`, Prometheus), and the daemon keeps answering.
#include <arpa/inet.h>

#include <cmath>

#include "daemon_test_util.hpp"

using namespace dtest;
using namespace shoal::daemon;

namespace {

json stats(const std::string& socket) {
  reply r;
  auto c = client::connect(client::options{socket, 10s}, r);
  REQUIRE(c);
  r = c->call("stats");
  INFO((r.ec ? r.ec.message() : r.error ? r.error->code : std::string()));
  REQUIRE(r.ok());
  return r.result;
}

std::uint64_t counter(const json& s, const char* group, const char* name) {
  return s.at(group).value(name, std::uint64_t{0});
}

/// Decode failures of every reason (core.invalid_*): datagrams that got past
/// the runtime's checks.
std::uint64_t decoded_and_refused(const json& s) {
  std::uint64_t n = 0;
  for (const auto& [k, v] : s.at("core").items())
    if (k.rfind("invalid_", 0) == 0) n += v.get<std::uint64_t>();
  return n;
}

/// The daemon still serves the socket API and itself is alive.
void still_answers(const std::string& socket) {
  reply r;
  auto c = client::connect(client::options{socket, 10s}, r);
  REQUIRE(c);
  r = c->call("members");
  REQUIRE(r.ok());
  REQUIRE(r.result["members"].size() == 1);
  CHECK(r.result["members"][0]["status"] == "alive");
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = htons(port);
  return sa;
}

/// A UDP socket on loopback that sends junk (not a shoal packet) to one port.
class udp_sender {
 public:
  explicit udp_sender(std::uint16_t port)
      : to_(loopback(port)), fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd_ >= 0);
  }
  ~udp_sender() { ::close(fd_); }
  udp_sender(const udp_sender&) = delete;
  udp_sender& operator=(const udp_sender&) = delete;
  bool send(std::size_t bytes) {
    const std::vector<std::uint8_t> junk(bytes, 0xab);
    return ::sendto(fd_, junk.data(), junk.size(), 0, reinterpret_cast<const sockaddr*>(&to_),
                    sizeof to_) == static_cast<ssize_t>(bytes);
  }

 private:
  sockaddr_in to_;
  int fd_;
};

/// A TCP connection to 127.0.0.1:port, or -1.
int tcp_connect(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_in sa = loopback(port);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

/// True once the peer closed `fd` (end of file or reset), without waiting.
bool closed_by_peer(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  char b;
  return ::recv(fd, &b, 1, MSG_DONTWAIT) <= 0;
}

/// GET /metrics from 127.0.0.1:port; the whole HTTP response.
std::string get_metrics(std::uint16_t port) {
  const int fd = tcp_connect(port);
  if (fd < 0) return {};
  const std::string req = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  std::string out;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) break;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return out;
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("limits: --max-packets-per-source-per-second drops a flood, counted in stats and metrics",
          "[daemon][limits]") {
  const std::uint16_t metrics_port = free_port();
  lone_daemon d({"--max-packets-per-source-per-second", "50", "--metrics-bind",
                 "127.0.0.1:" + std::to_string(metrics_port)});
  udp_sender flood(d.d.spec().port);
  const auto start = steady::now();
  // 500 datagrams at once, ten times the second's allowance; more bursts only
  // if the kernel dropped some of them before the daemon read them.
  std::uint64_t sent = 0;
  json s;
  REQUIRE(wait_until(
      [&] {
        for (int i = 0; i < 500; ++i)
          if (flood.send(64)) ++sent;
        s = stats(d.socket());
        return counter(s, "runtime", "rate_limited") >= 450;
      },
      20s));
  const double elapsed_s = std::chrono::duration<double>(steady::now() - start).count();
  const std::uint64_t limited = counter(s, "runtime", "rate_limited");
  const std::uint64_t passed = decoded_and_refused(s);  // junk: what the limiter let through
  INFO("sent " << sent << " limited " << limited << " passed " << passed << " in " << elapsed_s
               << " s");
  CHECK(passed >= 1);
  CHECK(passed + limited <= sent);  // nobody else sends to this lone daemon
  // One window of 50 per second the flood lasted, at most (the default, 1000,
  // would have let all of the first 500 through).
  CHECK(passed <= 50 * (static_cast<std::uint64_t>(std::ceil(elapsed_s)) + 1));
  // The documented warning, rate-limited.
  CHECK(wait_until(
      [&] {
        return d.d.proc().log().find("over max_packets_per_source_per_second") != std::string::npos;
      },
      5s));
  // The same counter on /metrics, as one family.
  std::string metrics;
  const std::string sample = "\nshoal_runtime_rate_limited_total ";
  REQUIRE(wait_until(
      [&] {
        metrics = get_metrics(metrics_port);
        return metrics.find(sample) != std::string::npos;
      },
      10s));
  CHECK(occurrences(metrics, "# TYPE shoal_runtime_rate_limited_total counter") == 1);
  CHECK(occurrences(metrics, sample) == 1);
  const auto at = metrics.find(sample) + sample.size();
  CHECK(std::stoull(metrics.substr(at, metrics.find('\n', at) - at)) >= limited);
  still_answers(d.socket());
}

TEST_CASE("limits: --udp-buffer-size bounds the datagrams read, before and after opening them",
          "[daemon][limits]") {
  // 800: the runtime drops datagrams over 800 + 810 bytes unread
  // (udp_too_large), the core packets over 800 + 512 (invalid_too_large).
  // With the default, 1400, neither of the two below would be too large.
  lone_daemon d({"--udp-buffer-size", "800"});
  udp_sender u(d.d.spec().port);
  json s;
  auto wait_for = [&](const char* group, const char* name, std::uint64_t value) {
    INFO(group << "." << name << " == " << value);
    REQUIRE(wait_until(
        [&] {
          s = stats(d.socket());
          return counter(s, group, name) >= value;
        },
        10s));
    CHECK(counter(s, group, name) == value);
  };
  REQUIRE(u.send(1000));  // fits: decoded, refused as junk
  wait_for("core", "invalid_magic", 1);
  CHECK(counter(s, "core", "invalid_too_large") == 0);
  REQUIRE(u.send(1610));  // the largest the runtime reads, over what the core accepts
  wait_for("core", "invalid_too_large", 1);
  CHECK(counter(s, "runtime", "udp_too_large") == 0);
  REQUIRE(u.send(1611));
  wait_for("runtime", "udp_too_large", 1);
  CHECK(counter(s, "core", "invalid_too_large") == 1);
  CHECK(counter(s, "core", "invalid_magic") == 1);
  still_answers(d.socket());
}

TEST_CASE("limits: --max-tcp-sessions closes peer connections beyond it at accept",
          "[daemon][limits]") {
  lone_daemon d({"--max-tcp-sessions", "2"});
  const std::uint16_t port = d.d.spec().port;
  // Three peers connect and say nothing: two are served (until the stream
  // deadline, 10 s), the third is closed at once.
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    fds.push_back(tcp_connect(port));
    REQUIRE(fds.back() >= 0);
  }
  json s;
  REQUIRE(wait_until(
      [&] {
        s = stats(d.socket());
        return counter(s, "runtime", "tcp_accepted") + counter(s, "runtime", "tcp_rejected") >= 3;
      },
      10s));
  CHECK(counter(s, "runtime", "tcp_rejected") == 1);
  CHECK(counter(s, "runtime", "tcp_accepted") == 2);
  CHECK(counter(s, "runtime", "tcp_sessions") == 2);
  CHECK(wait_until(
      [&] {
        return std::count_if(fds.begin(), fds.end(), [](int fd) { return closed_by_peer(fd); }) >=
               1;
      },
      5s));
  still_answers(d.socket());
  // A bound on what runs at once: once those end, a peer is served again.
  for (int fd : fds) ::close(fd);
  REQUIRE(
      wait_until([&] { return counter(stats(d.socket()), "runtime", "tcp_sessions") == 0; }, 10s));
  const int again = tcp_connect(port);
  REQUIRE(again >= 0);
  CHECK(
      wait_until([&] { return counter(stats(d.socket()), "runtime", "tcp_accepted") == 3; }, 10s));
  CHECK(counter(stats(d.socket()), "runtime", "tcp_rejected") == 1);
  ::close(again);
}

TEST_CASE("limits: shoald refuses an out-of-range or inconsistent limit at start, naming the field",
          "[daemon][limits]") {
  scratch_dir dir;
  auto start = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        SHOALD_BIN, "--name", "x", "--bind", "127.0.0.1:0", "--socket", (dir / "x.sock").string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run(argv, 20s);
  };
  auto r = start({"--max-members", "1"});
  CHECK(r.status == 2);
  CHECK(r.err.find("max_members") != std::string::npos);
  r = start({"--udp-buffer-size", "700"});  // no room for 512 bytes of tags, a name and a header
  CHECK(r.status == 2);
  CHECK(r.err.find("udp_buffer_size") != std::string::npos);
  CHECK(r.err.find("max_tag_bytes") != std::string::npos);
  r = start({"--max-name-length", "0"});
  CHECK(r.status == 2);
  CHECK(r.err.find("max_name_length") != std::string::npos);
  std::ofstream(dir / "c.toml") << "max_tcp_sessions = 0\n";
  r = start({"--config", (dir / "c.toml").string()});
  CHECK(r.status == 2);
  CHECK(r.err.find("max_tcp_sessions") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "x.sock"));  // refused before serving anything
}

TEST_CASE("limits: --max-tag-bytes bounds this node's own tags through the socket",
          "[daemon][limits]") {
  lone_daemon d({"--max-tag-bytes", "32"});
  reply r;
  auto c = client::connect(client::options{d.socket(), 10s}, r);
  REQUIRE(c);
  // 4 + 12 + 16 per tag = 32 bytes: fits
  r = c->call("tags", json{{"set", {{"role", "0123456789ab"}}}});
  REQUIRE(r.ok());
  CHECK(r.result["tags"]["role"] == "0123456789ab");
  r = c->call("tags", json{{"set", {{"zone", "x"}}}});  // 32 + 21: over
  REQUIRE(r.error);
  CHECK(r.error->code == "invalid_argument");
  r = c->call("member", json{{"name", "solo"}});
  REQUIRE(r.ok());
  INFO(r.result.dump());
  CHECK(r.result["tags"] == json{{"role", "0123456789ab"}});  // nothing changed
}
