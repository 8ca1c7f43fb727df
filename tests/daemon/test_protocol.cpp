// PROTOCOL.md clause by clause against a real shoald, through the raw
// framing: what a client in another language would rely on.
#include <set>

#include "daemon_test_util.hpp"

using namespace dtest;
using namespace shoal::daemon;

namespace {

/// A raw connection that has done its handshake.
struct session {
  connection c;
  std::uint64_t next = 1;

  explicit session(const std::string& socket, bool do_handshake = true) {
    std::error_code ec;
    c = connection::open(socket, 5s, ec);
    REQUIRE_FALSE(ec);
    if (do_handshake) REQUIRE(call("handshake", json{{"version", 1}}).contains("result"));
  }
  json read(std::chrono::milliseconds timeout = 10s) {
    json f;
    const auto ec = c.read(f, client_clock::now() + timeout);
    INFO("reading: " << ec.message());
    REQUIRE_FALSE(ec);
    return f;
  }
  void send_frame(const json& v) { REQUIRE_FALSE(c.write_frame(v, client_clock::now() + 10s)); }
  /// Sends a request and returns the reply frame, checking its id and that it
  /// has exactly one of result and error.
  json call(const std::string& cmd, const json& args = nullptr) {
    const auto id = next++;
    REQUIRE_FALSE(c.write(encode_request(id, cmd, args), client_clock::now() + 10s));
    const auto f = read();
    INFO(cmd << " -> " << f.dump());
    CHECK(f["id"] == id);
    CHECK(f.contains("result") != f.contains("error"));
    return f;
  }
  std::string error_code(const std::string& cmd, const json& args = nullptr) {
    const auto f = call(cmd, args);
    return f.contains("error") ? f["error"].value("code", "?") : "(no error)";
  }
};

void check_member_shape(const json& m) {
  INFO(m.dump());
  REQUIRE(m.is_object());
  CHECK(m["name"].is_string());
  CHECK(m["addr"].is_string());
  CHECK(m["port"].is_number_unsigned());
  CHECK(
      std::set<std::string>{"alive", "suspect", "failed", "left"}.contains(m.value("status", "")));
  CHECK(m["incarnation"].is_number_unsigned());
  CHECK(m["tags"].is_object());
  CHECK(m["protocol"].is_number_unsigned());
}

}  // namespace

TEST_CASE("protocol: handshake result, and versions outside min..max", "[daemon][protocol]") {
  lone_daemon d;
  session s(d.socket(), false);
  const auto f = s.call("handshake", json{{"version", 1}});
  REQUIRE(f.contains("result"));
  const auto& r = f["result"];
  CHECK(r["version"] == 1);
  CHECK(r["daemon"].is_string());
  CHECK(r["min_version"].is_number_unsigned());
  CHECK(r["max_version"].is_number_unsigned());
  CHECK(r["min_version"].get<std::uint64_t>() <= 1);
  CHECK(r["max_version"].get<std::uint64_t>() >= 1);
  const auto above = r["max_version"].get<std::uint64_t>() + 1;
  CHECK(s.error_code("handshake", json{{"version", above}}) == "unsupported_version");
  CHECK(s.error_code("handshake", json{{"version", 0}}) == "unsupported_version");
  CHECK(s.error_code("handshake", json::object()) == "bad_request");
  CHECK(s.call("members").contains("result"));  // the first handshake still holds
}

