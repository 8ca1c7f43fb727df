// shoalctl's other subcommands against two real daemons: join, keys on an
// encrypted cluster, force-leave, and its exit codes.
#include <fstream>

#include "daemon_test_util.hpp"

using namespace dtest;

namespace {

std::string status_of(const std::string& socket, const std::string& name) {
  const auto r = ctl(socket, {"member", name, "--format", "json"}, 10s);
  return r.status == 0 ? parse_json(r.out).value("status", "") : "";
}

std::string keygen() {
  const auto r = run({SHOALCTL_BIN, "keygen"});
  REQUIRE(r.status == 0);
  auto k = r.out.substr(0, r.out.find('\n'));
  REQUIRE(k.size() == 44);  // base64 of 32 bytes
  return k;
}

}  // namespace

TEST_CASE("shoalctl: exit codes 0 ok, 1 daemon error, 2 usage, 3 cannot connect", "[daemon][ctl]") {
  scratch_dir dir;
  daemon_proc a(daemon_spec{"a", free_port(), dir.path(), {}, {}});
  REQUIRE(wait_serving(a));
  CHECK(ctl(a.socket(), {"info"}).status == 0);
  const auto nf = ctl(a.socket(), {"member", "nobody"});
  CHECK(nf.status == 1);
  CHECK(nf.err.find("not_found") != std::string::npos);
  CHECK(ctl(a.socket(), {"members", "--format", "yaml"}).status == 2);
  CHECK(ctl(a.socket(), {"frobnicate"}).status == 2);
  CHECK(ctl(a.socket(), {"tags", "set", "novalue"}).status == 2);
  const auto missing = ctl((dir / "none.sock").string(), {"members"});
  CHECK(missing.status == 3);
  CHECK(missing.err.find("no socket at") != std::string::npos);
  // SHOAL_SOCKET is read when --socket is absent.
  setenv("SHOAL_SOCKET", a.socket().c_str(), 1);
  const auto env = run({SHOALCTL_BIN, "info", "--format", "json"});
  unsetenv("SHOAL_SOCKET");
  CHECK(env.status == 0);
  CHECK(parse_json(env.out).value("name", "") == "a");
  const auto v = run({SHOALCTL_BIN, "--version"});
  CHECK(v.status == 0);
  CHECK(v.out.rfind("shoalctl ", 0) == 0);
}

