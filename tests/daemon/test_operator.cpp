// Operator settings of shoald: tags set over the socket outlive a SIGHUP and
// a restart (data_dir/tags.json), reconnect_timeout reaps failed members,
// and `force-leave --prune` forgets one at once on every daemon.
#include <signal.h>

#include <map>
#include <string>

#include "daemon_test_util.hpp"

using namespace dtest;

namespace {

std::map<std::string, std::string> op_own_tags(const std::string& socket) {
  const auto r = ctl(socket, {"info", "--format", "json"}, 10s);
  const auto info = parse_json(r.out);
  if (r.status != 0 || !info.is_object()) return {};
  const auto m =
      parse_json(ctl(socket, {"member", info.value("name", ""), "--format", "json"}).out);
  if (!m.is_object() || !m.contains("tags")) return {};
  return m["tags"].get<std::map<std::string, std::string>>();
}

bool op_knows(const std::string& socket, const std::string& name) {
  const auto r = ctl(socket, {"members", "--format", "json"}, 10s);
  const auto j = parse_json(r.out);
  if (r.status != 0 || !j.is_object()) return true;  // cannot say: not "forgotten"
  for (const auto& m : j["members"])
    if (m.value("name", "") == name) return true;
  return false;
}

std::string op_status_of(const std::string& socket, const std::string& name) {
  const auto j = parse_json(ctl(socket, {"member", name, "--format", "json"}, 10s).out);
  return j.is_object() ? j.value("status", "") : "";
}

}  // namespace

TEST_CASE("operator: tags set over the socket survive SIGHUP and restart", "[daemon]") {
  lone_daemon solo({"--tag", "role=web"});
  const std::map<std::string, std::string> web{{"role", "web"}}, db{{"role", "db"}};
  REQUIRE(op_own_tags(solo.socket()) == web);
  REQUIRE(ctl(solo.socket(), {"tags", "set", "role=db"}).status == 0);
  const auto tags_file = solo.d.spec().data_dir() / "tags.json";
  REQUIRE(fs::exists(tags_file));

  solo.d.proc().signal(SIGHUP);  // the flags still say role=web: the socket's tags stay
  REQUIRE(wait_until(
      [&] { return solo.d.proc().log().find("SIGHUP: reloaded") != std::string::npos; }, 10s));
  CHECK(op_own_tags(solo.socket()) == db);

  solo.d.proc().kill_now();
  solo.d.start();
  REQUIRE(wait_serving(solo.d));
  CHECK(op_own_tags(solo.socket()) == db);

  // Without the file, SIGHUP returns to the configured tags.
  fs::remove(tags_file);
  solo.d.proc().signal(SIGHUP);
  CHECK(wait_until([&] { return op_own_tags(solo.socket()) == web; }, 10s));
}

TEST_CASE("operator: a bad tags file is reported and ignored", "[daemon]") {
  scratch_dir dir;
  daemon_spec spec{"solo", free_port(), dir.path(), {}, {"--tag", "role=web"}};
  fs::create_directories(spec.data_dir());
  std::ofstream(spec.data_dir() / "tags.json") << "{\"role\": 5}";
  daemon_proc d(spec);
  REQUIRE(wait_serving(d));
  CHECK(op_own_tags(d.socket()) == std::map<std::string, std::string>{{"role", "web"}});
  CHECK(d.proc().log().find("tags file unusable") != std::string::npos);
}

TEST_CASE("operator: reconnect_timeout reaps a failed member, force-leave --prune at once",
          "[daemon]") {
  CHECK(run({SHOALD_BIN, "--reconnect-timeout", "0.5"}, 10s).status == 2);

  small_cluster c(4, [](std::size_t i) {
    // n4 is reaped after 3 s; the others keep failed members for an hour.
    return std::vector<std::string>{"--reconnect-timeout", i == 1 ? "3" : "3600"};
  });
  c[4].proc().kill_now();
  // n1 reaps n4 by itself; n2 keeps it failed.
  REQUIRE(wait_until([&] { return op_status_of(c[2].socket(), "n4") == "failed"; }, 30s));
  CHECK(wait_until([&] { return !op_knows(c[1].socket(), "n4"); }, 30s));
  CHECK(op_status_of(c[2].socket(), "n4") == "failed");

  // --prune of an alive member is refused; of the failed one forgets it everywhere.
  CHECK(ctl(c[2].socket(), {"force-leave", "n3", "--prune"}).status == 1);
  const auto r = ctl(c[2].socket(), {"force-leave", "n4", "--prune"});
  REQUIRE(r.status == 0);
  CHECK(r.out.find("forgotten") != std::string::npos);
  CHECK_FALSE(op_knows(c[2].socket(), "n4"));
  CHECK(wait_until([&] { return !op_knows(c[3].socket(), "n4"); }, 20s));
  CHECK(op_knows(c[3].socket(), "n3"));
}