TEST_CASE("protocol: request ids, frames and argument types", "[daemon][protocol]") {
  lone_daemon d;
  session s(d.socket());
  const auto bad_frame = [&](const json& v) {
    s.send_frame(v);
    const auto f = s.read();
    INFO(v.dump() << " -> " << f.dump());
    CHECK(f["id"] == 0);
    CHECK(f["error"]["code"] == "bad_frame");
  };
  bad_frame(json{{"id", 0}, {"cmd", "members"}});   // ids start at 1
  bad_frame(json{{"id", -5}, {"cmd", "members"}});  // not a uint
  bad_frame(json{{"id", "7"}, {"cmd", "members"}});
  bad_frame(json{{"id", (std::uint64_t{1} << 63) + 1}, {"cmd", "members"}});  // over 2^63
  bad_frame(json::array({1, 2}));

  // The largest id is allowed and comes back.
  s.send_frame(json{{"id", std::uint64_t{1} << 63}, {"cmd", "members"}});
  CHECK(s.read()["id"] == std::uint64_t{1} << 63);

  CHECK(s.error_code("members", json::array()) == "bad_request");  // args not a map
  s.send_frame(json{{"id", 77}});                                  // cmd missing
  auto f = s.read();
  CHECK(f["id"] == 77);
  CHECK(f["error"]["code"] == "bad_request");
  s.send_frame(json{{"id", 78}, {"cmd", 5}});
  f = s.read();
  CHECK(f["id"] == 78);
  CHECK(f["error"]["code"] == "bad_request");
  CHECK(s.error_code("members", json{{"status", "alive"}}) == "bad_request");  // not an array
  CHECK(s.error_code("members", json{{"status", {"sleeping"}}}) == "invalid_argument");
  CHECK(s.error_code("member", json{{"name", 5}}) == "bad_request");
  CHECK(s.error_code("stop", json{{"stream", 12345}}) == "not_found");
  CHECK(s.error_code("stream", json{{"types", {"exploded"}}}) == "invalid_argument");

  // Unknown keys are ignored, in the request and in args.
  s.send_frame(json{
      {"id", 90}, {"cmd", "member"}, {"args", {{"name", "solo"}, {"later", 1}}}, {"trace", "x"}});
  f = s.read();
  CHECK(f["id"] == 90);
  CHECK(f["result"]["name"] == "solo");

  // Pipelined requests are answered in order.
  for (std::uint64_t id = 100; id < 110; ++id)
    REQUIRE_FALSE(s.c.write(encode_request(id, id % 2 ? "info" : "members", nullptr),
                            client_clock::now() + 5s));
  for (std::uint64_t id = 100; id < 110; ++id) CHECK(s.read()["id"] == id);
}

TEST_CASE("protocol: every command's result has its documented shape", "[daemon][protocol]") {
  lone_daemon d({"--tag", "role=db", "--label", "blue"});
  session s(d.socket());

  auto f = s.call("members");
  REQUIRE(f.contains("result"));
  REQUIRE(f["result"]["members"].size() == 1);
  check_member_shape(f["result"]["members"][0]);
  CHECK(f["result"]["members"][0]["tags"]["role"] == "db");

  f = s.call("members", json{{"status", {"alive"}}, {"name", "so.o"}, {"tags", {{"role", "d."}}}});
  CHECK(f["result"]["members"].size() == 1);
  f = s.call("members", json{{"name", "sol"}});  // must match the whole name
  CHECK(f["result"]["members"].empty());
  f = s.call("members", json{{"tags", {{"zone", ".*"}}}});  // no such tag: no match
  CHECK(f["result"]["members"].empty());

  f = s.call("member", json{{"name", "solo"}});
  check_member_shape(f["result"]);

  f = s.call("tags", json{{"set", {{"a", "1"}, {"b", "2"}}}, {"unset", {"b", "role"}}});
  CHECK(f["result"]["tags"] == json{{"a", "1"}});
  f = s.call("tags", json{{"set", {{"b", std::string(4000, 'x')}}}});
  CHECK(f["error"]["code"] == "invalid_argument");
  CHECK(s.call("member", json{{"name", "solo"}})["result"]["tags"] == json{{"a", "1"}});

  f = s.call("info");
  const auto& i = f["result"];
  INFO(i.dump());
  CHECK(i["version"].is_string());
  CHECK(i["name"] == "solo");
  CHECK(i["addr"] == "127.0.0.1");
  CHECK(i["port"] == d.d.spec().port);
  CHECK(i["bind"] == d.d.spec().addr());
  CHECK(i["preset"] == "local");
  CHECK(i["health_score"].is_number_integer());
  CHECK(i["digest"].is_string());
  CHECK(i["digest"].get<std::string>().size() == 16);
  CHECK(i["incarnation"].is_number_unsigned());
  CHECK(i["members"] == json{{"alive", 1}, {"suspect", 0}, {"failed", 0}, {"left", 0}});
  CHECK(i["encrypted"] == false);
  CHECK(i["label"] == "blue");
  CHECK(i["uptime_s"].is_number_unsigned());

  f = s.call("stats");
  for (const char* group : {"core", "runtime", "daemon"}) {
    INFO(group);
    REQUIRE(f["result"][group].is_object());
    for (const auto& [k, v] : f["result"][group].items()) CHECK(v.is_number_unsigned());
  }
  for (const char* k :
       {"connections", "connections_rejected", "frames_in", "frames_out", "bad_frames",
        "frames_too_large", "streams", "streams_lagged", "unknown_commands"})
    CHECK(f["result"]["daemon"].contains(k));

  CHECK(s.error_code("keys", json{{"op", "list"}}) == "encryption_disabled");
  CHECK(s.error_code("force-leave", json{{"name", "solo"}}) == "not_failed");
  CHECK(s.error_code("force-leave", json{{"name", "ghost"}}) == "not_found");
}

