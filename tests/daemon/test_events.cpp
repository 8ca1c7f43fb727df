// User events through three shoald on loopback: `shoalctl event` on one
// daemon reaches the `user` streams of all three exactly once, with the
// stream's name filter applied, Lamport times that grow, and the limits
// refused with a clear error.
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "daemon_test_util.hpp"

using namespace dtest;

namespace {

/// User events a stream got within `wait`, as (name, payload, origin, ltime).
struct got_event {
  std::string name, payload, origin;
  std::uint64_t ltime = 0;
};

std::vector<got_event> drain_user_events(shoal::daemon::client& c, std::chrono::milliseconds wait) {
  std::vector<got_event> out;
  const auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    shoal::daemon::stream_message m;
    const auto ec = c.next_event(m, 100ms);
    if (ec == shoal::daemon::client_errc::timed_out) continue;
    REQUIRE_FALSE(ec);
    if (m.body.value("type", "") != "user") continue;
    got_event g;
    g.name = m.body.value("name", "");
    if (m.body.contains("payload") && m.body["payload"].is_binary()) {
      const auto& b = m.body["payload"].get_binary();
      g.payload.assign(b.begin(), b.end());
    }
    g.origin = m.body.value("origin", "");
    g.ltime = m.body.value("ltime", std::uint64_t{0});
    out.push_back(g);
  }
  return out;
}

std::uint64_t events_counter(const std::string& socket, const char* name) {
  const auto r = ctl(socket, {"stats", "--format", "json"}, 10s);
  const auto j = parse_json(r.out);
  if (r.status != 0 || !j.is_object() || !j.contains("daemon")) return 0;
  return j["daemon"].value(name, std::uint64_t{0});
}

}  // namespace

TEST_CASE("user events: every daemon's user streams get each event once, filtered by name",
          "[daemon]") {
  scratch_dir dir;
  const auto p1 = free_port(), p2 = free_port(), p3 = free_port();
  const std::string seed = "127.0.0.1:" + std::to_string(p1);
  daemon_proc n1(daemon_spec{"n1", p1, dir.path(), {}, {}});
  REQUIRE(wait_serving(n1));
  daemon_proc n2(daemon_spec{"n2", p2, dir.path(), {seed}, {}});
  daemon_proc n3(daemon_spec{"n3", p3, dir.path(), {seed}, {}});
  REQUIRE(wait_serving(n2));
  REQUIRE(wait_serving(n3));
  std::vector<daemon_proc*> all = {&n1, &n2, &n3};
  for (auto* d : all)
    REQUIRE(wait_until(
        [&] {
          const auto r = ctl(d->socket(), {"members", "--status", "alive", "--format", "json"});
          const auto j = parse_json(r.out);
          return r.status == 0 && j.is_object() && j["members"].size() == 3;
        },
        30s));

  // On each daemon: one stream of deploy events only, one of every user event.
  std::vector<shoal::daemon::client> deploy, every;
  for (auto* d : all) {
    auto c1 = try_client(d->socket());
    auto c2 = try_client(d->socket());
    REQUIRE(c1);
    REQUIRE(c2);
    std::uint64_t id = 0;
    REQUIRE(c1->open_stream({"user:deploy"}, id).ok());
    REQUIRE(c2->open_stream({"user", "failed"}, id).ok());
    deploy.push_back(std::move(*c1));
    every.push_back(std::move(*c2));
  }

  const auto sent = ctl(n2.socket(), {"event", "deploy", "v42"});
  INFO(sent.out << sent.err);
  REQUIRE(sent.status == 0);
  REQUIRE(sent.out.find("event deploy sent (ltime 0)") != std::string::npos);
  const auto other = ctl(n3.socket(), {"event", "restart", "--format", "json"});
  INFO(other.out << other.err);
  REQUIRE(other.status == 0);
  const auto other_j = parse_json(other.out);
  REQUIRE(other_j.is_object());

  // Every daemon's counter of delivered events reaches 2, then nothing more.
  for (auto* d : all)
    REQUIRE(
        wait_until([&] { return events_counter(d->socket(), "user_events_delivered") >= 2; }, 30s));
  for (std::size_t i = 0; i < all.size(); ++i) {
    INFO("daemon n" << i + 1);
    const auto d = drain_user_events(deploy[i], 2s);
    REQUIRE(d.size() == 1);
    CHECK(d[0].name == "deploy");
    CHECK(d[0].payload == "v42");
    CHECK(d[0].origin == "n2");
    CHECK(d[0].ltime == 0);
    const auto e = drain_user_events(every[i], 500ms);
    REQUIRE(e.size() == 2);  // deploy and restart, once each
    std::map<std::string, got_event> by_name;
    for (const auto& g : e) by_name[g.name] = g;
    CHECK(by_name.count("deploy") == 1);
    CHECK(by_name.count("restart") == 1);
    CHECK(by_name["restart"].origin == "n3");
    CHECK(by_name["restart"].payload.empty());
    CHECK(events_counter(all[i]->socket(), "user_events_delivered") == 2);
  }

  // Lamport: n2 has seen n3's restart (ltime t) and n2's own deploy: its
  // next event is later than both.
  const auto next = ctl(n2.socket(), {"event", "deploy", "v43", "--format", "json"});
  REQUIRE(next.status == 0);
  const auto next_j = parse_json(next.out);
  REQUIRE(next_j.is_object());
  CHECK(next_j.value("ltime", std::uint64_t{0}) > other_j.value("ltime", std::uint64_t{0}));
  CHECK(next_j.value("ltime", std::uint64_t{0}) >= 1);
  for (std::size_t i = 0; i < all.size(); ++i) {
    INFO("daemon n" << i + 1);
    REQUIRE(wait_until(
        [&] { return events_counter(all[i]->socket(), "user_events_delivered") >= 3; }, 30s));
    const auto d = drain_user_events(deploy[i], 500ms);
    REQUIRE(d.size() == 1);
    CHECK(d[0].payload == "v43");
  }
}

