// The socket file itself: its mode, one daemon per path, and a stale file
// left by a dead daemon being replaced.
#include <sys/un.h>

#include "daemon_test_util.hpp"

using namespace dtest;
using namespace shoal::daemon;

namespace {

unsigned mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  return st.st_mode & 07777;
}

std::string name_behind(const std::string& socket) {
  reply r;
  auto c = client::connect(client::options{socket, 10s}, r);
  if (!c) return "";
  r = c->call("info");
  return r.ok() ? r.result.value("name", "") : "";
}

}  // namespace

TEST_CASE("socket: mode 0600 by default, --socket-mode changes it", "[daemon][socket]") {
  scratch_dir dir;
  daemon_proc a(daemon_spec{"a", free_port(), dir.path(), {}, {}});
  REQUIRE(wait_serving(a));
  CHECK(mode_of(a.socket()) == 0600);

  daemon_proc b(daemon_spec{"b", free_port(), dir.path(), {}, {"--socket-mode", "0660"}});
  REQUIRE(wait_serving(b));
  CHECK(mode_of(b.socket()) == 0660);
}

TEST_CASE("socket: a second shoald on a live daemon's socket refuses to start",
          "[daemon][socket]") {
  scratch_dir dir;
  daemon_proc first(daemon_spec{"first", free_port(), dir.path(), {}, {}});
  REQUIRE(wait_serving(first));

  daemon_spec s{"second", free_port(), dir.path(), {}, {}, first.socket()};
  daemon_proc second(s);
  const auto st = second.proc().wait_exit(20s);
  INFO(second.proc().log());
  REQUIRE(st.has_value());
  CHECK(*st != 0);
  CHECK(first.proc().running());
  CHECK(name_behind(first.socket()) == "first");
}

TEST_CASE("socket: a stale socket file (no daemon) is replaced", "[daemon][socket]") {
  scratch_dir dir;
  daemon_spec s{"fresh", free_port(), dir.path(), {}, {}};
  // A socket file nobody listens on, as a killed daemon leaves it.
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, s.socket().c_str(), sizeof sa.sun_path - 1);
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    close(fd);
  }
  REQUIRE(fs::exists(fs::symlink_status(s.socket())));
  std::error_code ec;
  connection::open(s.socket(), 1s, ec);
  REQUIRE(ec == client_errc::connection_refused);

  daemon_proc d(s);
  REQUIRE(wait_serving(d));
  CHECK(name_behind(d.socket()) == "fresh");
  CHECK(mode_of(d.socket()) == 0600);
}

TEST_CASE("socket: --read-only-socket serves reads and streams, refuses the rest",
          "[daemon][socket]") {
  scratch_dir dir;
  const auto ro = (dir.path() / "ro.sock").string();
  daemon_proc d(daemon_spec{"solo", free_port(), dir.path(), {}, {"--read-only-socket", ro}});
  REQUIRE(wait_serving(d));
  struct stat st {};
  REQUIRE(::stat(ro.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0666);
  auto c = try_client(ro);
  REQUIRE(c);
  CHECK(c->call("members").ok());
  CHECK(c->call("info").ok());
  CHECK(c->call("stats").ok());
  std::uint64_t sid = 0;
  CHECK(c->open_stream({}, sid, true).ok());
  for (const char* cmd :
       {"leave", "tags", "join", "force-leave", "keys", "event", "query", "respond"}) {
    INFO(cmd);
    const auto r = c->call(cmd, json::object());
    REQUIRE(r.error);
    CHECK(r.error->code == "read_only");
  }
  CHECK(ctl(ro, {"tags", "set", "a=b"}).status == 1);
  CHECK(ctl(d.socket(), {"stats", "--format", "json"}).out.find("\"read_only_refused\":9") !=
        std::string::npos);
  // The main socket still does everything; the daemon is still running.
  CHECK(ctl(d.socket(), {"tags", "set", "a=b"}).status == 0);
  CHECK(d.proc().running());
}
