// Event handlers: external programs shoald runs for cluster events, the
// contract Serf's shell users rely on (hashicorp/serf,
// cmd/serf/command/agent/invoke.go and event_handler.go).
//
// A handler is "[TYPES=]PROGRAM" (parse_handler_flag). For each event it
// wants, its program runs once; runs of one handler never overlap (a queue of
// at most queue_limit events per handler; more are dropped and counted), and
// handlers do not wait for each other.
//
// What a run gets:
//   argv         PROGRAM split like a shell line, no expansion, executed
//                directly with a PATH search (split_command_line); serf_compat:
//                /bin/sh -c PROGRAM, as Serf.
//   environment  the daemon's, plus SHOAL_EVENT (the type), SHOAL_SELF_NAME,
//                SHOAL_SELF_ADDRESS, SHOAL_TAG_<KEY> per own tag (KEY upper-
//                cased, every other byte not [A-Z0-9_] as '_'); user events
//                SHOAL_USER_EVENT and SHOAL_USER_LTIME; queries
//                SHOAL_QUERY_NAME and SHOAL_QUERY_LTIME. serf_compat adds
//                Serf's names: SERF_EVENT, SERF_SELF_NAME, SERF_SELF_ROLE (tag
//                "role"), SERF_TAG_<KEY> (Serf's rule: upper-cased, each
//                character not [A-Z0-9_] as one '_'), SERF_USER_EVENT,
//                SERF_USER_LTIME, SERF_QUERY_NAME, SERF_QUERY_LTIME.
//   stdin        membership events: a line per member, JSON
//                {"name","addr","port","status","incarnation","tags"} (status
//                alive/suspect/failed/left); serf_compat: Serf's
//                "NAME\tADDR\tROLE\tTAGS" (ADDR the IP as Go prints it, TAGS
//                k=v joined by ',', tabs and newlines in NAME, ROLE and TAGS
//                written as \t and \n). User events and queries: the payload
//                as is (serf_compat: with a newline added when it lacks one,
//                as Serf). Then stdin is closed; a program that does not read
//                it costs nothing (the write fails with EPIPE; SIGPIPE is
//                ignored in the daemon and back to default in the child).
//   process      its own process group; every other descriptor closed.
//
// What becomes of it: stdout is kept up to max(max_response, 4 KiB) and
// stderr up to 4 KiB (serf_compat: stderr is the same pipe as stdout, as in
// Serf); more is read and discarded, counted as truncated. When the program
// has exited and its output is closed, one info line (`handler finished
// program=... event=... exit=N ms=...`) and the start of the output (1 KiB,
// escaped) are logged; a failure also warns, at most once per handler per
// 10 s. A query is answered with the first max_response bytes of stdout
// when the program exits 0 (serf_compat: and wrote something). A run longer
// than the timeout is killed (SIGKILL to its process group) and the next
// event starts. A run lasts until the program has exited and every holder of
// its stdout/stderr has closed them: a handler that starts a background job
// should redirect the job's output (and setsid it), or the timeout kills it.
//
// Where shoal's serf_compat differs from Serf, on purpose: tags are written
// in key order (Serf: Go's map order, random); the output kept is the first
// bytes (Serf keeps the last 8 KiB), and an answer over max_response is
// truncated (Serf refuses it); runs are bounded by a timeout (Serf waits).
//
// How, without blocking the io_context: posix_spawn (glibc's is vfork-like
// and reports exec failures: a missing program is a spawn error, in
// serf_compat the shell's exit 127), O_CLOEXEC pipes read and written with
// posix::stream_descriptor, and a pidfd (pidfd_open) watched for the exit,
// then waitpid(WNOHANG); where pidfd_open fails, waitpid(WNOHANG) polled on
// a timer. Every asynchronous handler holds its run; the runner's
// destruction detaches the runs, so a late completion touches nothing.
#include "handlers.hpp"
#include "names.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <thread>
#include <utility>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>

