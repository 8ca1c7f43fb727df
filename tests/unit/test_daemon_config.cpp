// shoald's configuration and persisted files: every field validated with its
// name in the error, atomic writes, corrupt files moved aside; and the
// patterns of its filters (matcher.hpp).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include <shoal/node.hpp>

#include "config.hpp"
#include "matcher.hpp"
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
  auto d = fs::temp_directory_path() /
           (std::string("shoal-daemon-test-") + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

/// The field validate() names for a config named "n" changed by `mutate`; "" when valid.
template <class F>
std::string field_of(F mutate) {
  daemon_config c;
  c.name = "n";
  mutate(c);
  auto e = validate(c);
  return e ? e->substr(0, e->find(':')) : std::string();
}

/// The seven protocol limits shoald configures are equal in both.
void same_limits(const shoal::node_config& got, const shoal::node_config& want) {
  CHECK(got.protocol.max_name_length == want.protocol.max_name_length);
  CHECK(got.protocol.max_tag_bytes == want.protocol.max_tag_bytes);
  CHECK(got.protocol.max_members == want.protocol.max_members);
  CHECK(got.protocol.max_push_pull_bytes == want.protocol.max_push_pull_bytes);
  CHECK(got.protocol.udp_buffer_size == want.protocol.udp_buffer_size);
  CHECK(got.max_tcp_sessions == want.max_tcp_sessions);
  CHECK(got.max_packets_per_source_per_second == want.max_packets_per_source_per_second);
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
)",
                           "t.toml"));
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

// Found by fuzz_config (tests/fuzz/corpus/config/regress-float-count): a float
// where a count belongs was converted to an integer, undefined behaviour when
// out of range (UBSan reports it in the sanitizer build). Counts take integers
// only, and the error names the field.
TEST_CASE("config: a count given as a float is refused, however large", "[unit][daemon]") {
  for (const char* text :
       {"udp_buffer_size = 1111111111111111111111111111111111111119e6\n",
        "max_connections = 1e91\n", "stream_backlog = 16.0\n", "max_members = -1e300\n",
        "max_frame_bytes = inf\n", "max_tcp_sessions = nan\n"}) {
    CAPTURE(text);
    daemon_config c;
    const auto err = apply_toml(c, text, "t.toml");
    REQUIRE(err);
    const std::string key(text, std::string_view(text).find(' '));
    CHECK(err->find(key) != std::string::npos);
    CHECK(err->find("integer") != std::string::npos);
  }
}