TEST_CASE("user events: bad names and payloads get clear errors and change nothing", "[daemon]") {
  lone_daemon solo;
  const auto empty = ctl(solo.socket(), {"event", ""});
  CHECK(empty.status == 1);
  CHECK(empty.err.find("non-empty") != std::string::npos);
  const auto long_name = ctl(solo.socket(), {"event", std::string(129, 'x')});
  CHECK(long_name.status == 1);
  CHECK(long_name.err.find("128") != std::string::npos);
  const auto big = ctl(solo.socket(), {"event", "deploy", std::string(600, 'p')});
  CHECK(big.status == 1);
  CHECK(big.err.find("over") != std::string::npos);
  CHECK(events_counter(solo.socket(), "user_events_sent") == 0);

  // Over the socket: wrong types are bad_request; an unknown stream type is
  // invalid_argument.
  auto c = try_client(solo.socket());
  REQUIRE(c);
  const auto r1 = c->call("event", json{{"name", 7}});
  REQUIRE(r1.error);
  CHECK(r1.error->code == "bad_request");
  const auto r2 = c->call("event", json{{"name", "a"}, {"payload", json::array()}});
  REQUIRE(r2.error);
  CHECK(r2.error->code == "bad_request");
  std::uint64_t id = 0;
  for (const char* bad : {"users", "user:"}) {
    const auto r = c->open_stream({bad}, id);
    INFO(bad);
    REQUIRE(r.error);
    CHECK(r.error->code == "invalid_argument");
  }
  // The largest event that fits goes through, and the daemon keeps serving.
  const auto ok = c->call("event", json{{"name", "a"}, {"payload", std::string(400, 'p')}});
  CHECK(ok.ok());
  CHECK(events_counter(solo.socket(), "user_events_sent") == 1);
}