namespace shoal::daemon {

using std::chrono::steady_clock;
namespace asio = boost::asio;

namespace {

constexpr std::size_t handler_output_keep = 4096;       ///< stdout (at least) and stderr kept
constexpr std::size_t handler_max_response = 1u << 20;  ///< bound on handler_event::max_response
constexpr std::size_t handler_logged_output = 1024;     ///< of stdout/stderr, in the log
constexpr std::size_t handler_logged_program = 256;     ///< of the program, in each log line
constexpr auto handler_reap_wait = std::chrono::seconds(5);

constexpr std::array<std::string_view, 7> handler_event_types = {
    "member-join", "member-leave", "member-failed", "member-update",
    "member-reap", "user",         "query"};

bool is_handler_event_type(std::string_view t) {
  return std::find(handler_event_types.begin(), handler_event_types.end(), t) !=
         handler_event_types.end();
}

bool is_member_event_type(std::string_view t) {
  return t.rfind("member-", 0) == 0;
}

/// Printable ASCII as is; everything else as \n \t \r \\ or \xNN. At most
/// `limit` input bytes, then "...".
std::string escape_handler_text(std::string_view s, std::size_t limit) {
  std::string out;
  const std::size_t n = std::min(s.size(), limit);
  out.reserve(n + 8);
  static constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  if (s.size() > limit) out += "...";
  return out;
}

/// SHOAL_TAG_ names: ASCII upper-cased, every byte not [A-Z0-9_] as '_'.
std::string shoal_env_key(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (const char ch : key) {
    char c = ch;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    out += ok ? c : '_';
  }
  return out;
}

/// Length of the well-formed UTF-8 sequence at s[i], or 0 (an invalid byte,
/// which Go decodes as one RuneError).
std::size_t handler_utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const std::size_t left = s.size() - i;
  const auto cont = [&](std::size_t k, unsigned char lo, unsigned char hi) {
    return b(i + k) >= lo && b(i + k) <= hi;
  };
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return left >= 2 && cont(1, 0x80, 0xbf) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (left < 3) return 0;
    const unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
    const unsigned char hi = c == 0xed ? 0x9f : 0xbf;
    return cont(1, lo, hi) && cont(2, 0x80, 0xbf) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (left < 4) return 0;
    const unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
    return cont(1, lo, hi) && cont(2, 0x80, 0xbf) && cont(3, 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}

/// SERF_TAG_ names exactly as invoke.go makes them:
/// regexp `[^A-Z0-9_]` -> "_" over strings.ToUpper(name). Both work on
/// characters, not bytes: a multi-byte character becomes one '_', an
/// invalid byte one '_' each, and the only non-ASCII letters whose upper
/// case is ASCII (U+0131 dotless i, U+017F long s) become 'I' and 'S'.
std::string serf_env_key(std::string_view key) {
  std::string out;
  out.reserve(key.size());
  for (std::size_t i = 0; i < key.size();) {
    const std::size_t len = handler_utf8_length(key, i);
    if (len == 1) {
      char c = key[i];
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
      const bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
      out += ok ? c : '_';
    } else if (len == 2 && key.substr(i, 2) == "\xc4\xb1") {
      out += 'I';
    } else if (len == 2 && key.substr(i, 2) == "\xc5\xbf") {
      out += 'S';
    } else {
      out += '_';
    }
    i += len == 0 ? 1 : len;
  }
  return out;
}

/// An IP as Go's net.IP.String() prints it (Serf's member.Addr.String()):
/// dotted IPv4, IPv4-mapped IPv6 as IPv4 too, other IPv6 in hex groups with
/// the first longest run of two or more zero groups as "::".
std::string go_ip_string(const address& a) {
  const auto ip = a.ip();
  if (!a.is_v6()) return a.ip_string();
  static constexpr std::array<std::uint8_t, 12> mapped = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(mapped.begin(), mapped.end(), ip.begin())) {
    return std::to_string(ip[12]) + "." + std::to_string(ip[13]) + "." + std::to_string(ip[14]) +
           "." + std::to_string(ip[15]);
  }
  std::array<unsigned, 8> g{};
  for (std::size_t i = 0; i < 8; ++i) g[i] = (unsigned{ip[2 * i]} << 8) | ip[2 * i + 1];
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    int j = i;
    while (j < 8 && g[static_cast<std::size_t>(j)] == 0) ++j;
    if (j - i > best_len && j - i >= 2) {
      best = i;
      best_len = j - i;
    }
    i = j == i ? i + 1 : j;
  }
  std::string out;
  static constexpr char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    const unsigned v = g[static_cast<std::size_t>(i)];
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned d = (v >> shift) & 0xfu;
      if (d != 0 || started || shift == 0) {
        out += hex[d];
        started = true;
      }
    }
  }
  return out;
}

