// The event-handler runner (daemon/handlers.*) on its own: the flag and
// command-line parsers, filters, the environment and stdin a program gets
// (shoal's JSON lines and Serf's tab-separated lines), query answers,
// failures, timeouts, full queues, missing programs, unread stdin, one run at
// a time, stop() and the destructor. Real child processes (small /bin/sh
// scripts in a scratch directory under /tmp); the io_context runs until a
// condition holds or a generous deadline passes, never for a fixed time.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "handlers.hpp"

namespace {

using namespace std::chrono_literals;
namespace sd = shoal::daemon;

constexpr auto hr_deadline = 20s;

/// A scratch directory (mkdtemp under /tmp), removed at the end.
struct hr_tmpdir {
  std::string path;
  hr_tmpdir() {
    std::string templ = "/tmp/shoal-handlers-XXXXXX";
    const char* made = ::mkdtemp(templ.data());
    REQUIRE(made != nullptr);
    path = made;
  }
  ~hr_tmpdir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  hr_tmpdir(const hr_tmpdir&) = delete;
  hr_tmpdir& operator=(const hr_tmpdir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
};

/// Writes an executable /bin/sh script and returns its path.
std::string hr_script(const hr_tmpdir& dir, const std::string& name, const std::string& body) {
  const auto path = dir.file(name);
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << "#!/bin/sh\n" << body;
  }
  REQUIRE(::chmod(path.c_str(), 0755) == 0);
  return path;
}

std::string hr_read(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<std::string> hr_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

/// A logger into `text` (or nowhere useful when the test does not look).
std::shared_ptr<spdlog::logger> hr_logger(std::ostringstream& text) {
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(text);
  auto log = std::make_shared<spdlog::logger>("handlers", sink);
  log->set_level(spdlog::level::debug);
  return log;
}

/// Runs `ctx` until `done()` holds; false when the deadline passed first.
bool hr_run_until(boost::asio::io_context& ctx, const std::function<bool()>& done,
                  std::chrono::steady_clock::duration limit = hr_deadline) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    ctx.restart();
    ctx.run_for(5ms);
  }
  return true;
}

