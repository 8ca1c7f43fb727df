// Three shoald processes on loopback, driven only through shoalctl: the
// view in table and JSON, tags spreading, kill -9 detected as failed, a
// restart from the data dir without --join, SIGTERM seen as left, and a
// monitor started first that sees all of it in order.
#include <algorithm>
#include <map>

#include "daemon_test_util.hpp"

using namespace dtest;

namespace {

/// status of every member in `shoalctl members --format json` on `socket`;
/// empty when the call failed.
std::map<std::string, std::string> statuses(const std::string& socket) {
  std::map<std::string, std::string> out;
  const auto r = ctl(socket, {"members", "--format", "json"}, 10s);
  if (r.status != 0) return out;
  const auto j = parse_json(r.out);
  if (!j.is_object() || !j.contains("members")) return out;
  for (const auto& m : j["members"]) out[m.value("name", "")] = m.value("status", "");
  return out;
}

bool all_are(const std::string& socket, const std::map<std::string, std::string>& want) {
  const auto got = statuses(socket);
  for (const auto& [name, status] : want) {
    const auto it = got.find(name);
    if (it == got.end() || it->second != status) return false;
  }
  return true;
}

std::string view(const std::string& socket) {
  const auto r = ctl(socket, {"members"}, 10s);
  return "status " + std::to_string(r.status) + "\n" + r.out + r.err;
}

/// Rows of a `shoalctl members` table, split on runs of spaces (the header skipped).
std::vector<std::vector<std::string>> table_rows(const std::string& out) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(out);
  std::string line;
  bool header = true;
  while (std::getline(in, line)) {
    if (header) {
      header = false;
      continue;
    }
    std::istringstream ls(line);
    std::vector<std::string> cols;
    std::string c;
    while (ls >> c) cols.push_back(c);
    rows.push_back(cols);
  }
  return rows;
}

struct seen_event {
  std::string type, name;
  json member;
};

std::vector<seen_event> monitor_events(const std::string& out) {
  std::vector<seen_event> ev;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = parse_json(line);
    if (!j.is_object()) continue;
    seen_event e;
    e.type = j.value("type", "");
    e.member = j.value("member", json::object());
    e.name = e.member.value("name", "");
    ev.push_back(std::move(e));
  }
  return ev;
}

/// Index of the first event at or after `from` matching, or npos.
std::size_t find_event(const std::vector<seen_event>& ev, std::size_t from, const std::string& type,
                       const std::string& name,
                       const std::function<bool(const json&)>& extra = nullptr) {
  for (std::size_t i = from; i < ev.size(); ++i)
    if (ev[i].type == type && ev[i].name == name && (!extra || extra(ev[i].member))) return i;
  return std::string::npos;
}

std::string dump_events(const std::vector<seen_event>& ev) {
  std::string s;
  for (const auto& e : ev) s += e.type + " " + e.name + "\n";
  return s;
}

}  // namespace

