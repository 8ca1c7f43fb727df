// Protocol misuse against a real shoald, one test each, with the treatment
// PROTOCOL.md documents; after each, a second client must still be served.
#include <algorithm>
#include <set>

#include "daemon_test_util.hpp"

using namespace dtest;
using namespace shoal::daemon;

namespace {

connection raw(const std::string& socket) {
  std::error_code ec;
  auto c = connection::open(socket, 5s, ec);
  INFO(ec.message());
  REQUIRE_FALSE(ec);
  return c;
}

json read_frame(connection& c, std::chrono::milliseconds timeout = 10s) {
  json f;
  const auto ec = c.read(f, client_clock::now() + timeout);
  INFO("reading a frame: " << ec.message());
  REQUIRE_FALSE(ec);
  return f;
}

void send(connection& c, const std::vector<std::uint8_t>& bytes) {
  REQUIRE_FALSE(c.write(bytes, client_clock::now() + 10s));
}

/// Another client connects, handshakes and gets the view.
void second_client_is_served(const std::string& socket) {
  reply r;
  auto c = client::connect(client::options{socket, 10s}, r);
  INFO((r.ec ? r.ec.message() : r.error ? r.error->code : std::string()));
  REQUIRE(c);
  r = c->call("members");
  REQUIRE(r.ok());
  REQUIRE(r.result["members"].size() == 1);
  CHECK(r.result["members"][0]["name"] == "solo");
}

void expect_error(const json& f, std::uint64_t id, const std::string& code) {
  INFO(f.dump());
  REQUIRE(f.contains("error"));
  CHECK_FALSE(f.contains("result"));
  CHECK(f["id"] == id);
  CHECK(f["error"]["code"] == code);
  CHECK(f["error"]["message"].is_string());
}

void handshake(connection& c, std::uint64_t id) {
  send(c, encode_request(id, "handshake", json{{"version", protocol_version}}));
  const auto f = read_frame(c);
  INFO(f.dump());
  REQUIRE(f["id"] == id);
  REQUIRE(f["result"]["version"] == protocol_version);
}

/// The daemon closes `c`: end of file, and no frame before it.
void expect_closed_without_reply(connection& c, std::chrono::milliseconds timeout = 15s) {
  json f;
  const auto ec = c.read(f, client_clock::now() + timeout);
  INFO("got " << (ec ? ec.message() : f.dump()));
  CHECK(ec == client_errc::connection_closed);
}

std::uint64_t daemon_counter(const std::string& socket, const std::string& name) {
  reply r;
  auto c = client::connect(client::options{socket, 10s}, r);
  if (!c) return 0;
  r = c->call("stats");
  if (!r.ok() || !r.result.contains("daemon")) return 0;
  return r.result["daemon"].value(name, std::uint64_t{0});
}

}  // namespace

TEST_CASE("misuse: garbage bytes", "[daemon][misuse]") {
  lone_daemon d;
  SECTION("a frame that is not msgpack: bad_frame, id 0, the connection stays") {
    auto c = raw(d.socket());
    send(c, {0, 0, 0, 3, 0xc1, 0xc1, 0xc1});
    expect_error(read_frame(c), 0, "bad_frame");
    send(c, {0, 0, 0, 3, 0x93, 0x01, 0x02});  // an array (and a truncated one)
    expect_error(read_frame(c), 0, "bad_frame");
    send(c, encode_frame(json{{"cmd", "members"}}));  // a map without an id
    expect_error(read_frame(c), 0, "bad_frame");
    handshake(c, 5);
    CHECK(daemon_counter(d.socket(), "bad_frames") >= 3);
  }
  SECTION("text instead of frames: its first bytes are a huge length, frame_too_large and closed") {
    auto c = raw(d.socket());
    const std::string text = "GET /members HTTP/1.1\r\nHost: x\r\n\r\n";
    send(c, std::vector<std::uint8_t>(text.begin(), text.end()));
    expect_error(read_frame(c), 0, "frame_too_large");
    expect_closed_without_reply(c);
  }
  second_client_is_served(d.socket());
}