/// Is process `pid` gone (or a zombie nobody reaps)?
bool hr_process_dead(pid_t pid) {
  const auto stat = hr_read("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return true;
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

pid_t hr_pid_in(const std::string& path) {
  const auto text = hr_read(path);
  return text.empty() ? pid_t{-1} : static_cast<pid_t>(std::stol(text));
}

sd::handler_spec hr_spec(std::string program, std::vector<std::string> filters = {},
                         bool serf = false) {
  sd::handler_spec s;
  s.program = std::move(program);
  s.filters = std::move(filters);
  s.serf_compat = serf;
  return s;
}

sd::handler_event hr_user(const std::string& name, std::uint64_t ltime = 1,
                          const std::string& payload = "") {
  sd::handler_event ev;
  ev.type = "user";
  ev.name = name;
  ev.ltime = ltime;
  ev.payload.assign(payload.begin(), payload.end());
  return ev;
}

shoal::member hr_member(const std::string& name, const std::string& addr, shoal::tag_map tags,
                        shoal::member_state state = shoal::member_state::alive,
                        std::uint64_t inc = 1) {
  shoal::member m;
  m.name = name;
  m.addr = *shoal::address::parse(addr);
  m.tags = std::move(tags);
  m.state = state;
  m.incarnation = inc;
  return m;
}

std::map<std::string, std::string> hr_env_file(const std::string& path) {
  std::map<std::string, std::string> env;
  for (const auto& line : hr_lines(hr_read(path))) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

std::size_t hr_count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

}  // namespace

// --- parsing ---------------------------------------------------------------

TEST_CASE("handler command lines: words, quotes and escapes, nothing expanded", "[unit]") {
  std::string err;
  using v = std::vector<std::string>;
  CHECK(sd::split_command_line("a b\t c ", err) == v{"a", "b", "c"});
  CHECK(sd::split_command_line(R"('a b' "c d" e\ f)", err) == v{"a b", "c d", "e f"});
  CHECK(sd::split_command_line(R"(a'b c'd)", err) == v{"ab cd"});
  CHECK(sd::split_command_line(R"("say \"hi\" \\ \$x \n")", err) == v{R"(say "hi" \ $x \n)"});
  CHECK(sd::split_command_line(R"('it\s' x)", err) == v{R"(it\s)", "x"});
  CHECK(sd::split_command_line(R"(it\'s)", err) == v{"it's"});
  CHECK(sd::split_command_line(R"(prog "" '')", err) == v{"prog", "", ""});
  CHECK(sd::split_command_line("echo $HOME * ~ `x` $(y) a|b;c", err) ==
        v{"echo", "$HOME", "*", "~", "`x`", "$(y)", "a|b;c"});
}

TEST_CASE("handler command lines: unterminated quotes and empty lines are errors", "[unit]") {
  std::string err;
  CHECK_FALSE(sd::split_command_line("echo 'abc", err));
  CHECK(err.find("single quote") != std::string::npos);
  CHECK_FALSE(sd::split_command_line("echo \"abc", err));
  CHECK(err.find("double quote") != std::string::npos);
  CHECK_FALSE(sd::split_command_line("echo abc\\", err));
  CHECK(err.find("backslash") != std::string::npos);
  CHECK_FALSE(sd::split_command_line("", err));
  CHECK(err.find("empty") != std::string::npos);
  CHECK_FALSE(sd::split_command_line(" \t\n ", err));
  CHECK_FALSE(sd::split_command_line(std::string_view("a\0b", 3), err));
  CHECK(err.find("NUL") != std::string::npos);
}

TEST_CASE("parse_handler_flag: Serf's [TYPES=]PROGRAM", "[unit]") {
  std::string err;
  auto s = sd::parse_handler_flag("member-join,member-leave=./rebalance.sh", err);
  REQUIRE(s);
  CHECK(s->filters == std::vector<std::string>{"member-join", "member-leave"});
  CHECK(s->program == "./rebalance.sh");
  CHECK_FALSE(s->serf_compat);

  s = sd::parse_handler_flag("user:deploy=./d.sh --fast", err);
  REQUIRE(s);
  CHECK(s->filters == std::vector<std::string>{"user:deploy"});
  CHECK(s->program == "./d.sh --fast");

  s = sd::parse_handler_flag("./all.sh", err);
  REQUIRE(s);
  CHECK(s->filters.empty());
  CHECK(s->program == "./all.sh");

  s = sd::parse_handler_flag("*=./x.sh --opt=1", err);  // '=' in the program
  REQUIRE(s);
  CHECK(s->filters == std::vector<std::string>{"*"});
  CHECK(s->program == "./x.sh --opt=1");

  s = sd::parse_handler_flag("query:load,member-failed,member-update,member-reap,query,user=p",
                             err);
  REQUIRE(s);
  CHECK(s->filters.size() == 6);

  s = sd::parse_handler_flag("=./any.sh", err);  // Serf: no types is every event
  REQUIRE(s);
  CHECK(s->filters.empty());
}

TEST_CASE("parse_handler_flag: unknown types and bad programs are errors", "[unit]") {
  std::string err;
  CHECK_FALSE(sd::parse_handler_flag("member-jion=./x.sh", err));
  CHECK(err.find("\"member-jion\"") != std::string::npos);
  CHECK_FALSE(sd::parse_handler_flag("member-join,bogus=./x.sh", err));
  CHECK(err.find("\"bogus\"") != std::string::npos);
  CHECK_FALSE(sd::parse_handler_flag("member-join,,user=./x.sh", err));
  CHECK(err.find("unknown event type") != std::string::npos);
  CHECK_FALSE(sd::parse_handler_flag("./x.sh --opt=1", err));  // Serf's grammar: types first
  CHECK(err.find("*=PROGRAM") != std::string::npos);
  CHECK_FALSE(sd::parse_handler_flag("member-join=", err));
  CHECK(err.find("empty") != std::string::npos);
  CHECK_FALSE(sd::parse_handler_flag("", err));
  CHECK_FALSE(sd::parse_handler_flag("user=./x.sh 'open", err));
  CHECK(err.find("quote") != std::string::npos);
}

TEST_CASE("handler_spec::wants follows Serf's filters", "[unit]") {
  auto s = hr_spec("p", {"member-join"});
  CHECK(s.wants("member-join", ""));
  CHECK_FALSE(s.wants("member-leave", ""));
  CHECK_FALSE(s.wants("user", "deploy"));
  s = hr_spec("p", {"user:deploy", "query"});
  CHECK(s.wants("user", "deploy"));
  CHECK_FALSE(s.wants("user", "deploy2"));
  CHECK_FALSE(s.wants("user", "other"));
  CHECK(s.wants("query", "anything"));
  CHECK_FALSE(s.wants("member-join", ""));
  s = hr_spec("p", {"user"});
  CHECK(s.wants("user", "x"));
  CHECK_FALSE(s.wants("query", "x"));
  s = hr_spec("p", {"query:load"});
  CHECK(s.wants("query", "load"));
  CHECK_FALSE(s.wants("query", "other"));
  CHECK_FALSE(s.wants("user", "load"));
  CHECK(hr_spec("p", {}).wants("member-reap", ""));
  CHECK(hr_spec("p", {"*"}).wants("query", "x"));
}

TEST_CASE("handler counters are visited by name", "[unit]") {
  sd::handler_stats st;
  st.handler_dropped = 3;
  std::map<std::string, std::uint64_t> seen;
  sd::visit_counters(st, [&](const char* name, const char* help, std::uint64_t value) {
    CHECK(std::string(help).size() > 0);
    seen[name] = value;
  });
  for (const char* name :
       {"handler_runs", "handler_succeeded", "handler_failed", "handler_timed_out",
        "handler_dropped", "handler_spawn_errors", "handler_output_truncated"})
    CHECK(seen.count(name) == 1);
  CHECK(seen["handler_dropped"] == 3);
}

// --- runs ------------------------------------------------------------------

TEST_CASE("handlers: filters pick the events each handler runs for", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto script =
      hr_script(dir, "mark.sh", "echo \"$SHOAL_EVENT $SHOAL_USER_EVENT\" >> \"$1\"\n");
  sd::handler_runner runner(ctx,
                            {hr_spec(script + " " + dir.file("joins"), {"member-join"}),
                             hr_spec(script + " " + dir.file("deploys"), {"user:deploy"}),
                             hr_spec(script + " " + dir.file("all"))},
                            hr_logger(logtext));
  runner.dispatch(hr_user("other"));
  runner.dispatch(hr_user("deploy"));
  sd::handler_event join;
  join.type = "member-join";
  join.members.push_back(hr_member("n2", "10.0.0.2:7946", {}));
  runner.dispatch(join);
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 5; }));
  CHECK(runner.running() == 0);
  CHECK(hr_read(dir.file("joins")) == "member-join \n");
  CHECK(hr_read(dir.file("deploys")) == "user deploy\n");
  CHECK(hr_read(dir.file("all")) == "user other\nuser deploy\nmember-join \n");
  CHECK(runner.stats().handler_runs == 5);
  CHECK(runner.stats().handler_failed == 0);
}