TEST_CASE("three shoald on loopback through shoalctl: view, tags, failure, restart, leave, monitor",
          "[daemon]") {
  scratch_dir dir;
  const auto p1 = free_port(), p2 = free_port(), p3 = free_port();
  const std::string seed = "127.0.0.1:" + std::to_string(p1);

  daemon_proc n1(daemon_spec{"n1", p1, dir.path(), {}, {}});
  REQUIRE(wait_serving(n1));

  // The monitor starts before anyone joins; the daemon's stream counter says
  // when its stream is open.
  process monitor({SHOALCTL_BIN, "--socket", n1.socket(), "monitor", "--format", "json"},
                  dir / "monitor.err", dir / "monitor.out");
  show_on_failure monitor_err{dir / "monitor.err", "monitor stderr"};
  REQUIRE(wait_until(
      [&] {
        const auto r = ctl(n1.socket(), {"stats", "--format", "json"}, 10s);
        const auto j = parse_json(r.out);
        return r.status == 0 && j.is_object() && j.contains("daemon") &&
               j["daemon"].value("streams", 0) >= 1;
      },
      20s));

  daemon_proc n2(daemon_spec{"n2", p2, dir.path(), {seed}, {}});
  daemon_proc n3(daemon_spec{"n3", p3, dir.path(), {seed}, {}});
  REQUIRE(wait_serving(n2));
  REQUIRE(wait_serving(n3));

  const std::map<std::string, std::string> three_alive = {
      {"n1", "alive"}, {"n2", "alive"}, {"n3", "alive"}};
  for (auto* d : {&n1, &n2, &n3}) {
    INFO(d->spec().name << " sees:\n" << view(d->socket()));
    REQUIRE(wait_until([&] { return all_are(d->socket(), three_alive); }, 30s));
  }

  {  // members in table and json
    const auto t = ctl(n1.socket(), {"members"});
    INFO(t.out << t.err);
    REQUIRE(t.status == 0);
    const auto rows = table_rows(t.out);
    REQUIRE(rows.size() == 3);
    const std::vector<std::string> names = {"n1", "n2", "n3"};
    const std::vector<std::uint16_t> ports = {p1, p2, p3};
    for (std::size_t i = 0; i < 3; ++i) {
      REQUIRE(rows[i].size() >= 3);
      CHECK(rows[i][0] == names[i]);
      CHECK(rows[i][1] == "127.0.0.1:" + std::to_string(ports[i]));
      CHECK(rows[i][2] == "alive");
    }
    // The columns line up: every row has its address where the header has ADDRESS.
    const auto header_end = t.out.find('\n');
    const auto addr_col = t.out.substr(0, header_end).find("ADDRESS");
    std::istringstream in(t.out.substr(header_end + 1));
    std::string line;
    while (std::getline(in, line)) CHECK(line.substr(addr_col, 10) == "127.0.0.1:");

    const auto j = ctl(n2.socket(), {"members", "--format", "json"});
    REQUIRE(j.status == 0);
    const auto doc = parse_json(j.out);
    REQUIRE(doc.is_object());
    REQUIRE(doc["members"].size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      const auto& m = doc["members"][i];
      CHECK(m["name"] == names[i]);
      CHECK(m["addr"] == "127.0.0.1");
      CHECK(m["port"] == ports[i]);
      CHECK(m["status"] == "alive");
      CHECK(m["incarnation"].is_number_unsigned());
      CHECK(m["tags"].is_object());
      CHECK(m["protocol"].is_number_unsigned());
    }
    // Filters reach the daemon: a name regex and a status.
    const auto f =
        ctl(n3.socket(), {"members", "--name", "n[12]", "--status", "alive", "--format", "json"});
    REQUIRE(f.status == 0);
    CHECK(parse_json(f.out)["members"].size() == 2);
  }

  {  // a tag spreads
    const auto r = ctl(n2.socket(), {"tags", "set", "role=web", "--format", "json"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    CHECK(parse_json(r.out)["tags"]["role"] == "web");
    for (auto* d : {&n1, &n3}) {
      INFO(d->spec().name);
      REQUIRE(wait_until(
          [&] {
            const auto m = ctl(d->socket(), {"member", "n2", "--format", "json"}, 10s);
            return m.status == 0 && parse_json(m.out)["tags"].value("role", "") == "web";
          },
          30s));
    }
    const auto t = ctl(n1.socket(), {"members", "--tag", "role=w.b"});
    REQUIRE(t.status == 0);
    const auto rows = table_rows(t.out);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0][0] == "n2");
    CHECK(rows[0].back() == "role=web");
  }

  {  // kill 9 is failed
    // shoald writes what it knows a moment after each change (debounced);
    // a crash before that would lose the members it must rejoin.
    const auto state = n3.spec().data_dir() / "state.json";
    INFO(state << ": " << read_file(state));
    REQUIRE(wait_until(
        [&] {
          const auto s = read_file(state);
          return s.find("\"n1\"") != std::string::npos && s.find("\"n2\"") != std::string::npos;
        },
        20s));
    n3.proc().kill_now();
    for (auto* d : {&n1, &n2}) {
      INFO(d->spec().name << " sees:\n" << view(d->socket()));
      REQUIRE(wait_until([&] { return all_are(d->socket(), {{"n3", "failed"}}); }, 30s));
    }
  }

  {  // restart from data dir without join
    n3.spec().join.clear();
    n3.start();
    REQUIRE(wait_serving(n3));
    for (auto* d : {&n1, &n2, &n3}) {
      INFO(d->spec().name << " sees:\n" << view(d->socket()));
      REQUIRE(wait_until([&] { return all_are(d->socket(), three_alive); }, 30s));
    }
  }

  {  // sigterm is left
    n2.proc().signal(SIGTERM);
    const auto st = n2.proc().wait_exit(30s);
    REQUIRE(st.has_value());
    CHECK(*st == 0);
    for (auto* d : {&n1, &n3}) {
      INFO(d->spec().name << " sees:\n" << view(d->socket()));
      REQUIRE(wait_until([&] { return all_are(d->socket(), {{"n2", "left"}}); }, 30s));
    }
  }

  {  // monitor saw it in order
    std::vector<seen_event> ev;
    std::size_t left = std::string::npos;
    // The left event may still be on its way to the monitor's output.
    wait_until(
        [&] {
          ev = monitor_events(monitor.output());
          left = find_event(ev, 0, "left", "n2");
          return left != std::string::npos;
        },
        10s);
    INFO("monitor saw:\n" << dump_events(ev));
    const auto j2 = find_event(ev, 0, "joined", "n2");
    const auto j3 = find_event(ev, 0, "joined", "n3");
    REQUIRE(j2 != std::string::npos);
    REQUIRE(j3 != std::string::npos);
    const auto upd = find_event(ev, std::max(j2, j3), "updated", "n2", [](const json& m) {
      return m.value("tags", json::object()).value("role", "") == "web";
    });
    REQUIRE(upd != std::string::npos);
    const auto failed = find_event(ev, upd, "failed", "n3");
    REQUIRE(failed != std::string::npos);
    CHECK(ev[failed].member.value("status", "") == "failed");
    const auto back = find_event(ev, failed, "joined", "n3");
    REQUIRE(back != std::string::npos);
    REQUIRE(left != std::string::npos);
    CHECK(left > back);
    CHECK(ev[left].member.value("status", "") == "left");

    monitor.signal(SIGINT);
    const auto st = monitor.wait_exit(10s);
    REQUIRE(st.has_value());
    CHECK(*st == 0);
  }

  n1.proc().signal(SIGTERM);
  n3.proc().signal(SIGTERM);
  CHECK(n1.proc().wait_exit(30s) == std::optional<int>(0));
  CHECK(n3.proc().wait_exit(30s) == std::optional<int>(0));
}