TEST_CASE("shoalctl: join, keys on an encrypted cluster, force-leave", "[daemon][ctl]") {
  scratch_dir dir;
  const auto k1 = keygen(), k2 = keygen();
  REQUIRE(k1 != k2);
  for (const char* n : {"a", "b"})
    std::ofstream(dir / (std::string(n) + ".keys")) << "[\"" << k1 << "\"]";
  daemon_proc a(daemon_spec{"a", free_port(), dir.path(), {}, {"--keyring-file", dir / "a.keys"}});
  daemon_proc b(daemon_spec{"b", free_port(), dir.path(), {}, {"--keyring-file", dir / "b.keys"}});
  REQUIRE(wait_serving(a));
  REQUIRE(wait_serving(b));
  // With a keyring and the field unset, ICMP refusals are not trusted.
  CHECK(wait_until(
      [&] { return a.proc().log().find("refusal_suspicion_timeout=0s") != std::string::npos; },
      10s));

  const auto j = ctl(b.socket(), {"join", a.spec().addr(), "--format", "json"});
  INFO(j.out << j.err);
  REQUIRE(j.status == 0);
  CHECK(parse_json(j.out) == json{{"resolved", 1}, {"contacted", 1}});
  REQUIRE(wait_until([&] { return status_of(a.socket(), "b") == "alive"; }, 30s));
  REQUIRE(wait_until([&] { return status_of(b.socket(), "a") == "alive"; }, 30s));
  CHECK(parse_json(ctl(a.socket(), {"info", "--format", "json"}).out)["encrypted"] == true);

  const auto list = [&] {
    const auto r = ctl(a.socket(), {"keys", "list", "--format", "json"});
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    return parse_json(r.out);
  };
  auto l = list();
  CHECK(l["nodes"] == 2);
  CHECK(l["responded"] == 2);
  CHECK(l["errors"].empty());
  CHECK(l["keys"] == json{{k1, 2}});
  CHECK(l["primary"] == json{{k1, 2}});
  const auto table = ctl(a.socket(), {"keys", "list"});
  CHECK(table.out.find(k1) != std::string::npos);
  CHECK(table.out.find("2/2") != std::string::npos);

  for (const auto& [op, key] : std::vector<std::pair<std::string, std::string>>{
           {"install", k2}, {"use", k2}, {"remove", k1}}) {
    const auto r = ctl(b.socket(), {"keys", op, key});
    INFO(op << ": " << r.out << r.err);
    CHECK(r.status == 0);
  }
  l = list();
  CHECK(l["keys"] == json{{k2, 2}});
  CHECK(l["primary"] == json{{k2, 2}});
  // Every node wrote its keyring file.
  for (const char* n : {"a", "b"}) {
    INFO(n);
    CHECK(wait_until(
        [&] {
          const auto f = read_file(dir / (std::string(n) + ".keys"));
          return f.find(k2) != std::string::npos && f.find(k1) == std::string::npos;
        },
        10s));
  }
  // Removing the primary key fails on every node: exit 1 with each node's reason.
  const auto rm = ctl(a.socket(), {"keys", "remove", k2});
  CHECK(rm.status == 1);
  CHECK(rm.err.find("a:") != std::string::npos);
  CHECK(rm.err.find("b:") != std::string::npos);

  // force-leave: only a failed member, then it is left.
  CHECK(ctl(a.socket(), {"force-leave", "b"}).status == 1);  // not_failed
  b.proc().kill_now();
  REQUIRE(wait_until([&] { return status_of(a.socket(), "b") == "failed"; }, 30s));
  const auto fl = ctl(a.socket(), {"force-leave", "b"});
  INFO(fl.out << fl.err);
  CHECK(fl.status == 0);
  CHECK(wait_until([&] { return status_of(a.socket(), "b") == "left"; }, 10s));
}

TEST_CASE("shoalctl sees what --config sets, flags win, SIGHUP reloads the tags", "[daemon][ctl]") {
  scratch_dir dir;
  const auto conf = dir / "shoald.toml";
  const auto write_conf = [&](const std::string& tags) {
    std::ofstream(conf) << "label = \"green\"\n[tags]\n" << tags;
  };
  write_conf("role = \"db\"\nzone = \"a\"\n");
  daemon_proc d(daemon_spec{"c", free_port(), dir.path(), {}, {"--config", conf.string()}});
  REQUIRE(wait_serving(d));
  // No keyring: the preset's refusal timeout (daemon tests run the local preset or lan).
  CHECK(wait_until(
      [&] {
        return d.proc().log().find("refusal_suspicion_timeout=0s") == std::string::npos &&
               d.proc().log().find("refusal_suspicion_timeout=") != std::string::npos;
      },
      10s));
  auto info = parse_json(ctl(d.socket(), {"info", "--format", "json"}).out);
  CHECK(info["label"] == "green");
  CHECK(info["name"] == "c");  // the flag, over the file's (absent) name
  auto m = parse_json(ctl(d.socket(), {"member", "c", "--format", "json"}).out);
  CHECK(m["tags"] == json{{"role", "db"}, {"zone", "a"}});

  write_conf("role = \"cache\"\n");
  d.proc().signal(SIGHUP);
  CHECK(wait_until(
      [&] {
        const auto r = ctl(d.socket(), {"member", "c", "--format", "json"}, 10s);
        return r.status == 0 && parse_json(r.out)["tags"] == json{{"role", "cache"}};
      },
      20s));
  CHECK(d.proc().running());
}