TEST_CASE("handlers: the environment carries the event and this daemon", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  ::setenv("SHOAL_HR_INHERITED", "yes", 1);
  ::setenv("SHOAL_EVENT", "stale", 1);
  ::setenv("SHOAL_TAG_STALE", "stale", 1);
  ::setenv("SHOAL_USER_EVENT", "stale", 1);  // as a daemon started from a handler has it
  const auto dump = hr_script(dir, "env.sh", "env > \"$1\"\n");
  sd::handler_runner runner(ctx,
                            {hr_spec(dump + " " + dir.file("user.env"), {"user"}),
                             hr_spec(dump + " " + dir.file("join.env"), {"member-join"}),
                             hr_spec(dump + " " + dir.file("query.env"), {"query"}, true)},
                            hr_logger(logtext));
  runner.set_self(
      {"n1", "10.0.0.1:7946", {{"role", "web"}, {"dc-1.x", "east"}, {"zon\xc3\xa9", "z"}}});
  runner.dispatch(hr_user("deploy", 42));
  sd::handler_event join;
  join.type = "member-join";
  join.members.push_back(hr_member("n2", "10.0.0.2:7946", {}));
  runner.dispatch(join);
  sd::handler_event q;
  q.type = "query";
  q.name = "load";
  q.ltime = 9;
  runner.dispatch(q);
  const bool finished = hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 3; });
  ::unsetenv("SHOAL_HR_INHERITED");
  ::unsetenv("SHOAL_EVENT");
  ::unsetenv("SHOAL_TAG_STALE");
  ::unsetenv("SHOAL_USER_EVENT");
  REQUIRE(finished);

  auto env = hr_env_file(dir.file("user.env"));
  CHECK(env["SHOAL_EVENT"] == "user");
  CHECK(env["SHOAL_SELF_NAME"] == "n1");
  CHECK(env["SHOAL_SELF_ADDRESS"] == "10.0.0.1:7946");
  CHECK(env["SHOAL_TAG_ROLE"] == "web");
  CHECK(env["SHOAL_TAG_DC_1_X"] == "east");
  CHECK(env["SHOAL_TAG_ZON__"] == "z");  // byte by byte: two bytes, two '_'
  CHECK(env["SHOAL_USER_EVENT"] == "deploy");
  CHECK(env["SHOAL_USER_LTIME"] == "42");
  CHECK(env["SHOAL_HR_INHERITED"] == "yes");
  CHECK(env.count("PATH") == 1);
  CHECK(env.count("SHOAL_TAG_STALE") == 0);
  CHECK(env.count("SERF_EVENT") == 0);
  CHECK(env.count("SHOAL_QUERY_NAME") == 0);

  env = hr_env_file(dir.file("join.env"));
  CHECK(env["SHOAL_EVENT"] == "member-join");
  CHECK(env["SHOAL_SELF_NAME"] == "n1");
  CHECK(env.count("SHOAL_USER_EVENT") == 0);
  CHECK(env.count("SHOAL_USER_LTIME") == 0);

  env = hr_env_file(dir.file("query.env"));
  CHECK(env["SHOAL_EVENT"] == "query");
  CHECK(env["SHOAL_QUERY_NAME"] == "load");
  CHECK(env["SHOAL_QUERY_LTIME"] == "9");
  CHECK(env["SERF_EVENT"] == "query");
  CHECK(env["SERF_SELF_NAME"] == "n1");
  CHECK(env["SERF_SELF_ROLE"] == "web");
  CHECK(env["SERF_TAG_ROLE"] == "web");
  CHECK(env["SERF_TAG_DC_1_X"] == "east");
  CHECK(env["SERF_TAG_ZON_"] == "z");  // Serf's regexp: one '_' per character
  CHECK(env["SERF_QUERY_NAME"] == "load");
  CHECK(env["SERF_QUERY_LTIME"] == "9");
  CHECK(env.count("SERF_SELF_ADDRESS") == 0);
}

