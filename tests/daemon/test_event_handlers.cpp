// Event handlers run by shoald (daemon/handlers.*) end to end: a handler
// script written for Serf runs unchanged through --serf-event-handler for a
// member joining and a user event, and a query handler's output is the
// member's response.
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "daemon_test_util.hpp"

using namespace dtest;

namespace {

fs::path write_script(const fs::path& dir, const std::string& name, const std::string& body) {
  const auto p = dir / name;
  std::ofstream(p) << "#!/bin/sh\n" << body;
  ::chmod(p.c_str(), 0755);
  return p;
}

}  // namespace

TEST_CASE("event handlers: a Serf handler script runs unchanged, a query handler answers",
          "[daemon]") {
  scratch_dir dir;
  const auto out = dir.path() / "serf-handler.out";
  // As Serf's documentation writes handlers: SERF_* variables, one
  // tab-separated line per member on stdin, the payload on stdin.
  const auto serf = write_script(
      dir.path(), "serf-handler.sh",
      "echo \"event=$SERF_EVENT self=$SERF_SELF_NAME role=$SERF_SELF_ROLE\" >> " + out.string() +
          "\n"
          "if [ \"$SERF_EVENT\" = user ]; then\n"
          "  echo \"user=$SERF_USER_EVENT payload=$(cat)\" >> " +
          out.string() +
          "\n  exit 0\nfi\n"
          "while read name address role tags; do\n"
          "  echo \"member=$name address=$address role=$role tags=$tags\" >> " +
          out.string() + "\ndone\n");
  const auto load =
      write_script(dir.path(), "load.sh", "echo \"load of $SHOAL_SELF_NAME: $(cat)\"\n");

  const auto p1 = free_port(), p2 = free_port();
  daemon_proc n1(daemon_spec{
      "n1",
      p1,
      dir.path(),
      {},
      {"--tag", "role=lb", "--serf-event-handler", "member-join,user:deploy=" + serf.string()}});
  REQUIRE(wait_serving(n1));
  daemon_proc n2(
      daemon_spec{"n2",
                  p2,
                  dir.path(),
                  {"127.0.0.1:" + std::to_string(p1)},
                  {"--tag", "role=db", "--event-handler", "query:load=" + load.string()}});
  REQUIRE(wait_serving(n2));
  REQUIRE(wait_until([&] { return alive_count(n1.socket()) == 2; }, 30s));

  // n2's join reaches n1's Serf handler as Serf would give it.
  const std::string n2_line = "member=n2 address=127.0.0.1 role=db tags=role=db";
  REQUIRE(wait_until([&] { return read_file(out).find(n2_line) != std::string::npos; }, 20s));
  CHECK(read_file(out).find("event=member-join self=n1 role=lb") != std::string::npos);

  REQUIRE(ctl(n2.socket(), {"event", "deploy", "v42"}).status == 0);
  REQUIRE(ctl(n2.socket(), {"event", "other", "x"}).status == 0);  // filtered out
  REQUIRE(wait_until(
      [&] { return read_file(out).find("user=deploy payload=v42") != std::string::npos; }, 20s));

  // The query handler's stdout is n2's response.
  const auto q =
      ctl(n1.socket(), {"query", "load", "now", "--query-timeout", "6", "--format", "json"});
  REQUIRE(q.status == 0);
  CHECK(q.out.find("{\"type\":\"response\",\"from\":\"n2\",\"payload\":\"load of n2: now\\n\"}") !=
        std::string::npos);
  const auto stats = parse_json(ctl(n2.socket(), {"stats", "--format", "json"}).out);
  REQUIRE(stats.is_object());
  CHECK(stats["handlers"].value("handler_succeeded", 0) >= 1);
  // n1 has delivered both events (deploy and other): the filter kept `other` out.
  REQUIRE(wait_until(
      [&] {
        const auto j = parse_json(ctl(n1.socket(), {"stats", "--format", "json"}).out);
        return j.is_object() && j["daemon"].value("user_events_delivered", 0) >= 2;
      },
      20s));
  CHECK(read_file(out).find("user=other") == std::string::npos);
}

TEST_CASE("event handlers: bad handler flags and tables are refused at start", "[daemon]") {
  CHECK(run({SHOALD_BIN, "--event-handler", "member-joined=./x.sh"}, 10s).status == 2);
  CHECK(run({SHOALD_BIN, "--event-handler", "user:deploy='unterminated"}, 10s).status == 2);
  scratch_dir dir;
  std::ofstream(dir.path() / "bad.toml") << "[[handler]]\ntypes = [\"user\"]\n";
  const auto r = run({SHOALD_BIN, "--config", (dir.path() / "bad.toml").string()}, 10s);
  CHECK(r.status == 2);
  CHECK(r.err.find("handler[0].program") != std::string::npos);
}
