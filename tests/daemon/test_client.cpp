// The client library against a scripted fake daemon (a thread on a Unix
// socket): framing, the worked example of PROTOCOL.md byte for byte, replies,
// errors, interleaved stream events, and every way the other side can fail.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "client.hpp"

using namespace shoal::daemon;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

fs::path temp_socket_path(const std::string& name) {
  std::string tmpl = (fs::temp_directory_path() / "shoal-client-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
  return fs::path(tmpl) / name;
}

int listen_at(const fs::path& p) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, p.c_str(), sizeof sa.sun_path - 1);
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(fd, 4) != 0)
    throw std::runtime_error("cannot listen on " + p.string());
  return fd;
}

// The fake daemon's script runs on a thread of its own, and Catch's assertion
// macros are not thread-safe (ThreadSanitizer reports them), so the script
// throws instead; fake_daemon records the first failure and the test checks
// script_failed() on its own thread after join().
#define PEER_EXPECT(...) peer_expect(static_cast<bool>(__VA_ARGS__), #__VA_ARGS__, __LINE__)

void peer_expect(bool ok, const char* what, int line) {
  if (!ok) throw std::runtime_error("fake daemon, line " + std::to_string(line) + ": " + what);
}

/// The daemon's side of one connection, blocking.
struct peer {
  int fd;
  frame_reader reader{1 << 20};

  /// The next frame's payload; empty at end of file.
  std::vector<std::uint8_t> read_payload() {
    std::vector<std::uint8_t> out;
    for (;;) {
      if (reader.next(out) == frame_reader::status::frame) return out;
      std::uint8_t buf[4096];
      const ssize_t n = ::read(fd, buf, sizeof buf);
      if (n <= 0) return {};
      reader.feed({buf, static_cast<std::size_t>(n)});
    }
  }
  json read() {
    const auto p = read_payload();
    if (p.empty()) return nullptr;
    auto oh = msgpack::unpack(reinterpret_cast<const char*>(p.data()), p.size());
    json j;
    PEER_EXPECT(to_json(oh.get(), j));
    return j;
  }
  void write_bytes(const std::vector<std::uint8_t>& b) {
    PEER_EXPECT(::write(fd, b.data(), b.size()) == static_cast<ssize_t>(b.size()));
  }
  void write(const json& v) { write_bytes(encode_frame(v)); }
  /// Reads the handshake and answers it.
  void accept_handshake() {
    const auto h = read();
    PEER_EXPECT(h["cmd"] == "handshake");
    PEER_EXPECT(h["args"]["version"] == 1);
    write({{"id", h["id"]},
           {"result",
            {{"version", 1}, {"daemon", "0.1.0"}, {"min_version", 1}, {"max_version", 1}}}});
  }
};

/// Accepts one connection and runs `script` on it in a thread.
class fake_daemon {
 public:
  explicit fake_daemon(std::function<void(peer&)> script)
      : path_(temp_socket_path("fake.sock")), listener_(listen_at(path_)) {
    thread_ = std::thread([this, script = std::move(script)] {
      const int fd = accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      peer p{fd};
      try {
        script(p);
      } catch (const std::exception& e) {
        failure_ = e.what();
        failed_ = true;
      } catch (...) {
        failure_ = "unknown exception";
        failed_ = true;
      }
      if (p.fd >= 0) ::close(p.fd);
    });
  }
  ~fake_daemon() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    std::error_code ec;
    fs::remove_all(path_.parent_path(), ec);
  }
  std::string path() const { return path_.string(); }
  /// After join(): whether the script failed; the reason is UNSCOPED_INFO'd.
  bool script_failed() const {
    if (failed_) UNSCOPED_INFO(failure_);
    return failed_;
  }
  void join() {
    thread_.join(), thread_ = std::thread([] {});
  }

 private:
  fs::path path_;
  int listener_;
  std::thread thread_;
  std::atomic<bool> failed_{false};
  std::string failure_;  // written before failed_, read after join()
};

client::options opts(const std::string& path, std::chrono::milliseconds t = 5s) {
  client::options o;
  o.socket_path = path;
  o.timeout = t;
  return o;
}