TEST_CASE("handlers: a membership event is one JSON line per member on stdin", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto out = dir.file("stdin");
  sd::handler_runner runner(ctx, {hr_spec("sh -c 'cat > \"$0\"' " + out)}, hr_logger(logtext));
  sd::handler_event ev;
  ev.type = "member-failed";
  ev.members.push_back(hr_member("n1", "10.0.0.1:7946", {{"role", "web"}, {"dc", "east"}},
                                 shoal::member_state::alive, 3));
  ev.members.push_back(hr_member("n\t2", "[::1]:7000", {}, shoal::member_state::dead, 7));
  runner.dispatch(ev);
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 1; }));
  const auto lines = hr_lines(hr_read(out));
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] ==
        R"({"name":"n1","addr":"10.0.0.1","port":7946,"status":"alive","incarnation":3,)"
        R"("tags":{"dc":"east","role":"web"}})");
  const auto second = nlohmann::json::parse(lines[1]);
  CHECK(second["name"] == "n\t2");
  CHECK(second["addr"] == "::1");
  CHECK(second["port"] == 7000);
  CHECK(second["status"] == "failed");
  CHECK(second["incarnation"] == 7);
  CHECK(second["tags"].empty());
}

TEST_CASE("handlers: serf_compat writes Serf's stdin byte for byte", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  sd::handler_runner runner(ctx,
                            {hr_spec("cat > " + dir.file("members"), {"member-join"}, true),
                             hr_spec("cat > " + dir.file("payload"), {"user"}, true),
                             hr_spec("sh -c 'cat > \"$0\"' " + dir.file("raw"), {"user"})},
                            hr_logger(logtext));
  sd::handler_event join;
  join.type = "member-join";
  join.members.push_back(hr_member("n1", "10.0.0.1:7946", {{"role", "web"}, {"dc", "east"}}));
  join.members.push_back(hr_member("we\tird\nname", "[::ffff:10.0.0.2]:7946", {{"role", "a\tb"}}));
  join.members.push_back(hr_member("v6", "[2001:db8::1]:7946", {}));
  runner.dispatch(join);
  runner.dispatch(hr_user("deploy", 1, "hello"));
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 3; }));
  // invoke.go: "%s\t%s\t%s\t%s\n" of eventClean(name), Addr.String(),
  // eventClean(role), eventClean(tags joined as k=v with ','); Go prints an
  // IPv4-mapped address as IPv4.
  CHECK(hr_read(dir.file("members")) ==
        "n1\t10.0.0.1\tweb\tdc=east,role=web\n"
        "we\\tird\\nname\t10.0.0.2\ta\\tb\trole=a\\tb\n"
        "v6\t2001:db8::1\t\t\n");
  CHECK(hr_read(dir.file("payload")) == "hello\n");  // Serf adds the missing newline
  CHECK(hr_read(dir.file("raw")) == "hello");        // shoal's mode: the payload as is
}