/// invoke.go's eventClean: tab and newline as the two characters \t and \n.
std::string serf_clean(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

/// The stdin of a membership event: JSON lines, or Serf's tab-separated ones.
std::string handler_member_lines(const std::vector<member>& members, bool serf) {
  std::string out;
  for (const auto& m : members) {
    if (serf) {
      std::string tags;
      for (const auto& [k, v] : m.tags) {
        if (!tags.empty()) tags += ',';
        tags += k;
        tags += '=';
        tags += v;
      }
      const auto role = m.tags.find("role");
      out += serf_clean(m.name);
      out += '\t';
      out += go_ip_string(m.addr);
      out += '\t';
      out += serf_clean(role == m.tags.end() ? std::string_view{} : std::string_view{role->second});
      out += '\t';
      out += serf_clean(tags);
      out += '\n';
    } else {
      nlohmann::ordered_json j;
      j["name"] = m.name;
      j["addr"] = m.addr.ip_string();
      j["port"] = m.addr.port();
      j["status"] = std::string(status_names[static_cast<std::size_t>(m.state)]);
      j["incarnation"] = m.incarnation;
      auto tags = nlohmann::ordered_json::object();
      for (const auto& [k, v] : m.tags) tags[k] = v;
      j["tags"] = std::move(tags);
      // Names and tags are bytes; invalid UTF-8 becomes U+FFFD, never a throw.
      out += j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
      out += '\n';
    }
  }
  return out;
}

/// pipe2(O_CLOEXEC) with both ends at 3 or above, so the dup2 onto 0-2 in
/// the child never overwrites another of its pipes.
bool make_handler_pipe(std::array<int, 2>& fds) {
  if (::pipe2(fds.data(), O_CLOEXEC) != 0) return false;
  for (auto& fd : fds) {
    if (fd >= 3) continue;
    const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    const int saved = errno;
    ::close(fd);
    fd = moved;
    if (moved < 0) {
      for (const int other : fds)
        if (other >= 0) ::close(other);
      errno = saved;
      return false;
    }
  }
  return true;
}

void close_handler_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

/// Is `key` one the runner sets (for this run or another kind of event)?
/// Such variables are never inherited: a daemon started from a handler must
/// not pass its parent's SHOAL_USER_EVENT on to a membership event.
bool handler_reserved_variable(std::string_view key, bool serf) {
  static constexpr std::array<std::string_view, 7> shoal_names = {
      "SHOAL_EVENT",      "SHOAL_SELF_NAME",  "SHOAL_SELF_ADDRESS", "SHOAL_USER_EVENT",
      "SHOAL_USER_LTIME", "SHOAL_QUERY_NAME", "SHOAL_QUERY_LTIME"};
  static constexpr std::array<std::string_view, 7> serf_names = {
      "SERF_EVENT",      "SERF_SELF_NAME",  "SERF_SELF_ROLE",  "SERF_USER_EVENT",
      "SERF_USER_LTIME", "SERF_QUERY_NAME", "SERF_QUERY_LTIME"};
  const auto in = [&](const auto& names) {
    return std::find(names.begin(), names.end(), key) != names.end();
  };
  if (in(shoal_names) || key.rfind("SHOAL_TAG_", 0) == 0) return true;
  return serf && (in(serf_names) || key.rfind("SERF_TAG_", 0) == 0);
}

/// The environment of a run: the daemon's, less the variables the runner
/// sets, then `vars`.
std::vector<std::string> handler_environment(
    const std::vector<std::pair<std::string, std::string>>& vars, bool serf) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry{*e};
    if (handler_reserved_variable(entry.substr(0, entry.find('=')), serf)) continue;
    env.emplace_back(entry);
  }
  for (const auto& [k, v] : vars) env.push_back(k + "=" + v);
  return env;
}

struct spawned_handler {
  pid_t pid = -1;
  int in_w = -1;
  int out_r = -1;
  int err_r = -1;  ///< -1 when stderr shares stdout's pipe
};

/// posix_spawn(p) with pipes on 0-2, a new process group, SIGPIPE back to its
/// default, an empty signal mask and every descriptor above 2 closed.
/// Returns 0 or an errno value.
int spawn_handler(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                  bool search_path, bool merge_stderr, spawned_handler& out) {
  std::array<int, 2> in{-1, -1}, o{-1, -1}, er{-1, -1};
  if (!make_handler_pipe(in)) return errno;
  if (!make_handler_pipe(o)) {
    const int e = errno;
    close_handler_fd(in[0]);
    close_handler_fd(in[1]);
    return e;
  }
  if (!merge_stderr && !make_handler_pipe(er)) {
    const int e = errno;
    for (int* fd : {&in[0], &in[1], &o[0], &o[1]}) close_handler_fd(*fd);
    return e;
  }

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc == 0) {
    rc = posix_spawnattr_init(&attr);
    if (rc != 0) posix_spawn_file_actions_destroy(&fa);
  }
  if (rc == 0) {
    sigset_t mask, defaults;
    sigemptyset(&mask);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    if (rc == 0) rc = posix_spawn_file_actions_adddup2(&fa, merge_stderr ? o[1] : er[1], 2);
      // The pipes are O_CLOEXEC; this also closes whatever else a library
      // may have opened without it (glibc 2.34 and later).
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    if (rc == 0) rc = posix_spawnattr_setpgroup(&attr, 0);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &mask);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &defaults);
    if (rc == 0) {
      rc = posix_spawnattr_setflags(
          &attr, static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                    POSIX_SPAWN_SETSIGDEF));
    }
    if (rc == 0) {
      rc = search_path ? ::posix_spawnp(&out.pid, args[0], &fa, &attr, args.data(), envp.data())
                       : ::posix_spawn(&out.pid, args[0], &fa, &attr, args.data(), envp.data());
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
  }
  close_handler_fd(in[0]);
  close_handler_fd(o[1]);
  close_handler_fd(er[1]);
  if (rc != 0) {
    close_handler_fd(in[1]);
    close_handler_fd(o[0]);
    close_handler_fd(er[0]);
    out.pid = -1;
    return rc;
  }
  out.in_w = in[1];
  out.out_r = o[0];
  out.err_r = er[0];
  return 0;
}

/// pidfd_open(2) (Linux 5.3; always O_CLOEXEC), or -1. Through syscall():
/// glibc 2.36's <sys/pidfd.h> declares it without extern "C".
int open_handler_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0u));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