std::vector<std::uint8_t> hex(const std::string& s) {
  std::vector<std::uint8_t> out;
  std::istringstream in(s);
  std::string b;
  while (in >> b) out.push_back(static_cast<std::uint8_t>(std::stoul(b, nullptr, 16)));
  return out;
}

}  // namespace

TEST_CASE("client: connect errors say why", "[daemon][client]") {
  std::error_code ec;
  const auto missing = temp_socket_path("none.sock");
  auto c = connection::open(missing, 1s, ec);
  CHECK(ec == client_errc::socket_missing);
  CHECK_FALSE(c.is_open());
  CHECK(describe(ec, missing).find("no socket at " + missing.string()) != std::string::npos);

  // A socket file nobody listens on (a daemon that died).
  const auto stale = missing.parent_path() / "stale.sock";
  close(listen_at(stale));
  c = connection::open(stale, 1s, ec);
  CHECK(ec == client_errc::connection_refused);

  const auto plain = missing.parent_path() / "plain";
  { std::ofstream(plain) << "x"; }
  c = connection::open(plain, 1s, ec);
  CHECK(ec == client_errc::not_a_socket);

  c = connection::open(std::string(200, 'a'), 1s, ec);
  CHECK(ec == client_errc::bad_socket_path);
  fs::remove_all(missing.parent_path());
}

TEST_CASE("client: the handshake and a call are PROTOCOL.md's worked example, byte for byte",
          "[daemon][client]") {
  std::vector<std::uint8_t> got_handshake, got_members;
  fake_daemon d([&](peer& p) {
    got_handshake = p.read_payload();
    p.write_bytes(hex(
        "00 00 00 3d 82 a2 69 64 01 a6 72 65 73 75 6c 74 84 a7 76 65 72 73 69 6f 6e 01 a6 64 61 "
        "65 6d 6f 6e a5 30 2e 31 2e 30 ab 6d 69 6e 5f 76 65 72 73 69 6f 6e 01 ab 6d 61 78 5f 76 "
        "65 72 73 69 6f 6e 01"));
    got_members = p.read_payload();
    p.write({{"id", 2}, {"result", {{"members", json::array()}}}});
  });
  reply r;
  auto c = client::connect(opts(d.path()), r);
  REQUIRE(c);
  CHECK(r.result["daemon"] == "0.1.0");
  CHECK(c->handshake_result()["max_version"] == 1);
  r = c->call("members");
  REQUIRE(r.ok());
  CHECK(r.result["members"].empty());
  d.join();
  // PROTOCOL.md, "A worked example": the frames without their length prefix.
  CHECK(got_handshake ==
        hex("83 a2 69 64 01 a3 63 6d 64 a9 68 61 6e 64 73 68 61 6b 65 a4 61 72 67 73 "
            "81 a7 76 65 72 73 69 6f 6e 01"));
  CHECK(got_members == hex("82 a2 69 64 02 a3 63 6d 64 a7 6d 65 6d 62 65 72 73"));
  CHECK(encode_request(1, "handshake", json{{"version", 1}}).size() == 4 + 0x22);
  CHECK_FALSE(d.script_failed());
}

TEST_CASE("client: errors are replies and the connection lives on", "[daemon][client]") {
  fake_daemon d([](peer& p) {
    p.accept_handshake();
    auto q = p.read();
    PEER_EXPECT(q["cmd"] == "frobnicate");
    p.write(
        {{"id", q["id"]}, {"error", {{"code", "unknown_command"}, {"message", "no frobnicate"}}}});
    q = p.read();
    PEER_EXPECT(q["cmd"] == "member");
    PEER_EXPECT(q["args"]["name"] == "n1");
    p.write({{"id", q["id"]}, {"result", {{"name", "n1"}}}, {"later_key", 7}});
  });
  reply r;
  auto c = client::connect(opts(d.path()), r);
  REQUIRE(c);
  r = c->call("frobnicate");
  REQUIRE(r.error);
  CHECK_FALSE(r.ec);
  CHECK(r.error->code == "unknown_command");
  CHECK(r.error->message == "no frobnicate");
  r = c->call("member", json{{"name", "n1"}});
  REQUIRE(r.ok());
  CHECK(r.result["name"] == "n1");
  d.join();
  CHECK_FALSE(d.script_failed());
}