TEST_CASE("handlers: serf_compat runs a handler written for Serf unchanged", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  // In the manner of Serf's documentation (docs/agent/event-handlers).
  const auto out = dir.file("out");
  const auto script = hr_script(dir, "handler.sh",
                                "echo \"New event: ${SERF_EVENT}. Data follows...\"\n"
                                "echo \"self=${SERF_SELF_NAME} role=${SERF_TAG_ROLE} "
                                "self_role=${SERF_SELF_ROLE}\"\n"
                                "if [ \"${SERF_EVENT}\" = \"user\" ]; then\n"
                                "  echo \"user event ${SERF_USER_EVENT} at ${SERF_USER_LTIME}\"\n"
                                "fi\n"
                                "while read line; do\n"
                                "  ROLE=`echo \"$line\" | awk -F'\\t' '{print $3}'`\n"
                                "  if [ \"x${ROLE}\" != \"xweb\" ]; then\n"
                                "    continue\n"
                                "  fi\n"
                                "  echo \"$line\" | awk -F'\\t' '{ printf \"server %s %s\\n\", "
                                "$1, $2 }'\n"
                                "done\n");
  // A Serf handler line: the shell does the redirection.
  sd::handler_runner runner(ctx, {hr_spec(script + " >> " + out, {"member-join", "user"}, true)},
                            hr_logger(logtext));
  runner.set_self({"lb1", "10.0.0.9:7946", {{"role", "lb"}}});
  sd::handler_event join;
  join.type = "member-join";
  join.members.push_back(hr_member("web1", "10.0.0.1:7946", {{"role", "web"}}));
  join.members.push_back(hr_member("db1", "10.0.0.2:7946", {{"role", "db"}}));
  join.members.push_back(hr_member("web2", "10.0.0.3:7946", {{"role", "web"}, {"dc", "x"}}));
  runner.dispatch(join);
  runner.dispatch(hr_user("deploy", 5, "v2"));
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 2; }));
  CHECK(hr_read(out) ==
        "New event: member-join. Data follows...\n"
        "self=lb1 role=lb self_role=lb\n"
        "server web1 10.0.0.1\n"
        "server web2 10.0.0.3\n"
        "New event: user. Data follows...\n"
        "self=lb1 role=lb self_role=lb\n"
        "user event deploy at 5\n");
}

TEST_CASE("handlers: a query is answered with stdout, truncated at max_response", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto hello = hr_script(dir, "hello.sh", "printf hello\necho diagnostics >&2\n");
  const auto big = hr_script(dir, "big.sh", "head -c 3000 /dev/zero | tr '\\000' x\n");
  sd::handler_runner runner(ctx,
                            {hr_spec(hello, {"query:hello"}), hr_spec(big, {"query:big"}),
                             hr_spec("printf compat; echo diag >&2", {"query:compat"}, true),
                             hr_spec("true", {"query:quiet"}, true)},
                            hr_logger(logtext));
  std::map<std::string, std::vector<std::string>> answers;
  const auto query = [&](const std::string& name) {
    sd::handler_event q;
    q.type = "query";
    q.name = name;
    q.max_response = 1000;
    q.on_response = [&answers, name](std::string s) { answers[name].push_back(std::move(s)); };
    return q;
  };
  runner.dispatch(query("hello"));
  runner.dispatch(query("big"));
  runner.dispatch(query("compat"));
  runner.dispatch(query("quiet"));
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 4; }));
  CHECK(answers["hello"] == std::vector<std::string>{"hello"});
  REQUIRE(answers["big"].size() == 1);
  CHECK(answers["big"][0] == std::string(1000, 'x'));
  CHECK(runner.stats().handler_output_truncated == 1);
  // Serf's contract: stderr is part of the answer; no output, no answer.
  CHECK(answers["compat"] == std::vector<std::string>{"compatdiag\n"});
  CHECK(answers.count("quiet") == 0);
}