TEST_CASE("config: validation names the offending field", "[unit][daemon]") {
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
  auto c = load({"--config", file.string(), "--preset", "local", "--tag", "a=1", "--tag", "b=x=y"},
                code);
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

TEST_CASE("config: protocol limits from TOML, environment and flags, unset keeps the preset's",
          "[unit][daemon][limits]") {
  daemon_config c;
  c.name = "n";
  for (const char* preset : {"lan", "wan", "local"}) {
    c.preset = preset;
    const auto want = *shoal::node_config::preset(preset);
    const auto got = node_config_of(c);
    same_limits(got, want);
    CHECK(got.protocol.probe_interval == want.protocol.probe_interval);  // the preset still decides
  }

  REQUIRE_FALSE(apply_toml(c, R"(
preset = "wan"
max_name_length = 64
max_tag_bytes = 1024
max_members = 300
max_push_pull_bytes = 8192
udp_buffer_size = 1500
max_tcp_sessions = 3
max_packets_per_source_per_second = 0
)",
                           "t.toml"));
  CHECK(c.max_name_length == 64u);
  CHECK(c.max_packets_per_source_per_second == 0u);
  REQUIRE_FALSE(validate(c));
  const auto nc = node_config_of(c);
  CHECK(nc.protocol.max_name_length == 64);
  CHECK(nc.protocol.max_tag_bytes == 1024);
  CHECK(nc.protocol.max_members == 300);
  CHECK(nc.protocol.max_push_pull_bytes == 8192);
  CHECK(nc.protocol.udp_buffer_size == 1500);
  CHECK(nc.max_tcp_sessions == 3);
  CHECK(nc.max_packets_per_source_per_second == 0);  // 0: no limit, as node_config means it
  CHECK(nc.protocol.probe_interval == shoal::config::wan().probe_interval);

  auto err = apply_toml(c, "max_members = -1\n", "t.toml");
  REQUIRE(err);
  CHECK(err->find("max_members") != std::string::npos);
  err = apply_toml(c, "udp_buffer_size = \"big\"\n", "t.toml");
  REQUIRE(err);
  CHECK(err->find("udp_buffer_size") != std::string::npos);

  // File < environment < flags, each field on its own.
  const auto dir = temp_dir("limits");
  const auto file = dir / "c.toml";
  std::ofstream(file)
      << "name = \"n\"\nmax_members = 100\nmax_tcp_sessions = 5\nudp_buffer_size = 1000\n";
  ::setenv("SHOAL_MAX_MEMBERS", "200", 1);
  ::setenv("SHOAL_MAX_PACKETS_PER_SOURCE_PER_SECOND", "50", 1);
  ::setenv("SHOAL_MAX_TAG_BYTES", "300", 1);
  int code = -1;
  auto l = load({"--config", file.string(), "--max-tag-bytes", "100", "--max-name-length", "32",
                 "--max-push-pull-bytes", "65536"},
                code);
  ::unsetenv("SHOAL_MAX_MEMBERS");
  ::unsetenv("SHOAL_MAX_PACKETS_PER_SOURCE_PER_SECOND");
  ::unsetenv("SHOAL_MAX_TAG_BYTES");
  REQUIRE(l);
  CHECK(l->max_members == 200u);                       // env over file
  CHECK(l->max_tcp_sessions == 5u);                    // file
  CHECK(l->udp_buffer_size == 1000u);                  // file
  CHECK(l->max_packets_per_source_per_second == 50u);  // env
  CHECK(l->max_tag_bytes == 100u);                     // flag over env
  CHECK(l->max_name_length == 32u);                    // flag
  CHECK(l->max_push_pull_bytes == 65536u);             // flag
  const auto lnc = node_config_of(*l);
  CHECK(lnc.protocol.max_members == 200);
  CHECK(lnc.max_packets_per_source_per_second == 50);
  fs::remove_all(dir);

  code = -1;
  CHECK_FALSE(load({"--name", "n", "--max-members", "1"}, code));
  CHECK(code == 2);
  code = -1;
  CHECK_FALSE(load({"--name", "n", "--max-tcp-sessions", "-3"}, code));
  CHECK(code == 2);
  code = -1;
  CHECK_FALSE(load({"--name", "n", "--udp-buffer-size", "many"}, code));
  CHECK(code == 2);
}

