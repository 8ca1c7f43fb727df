// Queries through three shoald on loopback: a tag or name filter reaches
// exactly the matching members, which ack and whose local clients answer
// through `respond`; `shoalctl reachability` names a member that stopped
// answering; bad arguments are refused with the documented codes.
#include <signal.h>

#include <map>
#include <set>
#include <string>
#include <thread>

#include "daemon_test_util.hpp"

using namespace dtest;

namespace {

/// Answers the first `query:NAME` event on `socket` with `answer`; true when
/// it did within `wait`.
bool query_answer_one(const std::string& socket, const std::string& name, const std::string& answer,
                      std::chrono::milliseconds wait, std::atomic<bool>& listening) {
  auto watcher = try_client(socket);
  auto responder = try_client(socket);
  if (!watcher || !responder) return false;
  std::uint64_t sid = 0;
  if (!watcher->open_stream({"query:" + name}, sid).ok()) return false;
  listening = true;
  const auto until = std::chrono::steady_clock::now() + wait;
  while (std::chrono::steady_clock::now() < until) {
    shoal::daemon::stream_message m;
    if (watcher->next_event(m, 100ms)) continue;
    if (m.body.value("type", "") != "query") continue;
    const json payload = json::binary(std::vector<std::uint8_t>(answer.begin(), answer.end()));
    return responder->call("respond", json{{"query", m.body["query"]}, {"payload", payload}}).ok();
  }
  return false;
}

std::string query_text_of(const json& e) {
  if (!e.contains("payload") || !e["payload"].is_binary()) return "";
  const auto& b = e["payload"].get_binary();
  return std::string(b.begin(), b.end());
}

}  // namespace

TEST_CASE("queries: filters pick the members that ack, and their answers come back", "[daemon]") {
  small_cluster c(3, [](std::size_t i) {
    return std::vector<std::string>{"--tag", i == 3 ? "role=db" : "role=web"};
  });

  std::atomic<bool> listening{false};
  bool answered = false;
  std::thread responder(
      [&] { answered = query_answer_one(c[3].socket(), "load", "0.42", 20s, listening); });
  REQUIRE(wait_until([&] { return listening.load(); }, 10s));

  auto asker = try_client(c[1].socket());
  REQUIRE(asker);
  std::multiset<std::string> acks;
  std::map<std::string, std::string> responses;
  const auto r = asker->query(
      json{{"name", "load"}, {"tags", {{"role", "d."}}}, {"timeout_ms", 2000}},
      [&](const json& e) {
        if (e.value("type", "") == "ack") acks.insert(e.value("from", ""));
        if (e.value("type", "") == "response") responses[e.value("from", "")] = query_text_of(e);
      },
      30s);
  responder.join();
  REQUIRE(r.ok());
  CHECK(answered);
  CHECK(acks == std::multiset<std::string>{"n3"});
  CHECK(responses == std::map<std::string, std::string>{{"n3", "0.42"}});
  CHECK(r.result.value("acks", 0) == 1);
  CHECK(r.result.value("responses", 0) == 1);

  // A name filter through shoalctl: n1 and n2 ack, one JSON line each, then the summary.
  const auto q = ctl(c[2].socket(), {"query", "load", "--node", "n[12]", "--query-timeout", "3",
                                     "--format", "json"});
  REQUIRE(q.status == 0);
  std::multiset<std::string> from;
  json done;
  std::istringstream lines(q.out);
  for (std::string line; std::getline(lines, line);) {
    const auto j = parse_json(line);
    REQUIRE(j.is_object());
    if (j.value("type", "") == "ack") from.insert(j.value("from", ""));
    if (j.value("type", "") == "done") done = j;
  }
  CHECK(from == std::multiset<std::string>{"n1", "n2"});
  CHECK(done.value("acks", 0) == 2);
  CHECK(done.value("responses", 0) == 0);

  // --no-ack: nobody acknowledges.
  const auto quiet = ctl(
      c[1].socket(), {"query", "load", "--no-ack", "--query-timeout", "0.5", "--format", "json"});
  REQUIRE(quiet.status == 0);
  CHECK(quiet.out.find("\"ack\"") == std::string::npos);
  CHECK(quiet.out.find("\"acks\":0") != std::string::npos);
}