/// Waits (blocking, bounded) for a killed child; the destructor's last resort.
bool reap_handler_blocking(pid_t pid, steady_clock::duration limit) {
  const auto until = steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (r < 0 && errno != EINTR) return false;
    if (steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace

// --- parsing ------------------------------------------------------------

bool handler_spec::wants(std::string_view type, std::string_view name) const {
  if (filters.empty()) return true;
  for (const auto& f : filters) {
    const std::string_view fv{f};
    if (fv == "*" || fv == type) return true;
    for (const std::string_view kind : {std::string_view{"user"}, std::string_view{"query"}}) {
      if (type != kind) continue;
      if (fv.size() > kind.size() && fv.substr(0, kind.size()) == kind && fv[kind.size()] == ':') {
        const auto want = fv.substr(kind.size() + 1);
        // "user:" alone: Serf reads an empty name as "every user event".
        if (want.empty() || want == name) return true;
      }
    }
  }
  return false;
}

std::optional<std::vector<std::string>> split_command_line(std::string_view text,
                                                           std::string& error) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  enum class quote { none, single, dbl } q = quote::none;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\0') {
      error = "a NUL byte in the command line";
      return std::nullopt;
    }
    if (q == quote::single) {
      if (c == '\'') {
        q = quote::none;
      } else {
        cur += c;
      }
      continue;
    }
    if (q == quote::dbl) {
      if (c == '"') {
        q = quote::none;
      } else if (c == '\\' && i + 1 < text.size() &&
                 std::string_view{"\"\\$`"}.find(text[i + 1]) != std::string_view::npos) {
        cur += text[++i];
      } else {
        cur += c;
      }
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\'') {
      q = quote::single;
    } else if (c == '"') {
      q = quote::dbl;
    } else if (c == '\\') {
      if (i + 1 == text.size()) {
        error = "a backslash at the end of the command line";
        return std::nullopt;
      }
      if (text[i + 1] == '\0') {
        error = "a NUL byte in the command line";
        return std::nullopt;
      }
      cur += text[++i];
    } else {
      cur += c;
    }
  }
  if (q != quote::none) {
    error = q == quote::single ? "unterminated single quote in the command line"
                               : "unterminated double quote in the command line";
    return std::nullopt;
  }
  if (in_word) words.push_back(std::move(cur));
  if (words.empty()) {
    error = "empty command line";
    return std::nullopt;
  }
  return words;
}

std::optional<handler_spec> parse_handler_flag(std::string_view text, std::string& error) {
  handler_spec spec;
  const auto eq = text.find('=');
  const std::string_view types =
      eq == std::string_view::npos ? std::string_view{} : text.substr(0, eq);
  const std::string_view program = eq == std::string_view::npos ? text : text.substr(eq + 1);
  if (!types.empty()) {
    std::size_t pos = 0;
    for (;;) {
      const auto comma = types.find(',', pos);
      std::string_view t =
          types.substr(pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
      while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
      while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
      const bool named = t.rfind("user:", 0) == 0 || t.rfind("query:", 0) == 0;
      if (!(t == "*" || is_handler_event_type(t) || named)) {
        error = "unknown event type \"" + std::string(t) +
                "\" in handler (known: member-join, member-leave, member-failed, member-update, "
                "member-reap, user, user:NAME, query, query:NAME, *)";
        if (t.find_first_of(" /") != std::string_view::npos)
          error += "; a program containing '=' needs its types first, e.g. \"*=PROGRAM\"";
        return std::nullopt;
      }
      spec.filters.emplace_back(t);
      if (comma == std::string_view::npos) break;
      pos = comma + 1;
    }
  }
  std::string why;
  if (!split_command_line(program, why)) {
    error = "handler program: " + why;
    return std::nullopt;
  }
  spec.program = std::string(program);
  return spec;
}

// --- the runner's state --------------------------------------------------

/// A rate-limited warning: allow() is true when it may be logged now, and
/// then says how many were suppressed since the last one. (Outside the
/// anonymous namespace: slot holds two.)
struct handler_warn_gate {
  static constexpr auto interval = std::chrono::seconds(10);  ///< per handler and kind of warning
  steady_clock::time_point next{};
  std::uint64_t suppressed = 0;
  bool allow(std::uint64_t& was_suppressed) {
    const auto now = steady_clock::now();
    if (now < next) {
      ++suppressed;
      return false;
    }
    was_suppressed = suppressed;
    suppressed = 0;
    next = now + interval;
    return true;
  }
};

/// One dispatched event, shared by the handlers that run it.
struct handler_runner::job {
  std::string type;
  std::string name;
  std::uint64_t ltime = 0;
  std::vector<member> members;
  bytes payload;
  std::function<void(std::string)> on_response;
  std::size_t max_response = 0;
  bool answered = false;  ///< a query has one answer, from the first handler that succeeds
  bool coalescable = false;
  steady_clock::time_point ready_at{};  ///< not started before (coalescing)
};

/// One handler: its spec, its queue, its run in progress.
struct handler_runner::slot {
  handler_spec spec;
  std::optional<std::vector<std::string>> argv;  ///< default mode; nullopt: does not split
  std::string split_error;
  std::string shown;  ///< the program, escaped and bounded, for the log
  std::deque<std::shared_ptr<job>> queue;
  std::shared_ptr<run> current;
  handler_warn_gate fail_gate;
  handler_warn_gate drop_gate;
  std::unique_ptr<asio::steady_timer> hold;  ///< wakes pump() when a held job is due
};

/// One program running: its pipes, its exit watch, its timeout.
struct handler_runner::run {
  explicit run(asio::io_context& ctx)
      : in(ctx), out(ctx), err(ctx), exit_watch(ctx), poll(ctx), timer(ctx) {}

  handler_runner* owner = nullptr;  ///< null once the runner is gone
  slot* s = nullptr;
  std::shared_ptr<job> j;
  pid_t pid = -1;
  steady_clock::time_point started;
  std::string stdin_data;
  asio::posix::stream_descriptor in, out, err, exit_watch;
  asio::steady_timer poll;
  asio::steady_timer timer;
  std::chrono::milliseconds poll_every{1};
  std::array<char, 4096> out_buf{};
  std::array<char, 4096> err_buf{};
  std::string out_text, err_text;
  std::size_t out_keep = 0;
  std::size_t out_total = 0, err_total = 0;
  bool out_open = false, err_open = false;
  bool exited = false;
  bool status_known = false;
  int status = 0;
  bool timed_out = false;
  bool stopped = false;
  bool done = false;
};

// --- the runner ----------------------------------------------------------

handler_runner::handler_runner(asio::io_context& ctx, std::vector<handler_spec> specs,
                               std::shared_ptr<spdlog::logger> log)
    : ctx_(ctx), log_(std::move(log)) {
  // A handler that exits without reading its stdin makes our write fail;
  // with SIGPIPE at its default that write would kill the daemon instead.
  // shoald does not otherwise ignore SIGPIPE (its sockets use MSG_NOSIGNAL),
  // so the runner does, unless someone installed a handler of their own.
  struct sigaction old {};
  if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    ::sigaction(SIGPIPE, &ign, nullptr);
  }
  for (auto& spec : specs) {
    auto s = std::make_unique<slot>();
    s->spec = std::move(spec);
    s->shown = escape_handler_text(s->spec.program, handler_logged_program);
    if (!s->spec.serf_compat) {
      s->argv = split_command_line(s->spec.program, s->split_error);
      if (!s->argv) log_->error("handler program={} cannot run: {}", s->shown, s->split_error);
    }
    slots_.push_back(std::move(s));
  }
}