TEST_CASE("handlers: a query has one answer however many handlers match", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  sd::handler_runner runner(ctx, {hr_spec("echo one", {"query"}), hr_spec("echo two", {"query"})},
                            hr_logger(logtext));
  std::vector<std::string> answers;
  sd::handler_event q;
  q.type = "query";
  q.name = "who";
  q.on_response = [&](std::string s) { answers.push_back(std::move(s)); };
  runner.dispatch(q);
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 2; }));
  REQUIRE(answers.size() == 1);
  CHECK((answers[0] == "one\n" || answers[0] == "two\n"));
}

TEST_CASE("handlers: a non-zero exit is counted, logged and answers nothing", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto fail = hr_script(dir, "fail.sh", "printf 'partial\\001\\n'\nexit 3\n");
  sd::handler_runner runner(ctx, {hr_spec(fail)}, hr_logger(logtext));
  int calls = 0;
  sd::handler_event q;
  q.type = "query";
  q.name = "x";
  q.on_response = [&](std::string) { ++calls; };
  const auto began = std::chrono::steady_clock::now();
  runner.dispatch(q);
  runner.dispatch(q);
  runner.dispatch(q);
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_failed == 3; }));
  const auto took = std::chrono::steady_clock::now() - began;
  CHECK(calls == 0);
  CHECK(runner.stats().handler_succeeded == 0);
  CHECK(runner.stats().handler_runs == 3);
  const auto log = logtext.str();
  CHECK(hr_count(log, "handler finished program=" + fail + " event=query:x exit=3 ms=") == 3);
  CHECK(log.find("handler stdout program=" + fail + " event=query:x bytes=9: partial\\x01\\n") !=
        std::string::npos);
  // At most one warning per handler per 10 s (when the three runs fit in it).
  if (took < 9s) CHECK(hr_count(log, "handler failed program=") == 1);
}

TEST_CASE("handlers: a timeout kills the process group and the next event runs", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto script = hr_script(dir, "slow.sh",
                                "if [ \"$SHOAL_USER_EVENT\" = slow ]; then\n"
                                "  sleep 1000 &\n"
                                "  echo $! > " +
                                    dir.file("sleep.pid") +
                                    "\n"
                                    "  wait\n"
                                    "fi\n"
                                    "echo \"ran $SHOAL_USER_EVENT\" >> " +
                                    dir.file("ran") + "\n");
  auto spec = hr_spec(script);
  spec.timeout = 1500ms;  // the fast run must fit it too, on a loaded machine
  sd::handler_runner runner(ctx, {spec}, hr_logger(logtext));
  runner.dispatch(hr_user("slow"));
  runner.dispatch(hr_user("fast"));
  CHECK(runner.running() == 1);
  CHECK(runner.queued() == 1);
  REQUIRE(hr_run_until(ctx, [&] {
    return runner.stats().handler_timed_out == 1 && runner.stats().handler_succeeded == 1;
  }));
  CHECK(runner.stats().handler_failed == 0);
  CHECK(hr_read(dir.file("ran")) == "ran fast\n");
  CHECK(logtext.str().find("handler timed out program=" + script) != std::string::npos);
  // The shell's child died with it (when it got to start before the timeout).
  const pid_t sleeper = hr_pid_in(dir.file("sleep.pid"));
  if (sleeper > 0) CHECK(hr_run_until(ctx, [&] { return hr_process_dead(sleeper); }));
}

TEST_CASE("handlers: a full queue drops and counts", "[daemon]") {
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  auto spec = hr_spec("sleep 1000");
  spec.queue_limit = 2;
  sd::handler_runner runner(ctx, {spec}, hr_logger(logtext));
  for (std::uint64_t i = 0; i < 5; ++i) runner.dispatch(hr_user("e", i));
  CHECK(runner.running() == 1);
  CHECK(runner.queued() == 2);
  CHECK(runner.stats().handler_dropped == 2);
  CHECK(hr_count(logtext.str(), "handler queue full program=sleep 1000") == 1);  // rate-limited
  runner.stop();
  CHECK(runner.queued() == 0);
  REQUIRE(hr_run_until(ctx, [&] { return runner.running() == 0; }));
  CHECK(runner.stats().handler_stopped == 1);
  CHECK(runner.stats().handler_runs == 1);
}