TEST_CASE("user events: join --replay delivers the recent events, a plain join does not",
          "[daemon]") {
  small_cluster c(2);
  REQUIRE(ctl(c[1].socket(), {"event", "deploy", "v1"}).status == 0);
  REQUIRE(ctl(c[1].socket(), {"event", "deploy", "v2"}).status == 0);
  REQUIRE(
      wait_until([&] { return events_counter(c[2].socket(), "user_events_delivered") == 2; }, 20s));
  // Until the cluster stopped gossiping them (no broadcast sent by either
  // member for a second): a newcomer can then learn them only by replay.
  const auto broadcasts_out = [&](daemon_proc& d) {
    const auto j = parse_json(ctl(d.socket(), {"stats", "--format", "json"}, 10s).out);
    return j.is_object() ? j["messages"]["out"].value("broadcast", std::uint64_t{0}) : 0;
  };
  REQUIRE(wait_until(
      [&] {
        const auto before = broadcasts_out(c[1]) + broadcasts_out(c[2]);
        std::this_thread::sleep_for(1s);
        return broadcasts_out(c[1]) + broadcasts_out(c[2]) == before;
      },
      30s));
  // Two newcomers, each watching its user events before it joins.
  daemon_proc fresh(daemon_spec{"n3", free_port(), c.dir.path(), {}, {}});
  daemon_proc plain(daemon_spec{"n4", free_port(), c.dir.path(), {}, {}});
  REQUIRE(wait_serving(fresh));
  REQUIRE(wait_serving(plain));
  auto watch3 = try_client(fresh.socket());
  auto watch4 = try_client(plain.socket());
  REQUIRE(watch3);
  REQUIRE(watch4);
  std::uint64_t sid = 0;
  REQUIRE(watch3->open_stream({"user"}, sid).ok());
  REQUIRE(watch4->open_stream({"user"}, sid).ok());
  REQUIRE(ctl(fresh.socket(), {"join", "--replay", c[1].spec().addr()}).status == 0);
  REQUIRE(ctl(plain.socket(), {"join", c[1].spec().addr()}).status == 0);
  const auto got3 = drain_user_events(*watch3, 3s);
  REQUIRE(got3.size() == 2);
  CHECK(got3[0].payload == "v1");  // oldest first
  CHECK(got3[1].payload == "v2");
  CHECK(got3[1].origin == "n1");
  CHECK(events_counter(fresh.socket(), "user_events_replayed") == 2);
  CHECK(drain_user_events(*watch4, 1s).empty());
  // A later event reaches both, once; the newcomer's clock moved past the replayed ones.
  const auto r = ctl(plain.socket(), {"event", "deploy", "v3", "--format", "json"});
  REQUIRE(r.status == 0);
  CHECK(parse_json(r.out).value("ltime", 0) >= 2);
  const auto later = drain_user_events(*watch3, 3s);
  REQUIRE(later.size() == 1);
  CHECK(later[0].payload == "v3");
}

TEST_CASE("user events: a coalescing stream gets the last of a burst, others get every one",
          "[daemon]") {
  lone_daemon solo;
  auto coalescing = try_client(solo.socket());
  auto every = try_client(solo.socket());
  REQUIRE(coalescing);
  REQUIRE(every);
  std::uint64_t sid = 0;
  REQUIRE(coalescing->open_stream({"user"}, sid, false, 3000).ok());
  REQUIRE(every->open_stream({"user"}, sid).ok());
  // Sent through the client library (milliseconds each): the burst fits the window.
  auto sender = try_client(solo.socket());
  REQUIRE(sender);
  const auto bin = [](const std::string& s) {
    return json::binary(std::vector<std::uint8_t>(s.begin(), s.end()));
  };
  for (int i = 1; i <= 5; ++i)
    REQUIRE(sender
                ->call("event", json{{"name", "deploy"},
                                     {"payload", bin("v" + std::to_string(i))},
                                     {"coalesce", true}})
                .ok());
  REQUIRE(sender->call("event", json{{"name", "deploy"}, {"payload", bin("plain")}}).ok());
  const auto got = drain_user_events(*coalescing, 6s);
  REQUIRE(got.size() == 2);
  CHECK(got[0].payload == "plain");  // not sent with --coalesce: at once
  CHECK(got[1].payload == "v5");     // the burst, when its window closed
  CHECK(drain_user_events(*every, 1s).size() == 6);
  CHECK(events_counter(solo.socket(), "user_events_coalesced") == 4);
  // A bad window is refused.
  const auto r = coalescing->call("stream", json{{"coalesce_ms", 3600001}});
  REQUIRE(r.error);
  CHECK(r.error->code == "invalid_argument");
}