handler_runner::~handler_runner() {
  // SIGKILL every group first (a program that has exited may have left
  // children holding its output), then reap them all against one deadline.
  for (auto& s : slots_) {
    if (s->current) ::kill(-s->current->pid, SIGKILL);
  }
  const auto until = steady_clock::now() + handler_reap_wait;
  for (auto& s : slots_) {
    auto r = s->current;
    if (!r) continue;
    if (!r->exited) {
      const auto left = std::max(until - steady_clock::now(), steady_clock::duration::zero());
      if (!reap_handler_blocking(r->pid, left))
        log_->warn("handler pid={} program={} not reaped after SIGKILL", r->pid, s->shown);
    }
    boost::system::error_code ec;
    r->in.close(ec);
    r->out.close(ec);
    r->err.close(ec);
    r->exit_watch.close(ec);
    r->poll.cancel();
    r->timer.cancel();
    r->owner = nullptr;  // the completions still queued on the io_context touch nothing
    r->s = nullptr;
    r->done = true;
  }
}

void handler_runner::set_self(handler_self self) {
  self_ = std::move(self);
}

std::size_t handler_runner::running() const {
  return static_cast<std::size_t>(std::count_if(
      slots_.begin(), slots_.end(), [](const auto& s) { return s->current != nullptr; }));
}

std::size_t handler_runner::queued() const {
  std::size_t n = 0;
  for (const auto& s : slots_) n += s->queue.size();
  return n;
}

void handler_runner::dispatch(const handler_event& ev) {
  if (stopped_) return;
  if (!is_handler_event_type(ev.type)) {
    log_->error("handler event of unknown type={} not dispatched",
                escape_handler_text(ev.type, 64));
    return;
  }
  std::shared_ptr<job> j;
  for (auto& sp : slots_) {
    slot& s = *sp;
    if (!s.spec.wants(ev.type, ev.name)) continue;
    const bool coalesce =
        ev.type == "user" && ev.coalescable && s.spec.coalesce > std::chrono::milliseconds::zero();
    if (coalesce) {
      // A waiting event of this name takes the newer payload.
      auto it = std::find_if(s.queue.begin(), s.queue.end(), [&](const std::shared_ptr<job>& q) {
        return q->coalescable && q->type == "user" && q->name == ev.name;
      });
      if (it != s.queue.end()) {
        auto fresh = std::make_shared<job>(**it);
        fresh->payload = ev.payload;
        fresh->ltime = ev.ltime;
        *it = std::move(fresh);
        ++stats_.handler_coalesced;
        continue;
      }
    }
    const bool idle = !s.current && s.queue.empty();
    if (!idle && s.queue.size() >= s.spec.queue_limit) {
      ++stats_.handler_dropped;
      std::uint64_t suppressed = 0;
      if (s.drop_gate.allow(suppressed)) {
        log_->warn("handler queue full program={} event={} limit={} suppressed={}", s.shown,
                   ev.type, s.spec.queue_limit, suppressed);
      }
      continue;
    }
    if (!j) {
      j = std::make_shared<job>();
      j->type = ev.type;
      j->name = ev.name;
      j->ltime = ev.ltime;
      if (is_member_event_type(ev.type)) {
        j->members = ev.members;
      } else {
        j->payload = ev.payload;
      }
      if (ev.type == "query") {
        j->on_response = ev.on_response;
        j->max_response = std::min(ev.max_response, handler_max_response);
      }
    }
    if (coalesce) {
      auto held = std::make_shared<job>(*j);
      held->coalescable = true;
      held->ready_at = steady_clock::now() + s.spec.coalesce;
      s.queue.push_back(std::move(held));
    } else {
      s.queue.push_back(j);
    }
    pump(s);
  }
}