TEST_CASE("config: out-of-range protocol limits are refused, naming the field",
          "[unit][daemon][limits]") {
  // Each range, just inside and just outside.
  struct range {
    const char* field;
    std::optional<std::size_t> daemon_config::*member;
    std::size_t min, max;
  };
  const range ranges[] = {
      {"max_name_length", &daemon_config::max_name_length, 1, 1024},
      {"max_tag_bytes", &daemon_config::max_tag_bytes, 0, 64000},
      {"max_members", &daemon_config::max_members, 2, 1u << 20},
      {"max_push_pull_bytes", &daemon_config::max_push_pull_bytes, 4096, 256u << 20},
      {"udp_buffer_size", &daemon_config::udp_buffer_size, 576, 65000},
      {"max_tcp_sessions", &daemon_config::max_tcp_sessions, 1, 4096},
      {"max_packets_per_source_per_second", &daemon_config::max_packets_per_source_per_second, 0,
       1'000'000},
  };
  // An alive message must fit a packet at every extreme: the largest packet,
  // small tags (the field under test overrides either).
  auto roomy = [](daemon_config& c) {
    c.udp_buffer_size = 65000;
    c.max_tag_bytes = 100;
  };
  for (const auto& r : ranges) {
    INFO(r.field);
    CHECK(field_of([&](daemon_config& c) {
            roomy(c);
            c.*r.member = r.min;
          }).empty());
    CHECK(field_of([&](daemon_config& c) {
            roomy(c);
            c.*r.member = r.max;
          }).empty());
    if (r.min > 0)
      CHECK(field_of([&](daemon_config& c) {
              roomy(c);
              c.*r.member = r.min - 1;
            }) == r.field);
    CHECK(field_of([&](daemon_config& c) {
            roomy(c);
            c.*r.member = r.max + 1;
          }) == r.field);
  }
  auto e = validate([] {
    daemon_config c;
    c.name = "n";
    c.max_members = 1;
    return c;
  }());
  REQUIRE(e);
  CHECK(e->find("2..1048576") != std::string::npos);  // says what it accepts

  // An alive message (name, tags, header) must fit udp_buffer_size: the field
  // the operator set is blamed.
  CHECK(field_of([](daemon_config& c) { c.udp_buffer_size = 700; }) ==
        "udp_buffer_size");  // 512 + 128 + 128
  CHECK(field_of([](daemon_config& c) { c.udp_buffer_size = 768; }).empty());
  CHECK(field_of([](daemon_config& c) { c.max_tag_bytes = 1200; }) == "max_tag_bytes");
  CHECK(field_of([](daemon_config& c) { c.max_name_length = 800; }) == "max_name_length");
  CHECK(field_of([](daemon_config& c) {
          c.max_tag_bytes = 100;
          c.udp_buffer_size = 600;
        }).empty());

  // The name and the tags are held to the configured limits, not the defaults.
  CHECK(field_of([](daemon_config& c) {
          c.max_name_length = 4;
          c.name = "abcde";
        }) == "name");
  CHECK(field_of([](daemon_config& c) {
          c.max_name_length = 4;
          c.name = "abcd";
        }).empty());
  CHECK(field_of([](daemon_config& c) { c.name = std::string(200, 'x'); }) == "name");
  CHECK(field_of([](daemon_config& c) {
          c.max_name_length = 200;
          c.name = std::string(200, 'x');
        }).empty());
  CHECK(field_of([](daemon_config& c) {
          c.max_tag_bytes = 10;
          c.tags["k"] = "0123456789";
        }) == "tags");
  CHECK(field_of([](daemon_config& c) {
          c.max_tag_bytes = 0;
          c.tags["k"] = "";
        }) == "tags");
  CHECK(field_of([](daemon_config& c) {
          c.max_tag_bytes = 2000;
          c.udp_buffer_size = 2400;
          c.tags["k"] = std::string(1500, 'v');
        }).empty());
}

TEST_CASE("config: whatever shoald accepts, shoal::node accepts too", "[unit][daemon][limits]") {
  // The extremes of every range, alone and together, and the tightest packet.
  std::vector<daemon_config> accepted;
  auto add = [&](auto mutate) {
    daemon_config c;
    c.name = "n";
    c.bind = "127.0.0.1:0";
    mutate(c);
    INFO("config " << accepted.size());
    REQUIRE_FALSE(validate(c));
    accepted.push_back(c);
  };
  add([](daemon_config&) {});
  add([](daemon_config& c) {
    c.max_name_length = 1;
    c.max_tag_bytes = 0;
    c.max_members = 2;
    c.max_push_pull_bytes = 4096;
    c.udp_buffer_size = 576;
    c.max_tcp_sessions = 1;
    c.max_packets_per_source_per_second = 0;
    c.tags.clear();
  });
  add([](daemon_config& c) {
    c.max_name_length = 1024;
    c.max_tag_bytes = 65000 - 1024 - 128;
    c.max_members = 1u << 20;
    c.max_push_pull_bytes = 256u << 20;
    c.udp_buffer_size = 65000;
    c.max_tcp_sessions = 4096;
    c.max_packets_per_source_per_second = 1'000'000;
    c.name = std::string(1024, 'n');
  });
  add([](daemon_config& c) {
    c.max_tag_bytes = 200;
    c.max_name_length = 248;
    c.udp_buffer_size = 576;  // exactly full
    c.name = std::string(248, 'n');
    c.tags["k"] = std::string(183, 'v');  // 1 + 183 + 16 per tag = 200
  });
  for (const auto& c : accepted) {
    INFO("name length " << c.name.size());
    CHECK_NOTHROW(shoal::node(node_config_of(c)));
  }
}