TEST_CASE("client: a connection-level error with id 0 is the daemon's refusal",
          "[daemon][client]") {
  fake_daemon d([](peer& p) {
    p.write({{"id", 0}, {"error", {{"code", "too_many_connections"}, {"message", "64 clients"}}}});
  });
  reply r;
  auto c = client::connect(opts(d.path()), r);
  CHECK_FALSE(c);
  REQUIRE(r.error);
  CHECK(r.error->code == "too_many_connections");
  CHECK(r.error->id == 0);
}

TEST_CASE("client: the refusal is read even when the daemon closed before our handshake",
          "[daemon][client]") {
  std::atomic<bool> closed{false};
  fake_daemon d([&](peer& p) {
    p.write({{"id", 0}, {"error", {{"code", "too_many_connections"}, {"message", "64 clients"}}}});
    ::close(p.fd);
    p.fd = -1;  // closed here, not by fake_daemon
    closed = true;
  });
  std::error_code ec;
  auto conn = connection::open(d.path(), 5s, ec);
  REQUIRE_FALSE(ec);
  const auto end = client_clock::now() + 10s;
  while (!closed && client_clock::now() < end) std::this_thread::sleep_for(1ms);
  REQUIRE(closed);
  reply r;
  auto c = client::handshake(std::move(conn), opts(d.path()), r);
  CHECK_FALSE(c);
  INFO(r.ec.message());
  REQUIRE(r.error);
  CHECK(r.error->code == "too_many_connections");
}

TEST_CASE("client: stream events interleaved with replies are queued in order",
          "[daemon][client]") {
  fake_daemon d([](peer& p) {
    p.accept_handshake();
    auto q = p.read();
    PEER_EXPECT(q["cmd"] == "stream");
    PEER_EXPECT(q["args"]["types"] == json{"joined", "failed"});
    const auto sid = q["id"];
    p.write({{"id", sid}, {"result", json::object()}});
    const auto ev = [&](const char* type, const char* name) {
      p.write(
          {{"id", sid}, {"event", {{"type", type}, {"member", {{"name", name}}}, {"time_ms", 1}}}});
    };
    ev("joined", "a");
    q = p.read();  // a call while events flow
    PEER_EXPECT(q["cmd"] == "info");
    ev("joined", "b");
    p.write({{"id", q["id"]}, {"result", {{"name", "x"}}}});
    ev("failed", "a");
    q = p.read();
    PEER_EXPECT(q["cmd"] == "stop");
    PEER_EXPECT(q["args"]["stream"] == sid);
    ev("failed", "b");  // before the stop's reply: not delivered after stop
    p.write({{"id", q["id"]}, {"result", json::object()}});
  });
  reply r;
  auto c = client::connect(opts(d.path()), r);
  REQUIRE(c);
  std::uint64_t sid = 0;
  r = c->open_stream({"joined", "failed"}, sid);
  REQUIRE(r.ok());
  CHECK(c->open_streams() == 1);
  r = c->call("info");
  REQUIRE(r.ok());
  CHECK(r.result["name"] == "x");
  stream_message m;
  REQUIRE_FALSE(c->next_event(m, 5s));
  CHECK(m.stream == sid);
  CHECK(m.body["type"] == "joined");
  CHECK(m.body["member"]["name"] == "a");
  REQUIRE_FALSE(c->next_event(m, 5s));
  CHECK(m.body["member"]["name"] == "b");
  REQUIRE_FALSE(c->next_event(m, 5s));
  CHECK(m.body["type"] == "failed");
  CHECK(m.body["member"]["name"] == "a");
  r = c->stop_stream(sid);
  REQUIRE(r.ok());
  CHECK(c->open_streams() == 0);
  CHECK(c->next_event(m, 1s) == client_errc::stream_ended);
  d.join();
  CHECK_FALSE(d.script_failed());
}

TEST_CASE("client: lagged ends the stream", "[daemon][client]") {
  fake_daemon d([](peer& p) {
    p.accept_handshake();
    auto q = p.read();
    p.write({{"id", q["id"]}, {"result", json::object()}});
    p.write({{"id", q["id"]}, {"lagged", {{"dropped", 42}}}});
  });
  reply r;
  auto c = client::connect(opts(d.path()), r);
  REQUIRE(c);
  std::uint64_t sid = 0;
  REQUIRE(c->open_stream({}, sid).ok());
  stream_message m;
  REQUIRE_FALSE(c->next_event(m, 5s));
  CHECK(m.what == stream_message::kind::lagged);
  CHECK(m.body["dropped"] == 42);
  CHECK(c->open_streams() == 0);
}