TEST_CASE("misuse: a truncated frame is dropped without a reply", "[daemon][misuse]") {
  lone_daemon d;
  auto c = raw(d.socket());
  handshake(c, 1);
  // The length says 100 bytes; 10 come.
  auto f = encode_request(2, "members", json{{"name", std::string(100, 'x')}});
  f.resize(14);
  f[0] = 0, f[1] = 0, f[2] = 0, f[3] = 100;
  send(c, f);
  // Meanwhile the daemon serves others...
  second_client_is_served(d.socket());
  // ...and at end of file drops the partial frame and closes, without a reply.
  c.shutdown_write();
  expect_closed_without_reply(c);
  second_client_is_served(d.socket());
}

TEST_CASE("misuse: an oversized frame gets frame_too_large and the connection closes",
          "[daemon][misuse]") {
  lone_daemon d;
  auto c = raw(d.socket());
  handshake(c, 1);
  const std::uint32_t len = 65536 + 1;  // max_frame_bytes + 1
  std::vector<std::uint8_t> f = {
      static_cast<std::uint8_t>(len >> 24), static_cast<std::uint8_t>(len >> 16),
      static_cast<std::uint8_t>(len >> 8), static_cast<std::uint8_t>(len)};
  f.resize(4 + 1000, 0x00);
  send(c, f);
  expect_error(read_frame(c), 0, "frame_too_large");
  expect_closed_without_reply(c);
  CHECK(daemon_counter(d.socket(), "frames_too_large") >= 1);
  second_client_is_served(d.socket());
}

TEST_CASE("misuse: an unknown command gets unknown_command and the connection lives on",
          "[daemon][misuse]") {
  lone_daemon d;
  auto c = raw(d.socket());
  handshake(c, 1);
  send(c, encode_request(2, "frobnicate", json{{"x", 1}}));
  expect_error(read_frame(c), 2, "unknown_command");
  // Bad arguments are replies too.
  send(c, encode_request(3, "member", json::object()));
  expect_error(read_frame(c), 3, "bad_request");
  send(c, encode_request(4, "member", json{{"name", "nobody"}}));
  expect_error(read_frame(c), 4, "not_found");
  send(c, encode_request(5, "members", json{{"name", "(unclosed"}}));
  expect_error(read_frame(c), 5, "invalid_argument");
  send(c, encode_request(6, "members", nullptr));
  const auto ok = read_frame(c);
  CHECK(ok["id"] == 6);
  CHECK(ok["result"]["members"].size() == 1);
  CHECK(daemon_counter(d.socket(), "unknown_commands") >= 1);
  second_client_is_served(d.socket());
}

TEST_CASE("misuse: a command before the handshake gets handshake_required", "[daemon][misuse]") {
  lone_daemon d;
  auto c = raw(d.socket());
  send(c, encode_request(1, "members", nullptr));
  expect_error(read_frame(c), 1, "handshake_required");
  // A version the daemon does not speak: unsupported_version, and the connection stays.
  send(c, encode_request(2, "handshake", json{{"version", 99}}));
  expect_error(read_frame(c), 2, "unsupported_version");
  handshake(c, 3);
  send(c, encode_request(4, "members", nullptr));
  CHECK(read_frame(c)["result"]["members"].size() == 1);
  second_client_is_served(d.socket());
}