TEST_CASE("config: shoald.example.toml parses, and each commented field is valid and a default",
          "[unit][daemon][limits]") {
  std::ifstream in(SHOALD_EXAMPLE_TOML);
  REQUIRE(in);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto parse = [&](std::size_t uncomment, daemon_config& c) {
    std::string text;
    for (std::size_t i = 0; i < lines.size(); ++i)
      text += (i == uncomment ? lines[i].substr(2) : lines[i]) + "\n";
    c.name = "n";
    return apply_toml(c, text, "shoald.example.toml");
  };
  daemon_config plain;
  REQUIRE_FALSE(parse(lines.size(), plain));
  REQUIRE_FALSE(validate(plain));
  const auto defaults = node_config_of(plain);
  // Each "# key = value" uncommented where it stands, as an operator would.
  int fields = 0, limits = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.rfind("# ", 0) != 0 || line.find(" = ") == std::string::npos) continue;
    const std::string key = line.substr(2, line.find(' ', 2) - 2);
    if (key.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") != std::string::npos)
      continue;  // prose
    INFO(line);
    daemon_config c;
    REQUIRE_FALSE(parse(i, c));
    CHECK_FALSE(validate(c));
    ++fields;
    if (key == "role") CHECK(c.tags.at("role") == "web");
    static const std::set<std::string> protocol_limits = {"max_name_length",
                                                          "max_tag_bytes",
                                                          "max_members",
                                                          "max_push_pull_bytes",
                                                          "udp_buffer_size",
                                                          "max_tcp_sessions",
                                                          "max_packets_per_source_per_second"};
    if (!protocol_limits.count(key)) continue;
    ++limits;
    const auto nc = node_config_of(c);
    same_limits(nc, defaults);
  }
  CHECK(fields >= 20);
  CHECK(limits == 7);  // every protocol limit is documented with its default
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
  CHECK(load_file((dir / "absent.json").string(), 1 << 20, decode_state, back, msg) ==
        load_status::absent);
  fs::remove_all(dir);
}

TEST_CASE("persist: base64 keys are read as shoald always read them", "[unit][daemon]") {
  shoal::encryption_key k1{}, k2{};
  for (std::size_t i = 0; i < 32; ++i) {
    k1[i] = static_cast<std::uint8_t>(i);
    k2[i] = static_cast<std::uint8_t>(255 - i);
  }
  // Standard alphabet, padded (what `base64` and Python's b64encode print).
  const std::string b1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  const std::string b2 = "//79/Pv6+fj39vX08/Lx8O/u7ezr6uno5+bl5OPi4eA=";
  CHECK(base64_encode(k1) == b1);
  CHECK(base64_encode(k2) == b2);

  // Accepted: the padding is optional, and any number of '=' may end it.
  const std::string bare = b2.substr(0, 43);
  for (const std::string& text : {b2, bare, bare + "==", bare + "====="}) {
    INFO(text);
    CHECK(base64_decode_key(text) == k2);
  }
  // The 43rd character carries the last 4 bits and 2 unused ones, which are
  // not checked: '8' (60) and '9' (61) differ only there.
  std::string loose = b1;
  REQUIRE(loose[42] == '8');
  loose[42] = '9';
  CHECK(base64_decode_key(loose) == k1);

  // Refused: whitespace and line ends anywhere, other alphabets, '=' inside,
  // other lengths.
  for (const std::string& text :
       {" " + b2, b2 + "\n", b2 + " ", bare + "\r\n", bare.substr(0, 20) + " " + bare.substr(20),
        bare.substr(0, 20) + "\n" + bare.substr(20), std::string("-_79") + bare.substr(4),
        "=" + bare, bare.substr(0, 21) + "=" + bare.substr(21), bare + "A", bare + "A=",
        bare.substr(0, 42), bare.substr(0, 42) + "=", b2 + b2, std::string(), std::string("===")}) {
    INFO("'" << text << "'");
    CHECK_FALSE(base64_decode_key(text));
  }
}