TEST_CASE("protocol: members filters are RE2 patterns that match the whole value, in bytes",
          "[daemon][protocol]") {
  // "caf\xc3\xa9": "cafe" with an acute e, two bytes in UTF-8.
  lone_daemon d({"--tag", "role=db-1", "--tag", "note=caf\xc3\xa9"});
  session s(d.socket());
  const auto count = [&](const json& args) {
    const auto f = s.call("members", args);
    INFO(args.dump() << " -> " << f.dump());
    REQUIRE(f.contains("result"));
    return f["result"]["members"].size();
  };
  // The whole value, as ^(?:pattern)$: never a search, alternatives included.
  CHECK(count(json{{"name", "solo|other"}}) == 1);
  CHECK(count(json{{"name", "sol|other"}}) == 0);
  CHECK(count(json{{"name", "ol"}}) == 0);
  CHECK(count(json{{"name", "s\\w+"}}) == 1);
  CHECK(count(json{{"name", "(?i)SOLO"}}) == 1);  // RE2 flag syntax
  CHECK(count(json{{"tags", {{"role", "db-\\d"}}}}) == 1);
  CHECK(count(json{{"tags", {{"role", "db"}}}}) == 0);
  // Bytes: the two-byte character is two `.`s.
  CHECK(count(json{{"tags", {{"note", "caf.."}}}}) == 1);
  CHECK(count(json{{"tags", {{"note", "caf."}}}}) == 0);
  CHECK(count(json{{"tags", {{"note", "caf\xc3\xa9"}}}}) == 1);
  CHECK(count(json{{"name", std::string(256, '.')}}) == 0);  // 256 bytes: accepted

  // Not RE2, too long, or too large once compiled: invalid_argument, saying why.
  const auto message = [&](const json& args) {
    const auto f = s.call("members", args);
    INFO(args.dump() << " -> " << f.dump());
    REQUIRE(f.contains("error"));
    CHECK(f["error"]["code"] == "invalid_argument");
    return f["error"].value("message", "");
  };
  CHECK(message(json{{"name", "(unclosed"}}) ==
        "name: bad regular expression: missing ): (unclosed");
  CHECK(message(json{{"tags", {{"role", "x**"}}}}) ==
        "tags: bad regular expression: bad repetition operator: **");
  CHECK(message(json{{"name", "(s)\\1"}}).starts_with("name: bad regular expression: "));
  CHECK(message(json{{"name", "(?=s)solo"}}).starts_with("name: bad regular expression: "));
  CHECK(message(json{{"name", std::string(257, '.')}}) ==
        "name: regular expression longer than 256 bytes");
  std::string huge;
  while (huge.size() + 8 <= 256) huge += "\\w{1000}";
  CHECK(message(json{{"name", huge}}) ==
        "name: bad regular expression: pattern too large - compile failed");
}