TEST_CASE("misuse: a client that never reads its streams gets lagged and is cut off",
          "[daemon][misuse]") {
  // A small backlog; the never-reading client opens as many streams as it may
  // so that each event queues one frame per stream.
  lone_daemon d({"--stream-backlog", "16"});
  reply r;
  auto slow = client::connect(client::options{d.socket(), 10s}, r);
  REQUIRE(slow);
  std::set<std::uint64_t> ids;
  for (int i = 0; i < 16; ++i) {
    std::uint64_t id = 0;
    r = slow->open_stream({}, id);
    INFO("stream " << i << ": " << (r.error ? r.error->code : r.ec.message()));
    REQUIRE(r.ok());
    ids.insert(id);
  }
  // The 17th is refused (max_streams_per_connection 16).
  std::uint64_t extra = 0;
  r = slow->open_stream({}, extra);
  REQUIRE(r.error);
  CHECK(r.error->code == "too_many_streams");

  // Another client changes the local tags until the daemon gives up on the
  // slow one; each change is one `updated` event on every stream.
  auto busy = client::connect(client::options{d.socket(), 10s}, r);
  REQUIRE(busy);
  bool lagged = false;
  const auto end = steady::now() + 60s;
  for (int i = 0; i < 20000 && !lagged && steady::now() < end; ++i) {
    const auto value = std::to_string(i) + std::string(300, 'v');
    r = busy->call("tags", json{{"set", {{"filler", value}}}});
    INFO((r.error ? r.error->code + ": " + r.error->message : r.ec.message()));
    REQUIRE(r.ok());
    if (i % 8 == 7) {
      r = busy->call("stats");
      REQUIRE(r.ok());
      lagged = r.result["daemon"].value("streams_lagged", std::uint64_t{0}) >= 1;
    }
  }
  REQUIRE(lagged);

  // The slow client now reads: whatever was already in its socket, then one
  // lagged frame per stream, then end of file.
  std::set<std::uint64_t> lagged_ids;
  std::size_t events = 0;
  std::error_code ec;
  const auto deadline = client_clock::now() + 20s;
  for (;;) {
    json f;
    ec = slow->conn().read(f, deadline);
    if (ec) break;
    INFO(f.dump());
    REQUIRE(f["id"].is_number_unsigned());
    CHECK(ids.contains(f["id"].get<std::uint64_t>()));
    if (f.contains("lagged")) {
      CHECK(f["lagged"]["dropped"].is_number_unsigned());
      lagged_ids.insert(f["id"].get<std::uint64_t>());
    } else {
      REQUIRE(f.contains("event"));
      CHECK(lagged_ids.empty());  // nothing after the lagged frames but other lagged frames
      ++events;
    }
  }
  INFO("events before the cut: " << events);
  CHECK(ec == client_errc::connection_closed);
  CHECK(lagged_ids == ids);

  // The busy client was served throughout and still is.
  r = busy->call("members");
  REQUIRE(r.ok());
  second_client_is_served(d.socket());
}

TEST_CASE("misuse: a client that pipelines without reading gets a lagged error (id 0), then EOF",
          "[daemon][misuse]") {
  lone_daemon d({"--stream-backlog", "16"});
  std::error_code ec;
  auto c = connection::open(d.socket(), 5s, ec);
  REQUIRE_FALSE(ec);
  REQUIRE_FALSE(
      c.write(encode_request(1, "handshake", json{{"version", 1}}), client_clock::now() + 5s));
  // Thousands of requests, no reads: replies fill the socket, then the backlog.
  std::vector<std::uint8_t> burst;
  for (std::uint64_t id = 2; id < 6000; ++id) {
    const auto f = encode_request(id, "info", nullptr);
    burst.insert(burst.end(), f.begin(), f.end());
  }
  (void)c.write(burst, client_clock::now() + 20s);  // may fail once the daemon closes
  bool lagged = false;
  std::uint64_t last_id = 0;
  for (;;) {
    json f;
    if (c.read(f, client_clock::now() + 20s)) break;  // end of file (or timeout: checked below)
    if (f.contains("error") && f["id"] == 0) {
      CHECK(f["error"]["code"] == "lagged");
      lagged = true;
      continue;
    }
    CHECK_FALSE(lagged);  // nothing after the lagged error
    last_id = f["id"].get<std::uint64_t>();
  }
  CHECK(lagged);
  CHECK(last_id < 5999);
  // The daemon serves others.
  CHECK(ctl(d.socket(), {"info"}).status == 0);
}