void handler_runner::stop() {
  if (stopped_) return;
  stopped_ = true;
  std::size_t dropped = 0;
  for (auto& sp : slots_) {
    slot& s = *sp;
    dropped += s.queue.size();
    s.queue.clear();
    if (s.hold) s.hold->cancel();
    if (auto r = s.current) {
      r->stopped = true;
      kill_run(*r);
      maybe_finish(r);
    }
  }
  log_->info("handlers stopped running={} dropped={}", running(), dropped);
}

void handler_runner::pump(slot& s) {
  while (!stopped_ && !s.current && !s.queue.empty()) {
    if (const auto due = s.queue.front()->ready_at; due > steady_clock::now()) {
      // Held for coalescing: come back when it is due.
      if (!s.hold) s.hold = std::make_unique<asio::steady_timer>(ctx_);
      s.hold->expires_at(due);
      s.hold->async_wait([this, &s](const boost::system::error_code& ec) {
        if (!ec) pump(s);
      });
      return;
    }
    auto j = std::move(s.queue.front());
    s.queue.pop_front();
    start(s, j);
  }
}

bool handler_runner::start(slot& s, const std::shared_ptr<job>& j) {
  const auto event_shown =
      j->name.empty() ? j->type : j->type + ":" + escape_handler_text(j->name, 64);
  const auto spawn_failed = [&](const std::string& why) {
    ++stats_.handler_spawn_errors;
    std::uint64_t suppressed = 0;
    if (s.fail_gate.allow(suppressed)) {
      log_->warn("handler cannot start program={} event={}: {} suppressed={}", s.shown, event_shown,
                 why, suppressed);
    }
    return false;
  };
  if (!s.spec.serf_compat && !s.argv) return spawn_failed(s.split_error);

  std::shared_ptr<run> r;
  try {
    const bool serf = s.spec.serf_compat;
    std::vector<std::pair<std::string, std::string>> vars;
    const auto add = [&](std::string k, std::string v) {
      vars.emplace_back(std::move(k), std::move(v));
    };
    add("SHOAL_EVENT", j->type);
    add("SHOAL_SELF_NAME", self_.name);
    add("SHOAL_SELF_ADDRESS", self_.address);
    // Two keys may map to one name; the later (in key order) wins, as Go's
    // exec keeps the last of duplicate variables.
    std::map<std::string, std::string> tag_vars;
    for (const auto& [k, v] : self_.tags) tag_vars["SHOAL_TAG_" + shoal_env_key(k)] = v;
    if (serf) {
      add("SERF_EVENT", j->type);
      add("SERF_SELF_NAME", self_.name);
      const auto role = self_.tags.find("role");
      add("SERF_SELF_ROLE", role == self_.tags.end() ? std::string{} : role->second);
      for (const auto& [k, v] : self_.tags) tag_vars["SERF_TAG_" + serf_env_key(k)] = v;
    }
    for (auto& [k, v] : tag_vars) add(k, v);
    if (j->type == "user") {
      add("SHOAL_USER_EVENT", j->name);
      add("SHOAL_USER_LTIME", std::to_string(j->ltime));
      if (serf) {
        add("SERF_USER_EVENT", j->name);
        add("SERF_USER_LTIME", std::to_string(j->ltime));
      }
    } else if (j->type == "query") {
      add("SHOAL_QUERY_NAME", j->name);
      add("SHOAL_QUERY_LTIME", std::to_string(j->ltime));
      if (serf) {
        add("SERF_QUERY_NAME", j->name);
        add("SERF_QUERY_LTIME", std::to_string(j->ltime));
      }
    }
    const auto env = handler_environment(vars, serf);

    r = std::make_shared<run>(ctx_);
    r->owner = this;
    r->s = &s;
    r->j = j;
    if (is_member_event_type(j->type)) {
      r->stdin_data = handler_member_lines(j->members, serf);
    } else {
      r->stdin_data.assign(j->payload.begin(), j->payload.end());
      // Serf's streamPayload: "most shells read implementations need a newline".
      if (serf && !r->stdin_data.empty() && r->stdin_data.back() != '\n') r->stdin_data += '\n';
    }
    r->out_keep = std::max(j->max_response, handler_output_keep);

    spawned_handler child;
    const std::vector<std::string> sh_argv = {"/bin/sh", "-c", s.spec.program};
    const int rc = spawn_handler(serf ? sh_argv : *s.argv, env, !serf, serf, child);
    if (rc != 0) return spawn_failed(std::strerror(rc));
    r->pid = child.pid;
    r->started = steady_clock::now();
    ++stats_.handler_runs;
    s.current = r;
    log_->debug("handler started program={} event={} pid={}", s.shown, event_shown, r->pid);

    // Registering with the reactor can fail (epoll out of memory or
    // watches): the run is then killed at once and ends as failed.
    boost::system::error_code ec;
    r->in.assign(child.in_w, ec);
    if (ec) close_handler_fd(child.in_w);
    boost::system::error_code ec_out;
    r->out.assign(child.out_r, ec_out);
    if (ec_out) close_handler_fd(child.out_r);
    r->out_open = !ec_out;
    boost::system::error_code ec_err;
    if (child.err_r >= 0) {
      r->err.assign(child.err_r, ec_err);
      if (ec_err) close_handler_fd(child.err_r);
      r->err_open = !ec_err;
    }
    const int pidfd = poll_exits_ ? -1 : open_handler_pidfd(r->pid);
    boost::system::error_code ec_watch;
    if (pidfd >= 0) {
      r->exit_watch.assign(pidfd, ec_watch);
      if (ec_watch) ::close(pidfd);
    }
    if (pidfd >= 0 && !ec_watch) {
      do_wait_exit(r);
    } else {
      do_poll_exit(r);  // kernels before 5.3, or no room for the watch
    }
    if (ec || ec_out || ec_err) {
      log_->error("handler program={} event={}: cannot watch its pipes: {}", s.shown, event_shown,
                  (ec       ? ec
                   : ec_out ? ec_out
                            : ec_err)
                      .message());
      kill_run(*r);
      return true;  // it ends, as failed, once reaped
    }
    do_write(r);
    do_read(r, false);
    if (r->err_open) do_read(r, true);
    r->timer.expires_after(std::max(s.spec.timeout, std::chrono::milliseconds(1)));
    r->timer.async_wait([r](const boost::system::error_code& e) {
      if (r->owner) r->owner->on_timeout(r, e);
    });
    return true;
  } catch (const std::exception& e) {
    // Out of memory. A child already started is killed and reaped here
    // (briefly blocking: it has no reason to linger after SIGKILL).
    if (r && r->pid > 0 && !r->done) {
      kill_run(*r);
      if (!r->exited && reap_handler_blocking(r->pid, std::chrono::seconds(1))) r->exited = true;
      if (r->exited) {
        r->status_known = false;
        finish(r);  // counted as failed
        return false;
      }
      return false;  // still tracked in s.current; the destructor reaps it
    }
    return spawn_failed(e.what());
  }
}