TEST_CASE("protocol: streams: reply first, filters, several per connection, stop",
          "[daemon][protocol]") {
  lone_daemon d;
  session s(d.socket());
  const auto open = [&](const json& args) {
    const auto id = s.next;
    REQUIRE(s.call("stream", args)["result"] == json::object());
    return id;
  };
  const auto updated_id = open(json{{"types", {"updated"}}});
  const auto all_id = open(nullptr);  // every type
  const auto joined_id = open(json{{"types", {"joined"}}});

  // Sends a request; returns the streams that got an event before its reply.
  const auto events_until_reply = [&](const std::string& cmd, const json& args,
                                      const std::string& tag_value) {
    const auto id = s.next++;
    REQUIRE_FALSE(s.c.write(encode_request(id, cmd, args), client_clock::now() + 5s));
    std::multiset<std::uint64_t> on;
    for (;;) {
      const auto f = s.read();
      INFO(f.dump());
      if (!f.contains("event")) {
        CHECK(f["id"] == id);
        CHECK(f.contains("result"));
        return on;
      }
      const auto& e = f["event"];
      CHECK(e["type"] == "updated");
      check_member_shape(e["member"]);
      CHECK(e["member"]["tags"]["k"] == tag_value);
      CHECK(e["time_ms"].is_number_unsigned());
      on.insert(f["id"].get<std::uint64_t>());
    }
  };
  // Our own tag change is an `updated` event, on the streams whose filter takes it.
  // (PROTOCOL.md does not say whether the event precedes the reply; read on after it.)
  auto on = events_until_reply("tags", json{{"set", {{"k", "v"}}}}, "v");
  while (on.size() < 2) {
    const auto f = s.read();
    INFO(f.dump());
    REQUIRE(f.contains("event"));
    on.insert(f["id"].get<std::uint64_t>());
  }
  CHECK(on == std::multiset<std::uint64_t>{updated_id, all_id});

  // After stop's reply, no event of that stream.
  REQUIRE(s.call("stop", json{{"stream", updated_id}})["result"] == json::object());
  CHECK(s.error_code("stop", json{{"stream", updated_id}}) == "not_found");
  on = events_until_reply("tags", json{{"set", {{"k", "w"}}}}, "w");
  while (on.empty()) {
    const auto f = s.read();
    REQUIRE(f.contains("event"));
    on.insert(f["id"].get<std::uint64_t>());
  }
  // A last request proves nothing else was queued for the stopped stream.
  on.merge(events_until_reply("members", nullptr, ""));
  CHECK(on == std::multiset<std::uint64_t>{all_id});
  CHECK_FALSE(on.contains(joined_id));
}

TEST_CASE("protocol: too_many_connections (id 0), then closed, others still served",
          "[daemon][protocol]") {
  lone_daemon d({"--max-connections", "2"});
  session a(d.socket()), b(d.socket());
  std::error_code ec;
  auto third = connection::open(d.socket(), 5s, ec);
  REQUIRE_FALSE(ec);
  json f;
  REQUIRE_FALSE(third.read(f, client_clock::now() + 10s));
  CHECK(f["id"] == 0);
  CHECK(f["error"]["code"] == "too_many_connections");
  CHECK(third.read(f, client_clock::now() + 10s) == client_errc::connection_closed);
  CHECK(a.call("members").contains("result"));
  CHECK(b.call("members").contains("result"));
  // A place frees up when a client goes.
  b.c.close();
  CHECK(wait_until([&] { return try_client(d.socket(), 2s).has_value(); }, 10s));
}

