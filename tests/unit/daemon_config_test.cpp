// shoald's configuration and persisted files: every field validated with its
// name in the error, atomic writes, corrupt files moved aside.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "config.hpp"
#include "persist.hpp"

using namespace shoal::daemon;
namespace fs = std::filesystem;

namespace {

std::optional<daemon_config> load(std::vector<std::string> args, int& code) {
  args.insert(args.begin(), "shoald");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return load_config(static_cast<int>(args.size()), argv.data(), code);
}

fs::path temp_dir(const char* name) {
  auto d = fs::temp_directory_path() / (std::string("shoal-daemon-test-") + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST_CASE("config: TOML fields apply and unknown fields are named", "[unit][daemon]") {
  daemon_config c;
  REQUIRE_FALSE(apply_toml(c, R"(
name = "a"
bind = "127.0.0.1:7000"
join = ["127.0.0.1:7001", "db.internal:7946"]
socket_mode = "0660"
preset = "local"
leave_timeout = 2.5
stream_backlog = 16
[tags]
role = "web"
)", "t.toml"));
  CHECK(c.name == "a");
  CHECK(c.join.size() == 2);
  CHECK(c.socket_mode == 0660);
  CHECK(c.leave_timeout_s == 2.5);
  CHECK(c.stream_backlog == 16);
  CHECK(c.tags.at("role") == "web");
  CHECK_FALSE(validate(c));

  auto err = apply_toml(c, "nme = \"typo\"\n", "t.toml");
  REQUIRE(err);
  CHECK(err->find("nme") != std::string::npos);
  err = apply_toml(c, "max_connections = \"many\"\n", "t.toml");
  REQUIRE(err);
  CHECK(err->find("max_connections") != std::string::npos);
  err = apply_toml(c, "name = [\n", "t.toml");  // not TOML at all
  REQUIRE(err);
  CHECK(err->find("t.toml:") == 0);
  err = apply_toml(c, "[tags]\nx = 1\n", "t.toml");
  REQUIRE(err);
  CHECK(err->find("tags.x") != std::string::npos);
}

TEST_CASE("config: validation names the offending field", "[unit][daemon]") {
  auto field_of = [](auto mutate) {
    daemon_config c;
    c.name = "n";
    mutate(c);
    auto e = validate(c);
    return e ? e->substr(0, e->find(':')) : std::string();
  };
  CHECK(field_of([](daemon_config&) {}).empty());
  CHECK(field_of([](daemon_config& c) { c.bind = "nope"; }) == "bind");
  CHECK(field_of([](daemon_config& c) { c.advertise = "1.2.3.4"; }) == "advertise");
  CHECK(field_of([](daemon_config& c) { c.join = {"host-without-port"}; }) == "join");
  CHECK(field_of([](daemon_config& c) { c.join = {"h:99999"}; }) == "join");
  CHECK(field_of([](daemon_config& c) { c.preset = "fast"; }) == "preset");
  CHECK(field_of([](daemon_config& c) { c.name = std::string(129, 'x'); }) == "name");
  CHECK(field_of([](daemon_config& c) { c.log_level = "loud"; }) == "log_level");
  CHECK(field_of([](daemon_config& c) { c.max_frame_bytes = 10; }) == "max_frame_bytes");
  CHECK(field_of([](daemon_config& c) { c.stream_backlog = 0; }) == "stream_backlog");
  CHECK(field_of([](daemon_config& c) { c.leave_timeout_s = 0; }) == "leave_timeout");
  CHECK(field_of([](daemon_config& c) { c.tags["k"] = std::string(600, 'v'); }) == "tags");
  CHECK(field_of([](daemon_config& c) { c.socket = std::string(200, 's'); }) == "socket");
}

TEST_CASE("config: flags win over the environment, which wins over the file", "[unit][daemon]") {
  const auto dir = temp_dir("prec");
  const auto file = dir / "c.toml";
  std::ofstream(file) << "name = \"from-file\"\nbind = \"127.0.0.1:7100\"\npreset = \"wan\"\n";
  ::setenv("SHOAL_BIND", "127.0.0.1:7200", 1);
  int code = -1;
  auto c = load({"--config", file.string(), "--preset", "local", "--tag", "a=1", "--tag", "b=x=y"}, code);
  ::unsetenv("SHOAL_BIND");
  REQUIRE(c);
  CHECK(c->name == "from-file");
  CHECK(c->bind == "127.0.0.1:7200");  // env over file
  CHECK(c->preset == "local");         // flag over file
  CHECK(c->tags.at("a") == "1");
  CHECK(c->tags.at("b") == "x=y");

  code = -1;
  CHECK_FALSE(load({"--bind", "x"}, code));
  CHECK(code == 2);
  code = -1;
  CHECK_FALSE(load({"--no-such-flag"}, code));
  CHECK(code == 2);
  code = -1;
  CHECK_FALSE(load({"--tag", "novalue"}, code));
  CHECK(code == 2);
  code = -1;
  CHECK_FALSE(load({"--socket-mode", "999"}, code));
  CHECK(code == 2);
  fs::remove_all(dir);
}

TEST_CASE("persist: state and keyring round-trip, atomically written", "[unit][daemon]") {
  const auto dir = temp_dir("state");
  persisted_state s;
  s.name = "n1";
  s.incarnation = 41;
  s.members = {{"n2", "127.0.0.1:7002"}, {"n3", "[::1]:7003"}};
  const auto path = (dir / "state.json").string();
  REQUIRE(write_file_atomic(path, encode_state(s)).empty());
  CHECK_FALSE(fs::exists(path + ".tmp"));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  persisted_state back;
  std::string msg;
  REQUIRE(load_file(path, 1 << 20, decode_state, back, msg) == load_status::ok);
  CHECK(back.incarnation == 41);
  REQUIRE(back.members.size() == 2);
  CHECK(back.members[1].addr == "[::1]:7003");

  shoal::encryption_key k1{}, k2{};
  for (std::size_t i = 0; i < 32; ++i) {
    k1[i] = static_cast<std::uint8_t>(i);
    k2[i] = static_cast<std::uint8_t>(255 - i);
  }
  std::string err;
  auto keys = decode_keyring(encode_keyring({k1, k2}), err);
  REQUIRE(keys);
  CHECK(*keys == std::vector<shoal::encryption_key>{k1, k2});
  CHECK(base64_decode_key(base64_encode(k1)) == k1);
  CHECK_FALSE(base64_decode_key("c2hvcnQ="));  // 5 bytes
  CHECK_FALSE(base64_decode_key("not base64!"));
  CHECK(load_file((dir / "absent.json").string(), 1 << 20, decode_state, back, msg) == load_status::absent);
  fs::remove_all(dir);
}

TEST_CASE("persist: a corrupt file is reported and moved aside", "[unit][daemon]") {
  const auto dir = temp_dir("corrupt");
  for (const char* text : {"{\"version\": 1, \"incarnation\": -3, \"members\": []}", "\x00\xff garbage", "[]",
                           "{\"version\": 2, \"incarnation\": 1, \"members\": []}"}) {
    const auto path = (dir / "state.json").string();
    std::ofstream(path, std::ios::binary) << text;
    persisted_state back;
    back.incarnation = 7;
    std::string msg;
    CHECK(load_file(path, 1 << 20, decode_state, back, msg) == load_status::corrupt);
    CHECK(back.incarnation == 7);  // untouched
    CHECK(msg.find("moved to") != std::string::npos);
    CHECK_FALSE(fs::exists(path));
    for (const auto& e : fs::directory_iterator(dir)) fs::remove(e.path());
  }
  // Too large to be ours.
  const auto path = (dir / "keyring.json").string();
  std::ofstream(path) << std::string(2000, '[');
  std::vector<shoal::encryption_key> keys;
  std::string msg;
  CHECK(load_file(path, 1000, decode_keyring, keys, msg) == load_status::corrupt);
  CHECK(keys.empty());
  fs::remove_all(dir);
}