void handler_runner::do_write(const std::shared_ptr<run>& r) {
  if (r->stdin_data.empty()) {
    boost::system::error_code ec;
    r->in.close(ec);
    return;
  }
  asio::async_write(r->in, asio::buffer(r->stdin_data),
                    [r](const boost::system::error_code& ec, std::size_t) {
                      if (r->owner) r->owner->on_write(r, ec);
                    });
}

void handler_runner::on_write(const std::shared_ptr<run>& r, const boost::system::error_code& ec) {
  if (r->done || ec == asio::error::operation_aborted) return;
  if (ec) {
    // EPIPE: the program exited (or closed stdin) without reading it all.
    log_->debug("handler program={} stdin not fully read: {}", r->s->shown, ec.message());
  }
  boost::system::error_code ignored;
  r->in.close(ignored);
  r->stdin_data.clear();
  r->stdin_data.shrink_to_fit();
}

void handler_runner::do_read(const std::shared_ptr<run>& r, bool err) {
  auto& d = err ? r->err : r->out;
  auto& buf = err ? r->err_buf : r->out_buf;
  d.async_read_some(asio::buffer(buf),
                    [r, err](const boost::system::error_code& ec, std::size_t n) {
                      if (r->owner) r->owner->on_read(r, err, ec, n);
                    });
}

void handler_runner::on_read(const std::shared_ptr<run>& r, bool err,
                             const boost::system::error_code& ec, std::size_t n) {
  if (r->done) return;
  auto& text = err ? r->err_text : r->out_text;
  auto& total = err ? r->err_total : r->out_total;
  const auto& buf = err ? r->err_buf : r->out_buf;
  const std::size_t keep = err ? handler_output_keep : r->out_keep;
  if (n > 0) {
    total += n;
    if (text.size() < keep) text.append(buf.data(), std::min(n, keep - text.size()));
  }
  if (ec) {
    // EOF (the normal end), or the descriptor closed at a timeout or stop.
    auto& open = err ? r->err_open : r->out_open;
    if (open) {
      open = false;
      boost::system::error_code ignored;
      (err ? r->err : r->out).close(ignored);
    }
    maybe_finish(r);
    return;
  }
  do_read(r, err);
}

void handler_runner::do_wait_exit(const std::shared_ptr<run>& r) {
  r->exit_watch.async_wait(asio::posix::descriptor_base::wait_read,
                           [r](const boost::system::error_code& ec) {
                             if (r->owner) r->owner->on_exit_ready(r, ec);
                           });
}

void handler_runner::on_exit_ready(const std::shared_ptr<run>& r,
                                   const boost::system::error_code& ec) {
  if (r->done || r->exited || ec == asio::error::operation_aborted) return;
  if (!ec && try_reap(*r)) {
    boost::system::error_code ignored;
    r->exit_watch.close(ignored);
    maybe_finish(r);
    return;
  }
  // Readable but not reapable, or the watch failed: poll instead.
  boost::system::error_code ignored;
  r->exit_watch.close(ignored);
  do_poll_exit(r);
}