TEST_CASE("protocol: a frame that stops arriving is dropped after frame_timeout",
          "[daemon][protocol]") {
  lone_daemon d({"--frame-timeout", "0.5"});
  session s(d.socket());
  auto req = encode_request(9, "members", nullptr);
  req.resize(req.size() - 3);  // the length promises 3 more bytes
  REQUIRE_FALSE(s.c.write(req, client_clock::now() + 5s));
  json f;
  CHECK(s.c.read(f, client_clock::now() + 15s) == client_errc::connection_closed);
  reply r;
  auto c = client::connect(client::options{d.socket(), 5s}, r);
  REQUIRE(c);
  r = c->call("stats");
  REQUIRE(r.ok());
  CHECK(r.result["daemon"]["frames_timed_out"] == 1);
}

TEST_CASE("protocol: leave replies {} then the daemon exits 0 and closes every connection",
          "[daemon][protocol]") {
  lone_daemon d({"--leave-timeout", "2"});
  session watcher(d.socket());
  session s(d.socket());
  const auto f = s.call("leave");
  CHECK(f["result"] == json::object());
  const auto st = d.d.proc().wait_exit(20s);
  REQUIRE(st.has_value());
  CHECK(*st == 0);
  json g;
  CHECK(watcher.c.read(g, client_clock::now() + 10s) == client_errc::connection_closed);
}

TEST_CASE("protocol: a snapshot stream lists the view, then live events, seq without gaps",
          "[daemon][protocol]") {
  lone_daemon d({"--tag", "k=0"});
  session s(d.socket());
  const auto sid = s.next;
  REQUIRE(s.call("stream", json{{"types", {"updated"}}, {"snapshot", true}})["result"] ==
          json::object());
  // The snapshot: every member (here the daemon itself), whatever the types, then its end.
  auto f = s.read();
  INFO(f.dump());
  CHECK(f["id"] == sid);
  CHECK(f["event"]["type"] == "member");
  CHECK(f["event"]["seq"] == 1);
  CHECK(f["event"]["member"]["name"] == "solo");
  check_member_shape(f["event"]["member"]);
  f = s.read();
  CHECK(f["event"]["type"] == "snapshot_end");
  CHECK(f["event"]["members"] == 1);
  CHECK(f["event"]["seq"] == 2);
  // Live events follow with the next numbers, on this stream's own count.
  const auto other = s.next;
  REQUIRE(s.call("stream", json{{"types", {"updated"}}})["result"] == json::object());
  for (int i = 1; i <= 3; ++i) {
    const auto id = s.next++;
    REQUIRE_FALSE(s.c.write(encode_request(id, "tags", json{{"set", {{"k", std::to_string(i)}}}}),
                            client_clock::now() + 5s));
    std::map<std::uint64_t, std::uint64_t> seq_of;
    bool replied = false;
    while (!replied || seq_of.size() < 2) {
      f = s.read();
      INFO(f.dump());
      if (f.contains("result")) {
        replied = true;
        continue;
      }
      REQUIRE(f.contains("event"));
      seq_of[f["id"].get<std::uint64_t>()] = f["event"]["seq"].get<std::uint64_t>();
    }
    CHECK(seq_of[sid] == static_cast<std::uint64_t>(2 + i));
    CHECK(seq_of[other] == static_cast<std::uint64_t>(i));
  }
  // An id still open is refused, not silently given a new filter.
  REQUIRE_FALSE(s.c.write(encode_request(sid, "stream", json{{"types", {"failed"}}}),
                          client_clock::now() + 5s));
  f = s.read();
  CHECK(f["id"] == sid);
  CHECK(f["error"]["code"] == "invalid_argument");
  CHECK(s.error_code("stream", json{{"snapshot", "yes"}}) == "bad_request");
}