TEST_CASE("queries: reachability lists a stopped member as not answering", "[daemon]") {
  small_cluster c(3);
  const auto all = ctl(c[1].socket(), {"reachability", "--query-timeout", "3", "--format", "json"});
  REQUIRE(all.status == 0);
  const auto j = parse_json(all.out);
  REQUIRE(j.is_object());
  CHECK(j.value("not_answering", -1) == 0);
  CHECK(j.value("answered", 0) == 3);

  c[2].proc().signal(SIGSTOP);
  const auto some =
      ctl(c[1].socket(), {"reachability", "--query-timeout", "3", "--format", "json"});
  c[2].proc().signal(SIGCONT);
  CHECK(some.status == 1);
  const auto k = parse_json(some.out);
  REQUIRE(k.is_object());
  CHECK(k.value("not_answering", -1) == 1);
  std::map<std::string, bool> answered;
  for (const auto& m : k["members"]) answered[m.value("name", "")] = m.value("answered", false);
  CHECK(answered == std::map<std::string, bool>{{"n1", true}, {"n2", false}, {"n3", true}});
}

TEST_CASE("queries: bad arguments get the documented errors", "[daemon]") {
  lone_daemon solo;
  auto cl = try_client(solo.socket());
  REQUIRE(cl);
  const auto code = [&](const json& args, const char* cmd = "query") {
    const auto r = cl->call(cmd, args);
    return r.error ? r.error->code : std::string(r.ok() ? "ok" : "transport");
  };
  CHECK(code(json::object()) == "bad_request");
  CHECK(code(json{{"name", "_shoal.keys"}}) == "invalid_argument");
  CHECK(code(json{{"name", std::string(129, 'q')}}) == "invalid_argument");
  CHECK(code(json{{"name", "q"}, {"node", "("}}) == "invalid_argument");
  CHECK(code(json{{"name", "q"}, {"node", 5}}) == "bad_request");
  CHECK(code(json{{"name", "q"}, {"tags", {{"", "x"}}}}) == "invalid_argument");
  json many = json::object();
  for (int i = 0; i < 17; ++i) many["t" + std::to_string(i)] = ".*";
  CHECK(code(json{{"name", "q"}, {"tags", many}}) == "invalid_argument");
  CHECK(code(json{{"name", "q"}, {"timeout_ms", 0}}) == "invalid_argument");
  CHECK(code(json{{"name", "q"}, {"timeout_ms", 300001}}) == "invalid_argument");
  CHECK(code(json{{"name", "q"}, {"ack", "yes"}}) == "bad_request");
  CHECK(code(json{{"name", "q"}, {"payload", std::string(600, 'p')}}) == "too_large");
  CHECK(code(json{{"query", 99}}, "respond") == "not_found");
  CHECK(code(json{{"query", "x"}}, "respond") == "bad_request");
  // A good one on a lone daemon: it acks itself.
  const auto r = cl->query(
      json{{"name", "_shoal.ping"}, {"timeout_ms", 200}}, [](const json&) {}, 10s);
  REQUIRE(r.ok());
  CHECK(r.result.value("acks", 0) == 1);
  CHECK(r.result.value("responses", 0) == 1);
}

TEST_CASE("members: pages of `limit` after a name, `next` until the last, clients read them all",
          "[daemon][protocol]") {
  small_cluster c(3);
  auto cl = try_client(c[2].socket());
  REQUIRE(cl);
  std::vector<std::string> names;
  json args{{"limit", 1}};
  for (int page = 0; page < 5; ++page) {
    const auto r = cl->call("members", args);
    REQUIRE(r.ok());
    REQUIRE(r.result["members"].size() == 1);
    names.push_back(r.result["members"][0]["name"]);
    if (!r.result.contains("next")) break;
    CHECK(r.result["next"] == names.back());
    args["after"] = r.result["next"];
  }
  CHECK(names == std::vector<std::string>{"n1", "n2", "n3"});
  const auto all = cl->members(json{{"limit", 2}});
  REQUIRE(all.ok());
  CHECK(all.result["members"].size() == 3);
  CHECK_FALSE(cl->call("members", json{{"after", "n3"}}).result.contains("next"));
  CHECK(cl->call("members", json{{"after", "n3"}}).result["members"].empty());
  CHECK(cl->call("members", json{{"limit", 0}}).error->code == "invalid_argument");
  const auto bad_requests = [&] {
    return cl->call("stats").result["daemon"].value("bad_requests", std::uint64_t{0});
  };
  const auto before = bad_requests();
  CHECK(cl->call("members", json{{"limit", "x"}}).error->code == "bad_request");
  CHECK(cl->call("members", json{{"after", 3}}).error->code == "bad_request");
  CHECK(bad_requests() == before + 2);  // a command's bad arguments count, not only the envelope's
}