TEST_CASE("handlers: a missing program is a spawn error (through the shell: exit 127)",
          "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  sd::handler_runner runner(ctx,
                            {hr_spec("/nonexistent/shoal-hr-program --x", {"user:direct"}),
                             hr_spec("shoal-hr-no-such-program-on-path", {"user:direct"}),
                             hr_spec("/nonexistent/shoal-hr-program", {"user:shell"}, true),
                             hr_spec("touch " + dir.file("after"), {"user:direct"})},
                            hr_logger(logtext));
  runner.dispatch(hr_user("direct"));
  runner.dispatch(hr_user("direct"));
  CHECK(runner.stats().handler_spawn_errors == 4);  // at once, in dispatch()
  runner.dispatch(hr_user("shell"));
  REQUIRE(hr_run_until(ctx, [&] {
    return runner.stats().handler_failed == 1 && runner.stats().handler_succeeded == 2;
  }));
  CHECK(runner.stats().handler_runs == 3);
  CHECK(std::filesystem::exists(dir.file("after")));
  const auto log = logtext.str();
  CHECK(
      log.find("handler cannot start program=/nonexistent/shoal-hr-program --x event=user:direct: "
               "No such file or directory") != std::string::npos);
  CHECK(log.find("exit=127") != std::string::npos);
}

TEST_CASE("handlers: a program that never reads a 1 MiB stdin does not hang the runner",
          "[daemon]") {
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  sd::handler_runner runner(ctx,
                            {hr_spec("true"), hr_spec("exit 0", {}, true), hr_spec("head -c 10"),
                             hr_spec("sh -c 'exec 0<&-; sleep 0.1'")},
                            hr_logger(logtext));
  const std::string mib(1u << 20, 'p');
  for (int i = 0; i < 3; ++i) runner.dispatch(hr_user("big", 1, mib));
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 12; }));
  CHECK(runner.stats().handler_failed == 0);
  CHECK(runner.running() == 0);
}

TEST_CASE("handlers: runs of one handler never overlap, handlers run side by side", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto log = dir.file("log");
  const auto script = hr_script(dir, "seq.sh",
                                "echo \"start $SHOAL_USER_LTIME\" >> " + log +
                                    "\n"
                                    "sleep 0.05\n"
                                    "echo \"end $SHOAL_USER_LTIME\" >> " +
                                    log + "\n");
  sd::handler_runner runner(ctx,
                            {hr_spec(script, {"user:seq"}), hr_spec("sleep 1000", {"user:a"}),
                             hr_spec("sleep 1000", {"user:a"})},
                            hr_logger(logtext));
  for (std::uint64_t i = 1; i <= 5; ++i) runner.dispatch(hr_user("seq", i));
  CHECK(runner.running() == 1);
  CHECK(runner.queued() == 4);
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 5; }));
  CHECK(hr_read(log) ==
        "start 1\nend 1\nstart 2\nend 2\nstart 3\nend 3\nstart 4\nend 4\nstart 5\nend 5\n");

  runner.dispatch(hr_user("a"));
  CHECK(runner.running() == 2);  // two handlers, neither waits for the other
  runner.stop();
  REQUIRE(hr_run_until(ctx, [&] { return runner.running() == 0; }));
  CHECK(runner.stats().handler_stopped == 2);
}

TEST_CASE("handlers: stop() kills running children, later dispatches do nothing", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto script = hr_script(dir, "bg.sh",
                                "sleep 1000 &\n"
                                "echo $! > " +
                                    dir.file("sleep.pid") +
                                    "\n"
                                    "wait\n");
  sd::handler_runner runner(ctx, {hr_spec(script)}, hr_logger(logtext));
  runner.dispatch(hr_user("a"));
  runner.dispatch(hr_user("b"));
  REQUIRE(hr_run_until(ctx, [&] { return hr_pid_in(dir.file("sleep.pid")) > 0; }));
  const pid_t sleeper = hr_pid_in(dir.file("sleep.pid"));
  runner.stop();
  CHECK(runner.queued() == 0);
  REQUIRE(hr_run_until(ctx, [&] { return runner.running() == 0; }));
  CHECK(runner.stats().handler_stopped == 1);
  CHECK(runner.stats().handler_failed == 0);
  CHECK(hr_run_until(ctx, [&] { return hr_process_dead(sleeper); }));
  runner.dispatch(hr_user("c"));
  CHECK(runner.running() == 0);
  CHECK(runner.queued() == 0);
  CHECK(runner.stats().handler_runs == 1);
}