void handler_runner::do_poll_exit(const std::shared_ptr<run>& r) {
  if (try_reap(*r)) {
    maybe_finish(r);
    return;
  }
  r->poll.expires_after(r->poll_every);
  r->poll_every = std::min(r->poll_every * 2, std::chrono::milliseconds(50));
  r->poll.async_wait([r](const boost::system::error_code& ec) {
    if (!r->owner || r->done || r->exited || ec) return;
    r->owner->do_poll_exit(r);
  });
}

bool handler_runner::try_reap(run& r) {
  if (r.exited) return true;
  for (;;) {
    int status = 0;
    const pid_t got = ::waitpid(r.pid, &status, WNOHANG);
    if (got == r.pid) {
      r.exited = true;
      r.status_known = true;
      r.status = status;
      return true;
    }
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      // ECHILD: reaped elsewhere (SIGCHLD set to SIG_IGN); the status is lost.
      r.exited = true;
      return true;
    }
    return false;
  }
}

void handler_runner::on_timeout(const std::shared_ptr<run>& r,
                                const boost::system::error_code& ec) {
  if (r->done || ec) return;
  r->timed_out = true;
  kill_run(*r);
  std::uint64_t suppressed = 0;
  if (r->s->fail_gate.allow(suppressed)) {
    log_->warn("handler timed out program={} event={} timeout_ms={} pid={} suppressed={}",
               r->s->shown, r->j->type, r->s->spec.timeout.count(), r->pid, suppressed);
  }
  maybe_finish(r);
}

void handler_runner::kill_run(run& r) {
  // The whole group: a shell's children too. Once the program has exited
  // its group may still hold the output open.
  if (r.pid > 0) ::kill(-r.pid, SIGKILL);
  boost::system::error_code ec;
  r.in.close(ec);
  r.out.close(ec);
  r.err.close(ec);
  r.out_open = false;
  r.err_open = false;
}

void handler_runner::maybe_finish(const std::shared_ptr<run>& r) {
  if (!r->done && r->exited && !r->out_open && !r->err_open) finish(r);
}

void handler_runner::finish(std::shared_ptr<run> r) {  // a copy: s.current is reset below
  r->done = true;
  slot& s = *r->s;
  boost::system::error_code ignored;
  r->in.close(ignored);
  r->exit_watch.close(ignored);
  r->poll.cancel();
  r->timer.cancel();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - r->started)
          .count();
  const bool exited_normally = r->status_known && WIFEXITED(r->status);
  const int code = exited_normally ? WEXITSTATUS(r->status) : -1;
  const int sig = r->status_known && WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0;
  const bool ok = !r->timed_out && !r->stopped && exited_normally && code == 0;
  const auto& j = *r->j;
  const auto event_shown = j.name.empty() ? j.type : j.type + ":" + escape_handler_text(j.name, 64);

  bool truncated = r->out_total > r->out_text.size() || r->err_total > r->err_text.size();
  std::optional<std::string> answer;
  if (ok && j.type == "query" && j.on_response && !r->j->answered &&
      !(s.spec.serf_compat && r->out_total == 0)) {
    answer = r->out_text.substr(0, j.max_response);
    if (r->out_total > j.max_response) truncated = true;
  }
  if (truncated) ++stats_.handler_output_truncated;

  if (r->stopped) {
    ++stats_.handler_stopped;
  } else if (r->timed_out) {
    ++stats_.handler_timed_out;
  } else if (ok) {
    ++stats_.handler_succeeded;
  } else {
    ++stats_.handler_failed;
  }

  if (sig != 0) {
    log_->info("handler finished program={} event={} exit=-1 signal={} ms={}{}{}", s.shown,
               event_shown, sig, ms, r->timed_out ? " timed_out=true" : "",
               r->stopped ? " stopped=true" : "");
  } else {
    log_->info("handler finished program={} event={} exit={} ms={}{}{}", s.shown, event_shown, code,
               ms, r->timed_out ? " timed_out=true" : "", r->stopped ? " stopped=true" : "");
  }
  if (!r->out_text.empty()) {
    log_->info("handler stdout program={} event={} bytes={}: {}", s.shown, event_shown,
               r->out_total, escape_handler_text(r->out_text, handler_logged_output));
  }
  if (!r->err_text.empty()) {
    log_->info("handler stderr program={} event={} bytes={}: {}", s.shown, event_shown,
               r->err_total, escape_handler_text(r->err_text, handler_logged_output));
  }
  if (!ok && !r->timed_out && !r->stopped) {
    std::uint64_t suppressed = 0;
    if (s.fail_gate.allow(suppressed)) {
      log_->warn("handler failed program={} event={} exit={} signal={} suppressed={}", s.shown,
                 event_shown, code, sig, suppressed);
    }
  }

  auto job_ref = r->j;  // keeps the job (and its callback) while it runs
  s.current.reset();
  r->s = nullptr;
  r->owner = nullptr;  // late completions of this run touch nothing
  if (answer) {
    job_ref->answered = true;
    try {
      job_ref->on_response(std::move(*answer));
    } catch (const std::exception& e) {
      log_->error("handler query response callback threw: {}", e.what());
    } catch (...) {
      log_->error("handler query response callback threw");
    }
  }
  pump(s);
}

}  // namespace shoal::daemon