TEST_CASE("persist: a corrupt file is reported and moved aside", "[unit][daemon]") {
  const auto dir = temp_dir("corrupt");
  for (const char* text :
       {"{\"version\": 1, \"incarnation\": -3, \"members\": []}", "\x00\xff garbage", "[]",
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

TEST_CASE("config: refusal_suspicion_timeout in seconds, checked, unset keeps the preset",
          "[unit][daemon]") {
  daemon_config c;
  c.name = "n";
  CHECK(node_config_of(c).protocol.refusal_suspicion_timeout ==
        shoal::config::lan().refusal_suspicion_timeout);
  c.preset = "wan";
  CHECK(node_config_of(c).protocol.refusal_suspicion_timeout ==
        shoal::config::wan().refusal_suspicion_timeout);
  REQUIRE_FALSE(apply_toml(c, "refusal_suspicion_timeout = 0.5\n", "t"));
  CHECK_FALSE(validate(c));
  CHECK(node_config_of(c).protocol.refusal_suspicion_timeout == std::chrono::milliseconds(500));
  REQUIRE_FALSE(apply_toml(c, "refusal_suspicion_timeout = 0\n", "t"));
  CHECK(node_config_of(c).protocol.refusal_suspicion_timeout == shoal::duration::zero());
  const auto e = apply_toml(c, "refusal_suspicion_timeout = \"2s\"\n", "t");
  REQUIRE(e);
  CHECK(e->find("refusal_suspicion_timeout") != std::string::npos);
  CHECK(field_of([](daemon_config& d) { d.refusal_suspicion_timeout_s = -1.0; }) ==
        "refusal_suspicion_timeout");
  CHECK(field_of([](daemon_config& d) { d.refusal_suspicion_timeout_s = 3601.0; }) ==
        "refusal_suspicion_timeout");
  CHECK(field_of([](daemon_config& d) { d.refusal_suspicion_timeout_s = std::nan(""); }) ==
        "refusal_suspicion_timeout");
  CHECK(field_of([](daemon_config& d) { d.refusal_suspicion_timeout_s = 3600.0; }).empty());
}

TEST_CASE("matcher: RE2 on the whole value, byte by byte, bounded", "[unit][daemon]") {
  std::string err;
  const auto m = [&](std::string_view pattern) {
    auto r = matcher::compile(pattern, err);
    INFO(pattern << ": " << err);
    REQUIRE(r);
    return std::move(*r);
  };
  // The whole value, never a search; alternatives are anchored together.
  CHECK(m("db-[0-9]+").matches("db-12"));
  CHECK_FALSE(m("db-[0-9]+").matches("db-12x"));
  CHECK_FALSE(m("db").matches("xdb"));
  CHECK(m("a|b").matches("b"));
  CHECK_FALSE(m("a|b").matches("ab"));
  CHECK(m("").matches(""));
  CHECK_FALSE(m("").matches("a"));
  // Bytes: '.' is any byte but '\n', valid UTF-8 or not.
  CHECK(m(".*").matches(std::string("\xff\x00\xc3", 3)));
  CHECK_FALSE(m(".*").matches("a\nb"));
  CHECK(m("(?s).*").matches("a\nb"));
  CHECK(m("caf..").matches("caf\xc3\xa9"));
  CHECK(m("(?i)DB").matches("db"));
  // Linear time: the classic exponential case for a backtracking engine.
  CHECK_FALSE(m("(a|aa)*b").matches(std::string(5000, 'a')));

  CHECK_FALSE(matcher::compile(std::string(257, 'a'), err));
  CHECK(err == "regular expression longer than 256 bytes");
  CHECK(matcher::compile(std::string(256, 'a'), err));
  CHECK_FALSE(matcher::compile("(a)\\1", err));
  CHECK(err.starts_with("bad regular expression: "));
  std::string huge;
  while (huge.size() + 8 <= matcher::max_pattern_bytes) huge += "\\w{1000}";
  CHECK_FALSE(matcher::compile(huge, err));
  CHECK(err == "bad regular expression: pattern too large - compile failed");
}

TEST_CASE("config: [[handler]] tables and reconnect_timeout", "[unit][daemon]") {
  daemon_config c;
  c.name = "n";
  REQUIRE_FALSE(apply_toml(c,
                           "reconnect_timeout = 600\n"
                           "[[handler]]\n"
                           "types = [\"member-join\", \"user:deploy\"]\n"
                           "program = \"/bin/echo a=b\"\n"
                           "serf_compat = true\n"
                           "timeout = 2.5\n"
                           "queue = 3\n"
                           "coalesce = 2\n"
                           "[[handler]]\n"
                           "program = \"/bin/true\"\n",
                           "t.toml"));
  REQUIRE_FALSE(validate(c));
  REQUIRE(c.handlers.size() == 2);
  CHECK(c.handlers[0].filters == std::vector<std::string>{"member-join", "user:deploy"});
  CHECK(c.handlers[0].program == "/bin/echo a=b");
  CHECK(c.handlers[0].serf_compat);
  CHECK(c.handlers[0].timeout == std::chrono::milliseconds(2500));
  CHECK(c.handlers[0].queue_limit == 3);
  CHECK(c.handlers[0].coalesce == std::chrono::milliseconds(2000));
  CHECK(c.handlers[1].coalesce == std::chrono::milliseconds(0));
  CHECK(c.handlers[1].wants("member-failed", ""));
  CHECK(c.handlers[1].timeout == std::chrono::milliseconds(30000));
  CHECK(node_config_of(c).protocol.reconnect_timeout == std::chrono::seconds(600));

  const auto error_of = [](const std::string& toml) {
    daemon_config d;
    d.name = "n";
    if (auto e = apply_toml(d, toml, "t.toml")) return *e;
    if (auto e = validate(d)) return *e;
    return std::string();
  };
  CHECK(error_of("[[handler]]\ntypes = [\"user\"]\n").find("handler[0].program") !=
        std::string::npos);
  CHECK(error_of("[[handler]]\nprogram = \"x\"\ncolour = 1\n").find("handler[0].colour") !=
        std::string::npos);
  CHECK(error_of("[[handler]]\nprogram = \"x\"\ntypes = [\"member-joined\"]\n")
            .find("member-joined") != std::string::npos);
  CHECK(error_of("[[handler]]\nprogram = \"x\"\ntypes = [\"a,b\"]\n").find("types") !=
        std::string::npos);
  CHECK(error_of("[[handler]]\nprogram = \"x\"\ntimeout = 0\n").find("timeout") !=
        std::string::npos);
  CHECK(error_of("[[handler]]\nprogram = \"x\"\nqueue = 0\n").find("queue") != std::string::npos);
  CHECK(error_of("handler = 5\n").find("handler") != std::string::npos);
  CHECK(error_of("[[handler]]\nprogram = \"x\"\ncoalesce = -1\n").find("coalesce") !=
        std::string::npos);
  CHECK(error_of("reconnect_timeout = 0.5\n").find("reconnect_timeout") != std::string::npos);
  CHECK(error_of("reconnect_timeout = \"1h\"\n").find("reconnect_timeout") != std::string::npos);
}

TEST_CASE("persist: tags round-trip as bytes, UTF-8 or not", "[unit][daemon]") {
  std::string err;
  const shoal::tag_map text{{"role", "web"}, {"zone", "café"}};
  const auto plain = encode_tags(text);
  CHECK(plain.find("\"role\": \"web\"") != std::string::npos);  // readable when it can be
  auto back = decode_tags(plain, err);
  REQUIRE(back);
  CHECK(*back == text);
  const shoal::tag_map raw{{"role", std::string("w\xff\x00z", 4)}, {"k\xc3", "v"}};
  const auto bin = encode_tags(raw);
  back = decode_tags(bin, err);
  REQUIRE(back);
  CHECK(*back == raw);
  CHECK_FALSE(decode_tags("{\"_bytes\": [[[1], [256]]]}", err));
  CHECK_FALSE(decode_tags("{\"_bytes\": [[[], [1]]]}", err));  // an empty key
  CHECK_FALSE(decode_tags("{\"role\": 5}", err));
  CHECK_FALSE(decode_tags("[]", err));
}