TEST_CASE("client: a silent, closing or broken daemon is a clear error, never a hang",
          "[daemon][client]") {
  SECTION("silent: timed_out") {
    std::atomic<bool> done{false};
    fake_daemon d([&](peer& p) {
      p.read();  // the handshake, never answered
      while (!done) std::this_thread::sleep_for(10ms);
    });
    reply r;
    const auto t0 = client_clock::now();
    auto c = client::connect(opts(d.path(), 300ms), r);
    CHECK_FALSE(c);
    CHECK(r.ec == client_errc::timed_out);
    CHECK(client_clock::now() - t0 >= 300ms);
    done = true;
  }
  SECTION("closes: connection_closed") {
    fake_daemon d([](peer& p) { p.read(); });
    reply r;
    CHECK_FALSE(client::connect(opts(d.path()), r));
    CHECK(r.ec == client_errc::connection_closed);
  }
  SECTION("closes in the middle of a frame: connection_closed") {
    fake_daemon d([](peer& p) {
      p.read();
      p.write_bytes({0, 0, 0, 10, 0x81});
    });
    reply r;
    CHECK_FALSE(client::connect(opts(d.path()), r));
    CHECK(r.ec == client_errc::connection_closed);
  }
  SECTION("a length over the client's limit: frame_too_large") {
    fake_daemon d([](peer& p) {
      p.read();
      p.write_bytes({0xff, 0xff, 0xff, 0xff, 0x80});
    });
    reply r;
    CHECK_FALSE(client::connect(opts(d.path()), r));
    CHECK(r.ec == client_errc::frame_too_large);
  }
  SECTION("not msgpack, not a map, or a reply with another id: bad_reply") {
    const auto bad = GENERATE(std::vector<std::uint8_t>{0, 0, 0, 1, 0xc1},
                              std::vector<std::uint8_t>{0, 0, 0, 1, 0x90},
                              encode_frame(json{{"id", 99}, {"result", json::object()}}),
                              encode_frame(json{{"id", 1}, {"event", json::object()}}));
    fake_daemon d([&](peer& p) {
      p.read();
      p.write_bytes(bad);
    });
    reply r;
    CHECK_FALSE(client::connect(opts(d.path()), r));
    CHECK(r.ec == client_errc::bad_reply);
  }
  SECTION("another protocol version: handshake_failed") {
    fake_daemon d([](peer& p) {
      const auto h = p.read();
      p.write({{"id", h["id"]}, {"result", {{"version", 2}}}});
    });
    reply r;
    CHECK_FALSE(client::connect(opts(d.path()), r));
    CHECK(r.ec == client_errc::handshake_failed);
  }
}

TEST_CASE("client: json and msgpack convert both ways, bad shapes are refused",
          "[daemon][client]") {
  const json v = {{"a", 1},       {"b", -2}, {"c", "x"}, {"d", {1, 2, 3}}, {"e", {{"f", true}}},
                  {"g", nullptr}, {"h", 1.5}};
  const auto f = encode_frame(v);
  auto oh = msgpack::unpack(reinterpret_cast<const char*>(f.data() + 4), f.size() - 4);
  json back;
  REQUIRE(to_json(oh.get(), back));
  CHECK(back == v);

  // A map with an integer key is not a protocol map.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(1);
  pk.pack_uint32(1);
  pk.pack_uint32(2);
  auto oh2 = msgpack::unpack(buf.data(), buf.size());
  CHECK_FALSE(to_json(oh2.get(), back));

  // Nesting deeper than allowed.
  json deep = 1;
  for (int i = 0; i < 40; ++i) deep = json::array({deep});
  const auto df = encode_frame(deep);
  auto oh3 = msgpack::unpack(reinterpret_cast<const char*>(df.data() + 4), df.size() - 4);
  CHECK_FALSE(to_json(oh3.get(), back));
}