TEST_CASE("handlers: the destructor kills and reaps its children", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto script =
      hr_script(dir, "leader.sh", "echo $$ > " + dir.file("pid") + "\nexec sleep 1000\n");
  pid_t leader = -1;
  {
    sd::handler_runner runner(ctx, {hr_spec(script)}, hr_logger(logtext));
    runner.dispatch(hr_user("a"));
    REQUIRE(hr_run_until(ctx, [&] { return hr_pid_in(dir.file("pid")) > 0; }));
    leader = hr_pid_in(dir.file("pid"));
    CHECK(runner.running() == 1);
  }
  // Reaped: not even a zombie is left.
  CHECK_FALSE(std::filesystem::exists("/proc/" + std::to_string(leader)));
  ctx.restart();
  ctx.poll();  // the detached runs' completions touch nothing
}

TEST_CASE("handlers: exits are found by polling waitpid too", "[daemon]") {
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  auto slow = hr_spec("sleep 1000", {"user:slow"});
  slow.timeout = 200ms;
  sd::handler_runner runner(ctx,
                            {hr_spec("true", {"user:ok"}), hr_spec("false", {"user:bad"}), slow},
                            hr_logger(logtext));
  runner.set_exit_polling(true);
  runner.dispatch(hr_user("ok"));
  runner.dispatch(hr_user("bad"));
  runner.dispatch(hr_user("slow"));
  REQUIRE(hr_run_until(ctx, [&] {
    const auto& st = runner.stats();
    return st.handler_succeeded == 1 && st.handler_failed == 1 && st.handler_timed_out == 1;
  }));
  CHECK(runner.running() == 0);
}

TEST_CASE("handlers: output is kept bounded and logged escaped", "[daemon]") {
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  sd::handler_runner runner(
      ctx, {hr_spec("head -c 100000 /dev/zero"), hr_spec("sh -c 'head -c 9000 /dev/zero >&2'")},
      hr_logger(logtext));
  runner.dispatch(hr_user("x"));
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 2; }));
  CHECK(runner.stats().handler_output_truncated == 2);
  const auto log = logtext.str();
  CHECK(
      log.find("handler stdout program=head -c 100000 /dev/zero event=user:x bytes=100000: " + [] {
        std::string s;
        for (int i = 0; i < 1024; ++i) s += "\\x00";
        return s;
      }() + "...") != std::string::npos);
  CHECK(log.find("bytes=9000: \\x00") != std::string::npos);
}

TEST_CASE("handlers: coalescing runs a burst of one name once, with the last payload", "[daemon]") {
  hr_tmpdir dir;
  std::ostringstream logtext;
  boost::asio::io_context ctx;
  const auto script = hr_script(dir, "log.sh", "echo \"$SHOAL_USER_EVENT $(cat)\" >> \"$1\"\n");
  auto coalescing = hr_spec(script + " " + dir.file("coalesced"), {"user"});
  coalescing.coalesce = 300ms;
  sd::handler_runner runner(ctx, {coalescing, hr_spec(script + " " + dir.file("every"), {"user"})},
                            hr_logger(logtext));
  for (int i = 1; i <= 5; ++i) {
    auto ev = hr_user("deploy", static_cast<std::uint64_t>(i), "v" + std::to_string(i));
    ev.coalescable = true;
    runner.dispatch(ev);
  }
  runner.dispatch(hr_user("deploy", 6, "plain"));  // not sent with coalesce: runs as it is
  auto other = hr_user("restart", 7, "r1");
  other.coalescable = true;
  runner.dispatch(other);
  REQUIRE(hr_run_until(ctx, [&] { return runner.stats().handler_succeeded == 3 + 7; }));
  CHECK(hr_lines(hr_read(dir.file("every"))).size() == 7);
  const auto lines = hr_lines(hr_read(dir.file("coalesced")));
  CHECK(lines == std::vector<std::string>{"deploy v5", "deploy plain", "restart r1"});
  CHECK(runner.stats().handler_coalesced == 4);
}
