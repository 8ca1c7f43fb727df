// Event handlers: external programs shoald runs for cluster events, as Serf's
// `-event-handler` does. handlers.cpp opens with the whole contract (what a
// handler gets in its environment and on stdin, what becomes of its output,
// timeouts, queues); this header is the interface the agent uses.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>

#include <shoal/core.hpp>
#include <shoal/member.hpp>

namespace shoal::daemon {

/// One configured handler.
struct handler_spec {
  /// Event filters, Serf's syntax: member-join member-leave member-failed
  /// member-update member-reap user user:NAME query query:NAME, and `*`
  /// (everything). "member-leave" is a graceful departure. Empty: every event.
  std::vector<std::string> filters;
  /// The command line. By default split by split_command_line() and executed
  /// directly (PATH searched, no shell); with serf_compat given to /bin/sh -c.
  std::string program;
  /// Serf's contract: /bin/sh -c PROGRAM, the SERF_* variables beside the
  /// SHOAL_* ones, Serf's tab-separated member lines on stdin, a newline
  /// added to a payload that lacks one, stderr merged into stdout, and a
  /// query answered only when that output is not empty.
  bool serf_compat = false;
  /// A run (the program and whatever holds its stdout/stderr open) that lasts
  /// longer is killed: SIGKILL to its process group, counted as timed out.
  /// Values below 1 ms count as 1 ms.
  std::chrono::milliseconds timeout{30000};
  /// Events waiting for this handler (the one running not counted); more are
  /// dropped, counted and logged (rate-limited).
  std::size_t queue_limit = 128;
  /// Coalescing of user events sent with `coalesce` (0: off): such an event
  /// waits this long before it runs, and a later one of the same name that
  /// comes while it waits replaces it (counted in handler_coalesced), so a
  /// burst runs the handler once, with the last payload.
  std::chrono::milliseconds coalesce{0};

  /// Does this handler run for an event of `type` (as SHOAL_EVENT) and, for
  /// user events and queries, `name`?
  bool wants(std::string_view type, std::string_view name) const;
};

/// Parses "[TYPES=]PROGRAM" as Serf does (`member-join,member-leave=./rebalance.sh`,
/// `user:deploy=./d.sh`, `./all.sh`): the text up to the first '=' is a
/// comma-separated list of types (empty: every event), each checked; use
/// `*=PROGRAM` when PROGRAM itself contains '='. PROGRAM must split
/// (split_command_line). The result is not serf_compat. On failure returns
/// nullopt and says why in `error` (naming an unknown type).
std::optional<handler_spec> parse_handler_flag(std::string_view text, std::string& error);

/// Splits a command line into argv as a shell would, without expanding
/// anything: blanks separate words; '...' quotes everything up to the next
/// '; "..." quotes with \" \\ \$ \` as escapes (any other backslash stays);
/// outside quotes a backslash takes the next byte literally; quoted parts
/// join adjacent text (a'b c'd is one word). Errors: an unterminated quote, a
/// trailing backslash, a NUL byte, no word at all.
std::optional<std::vector<std::string>> split_command_line(std::string_view text,
                                                           std::string& error);

/// This daemon, as handlers see it (SHOAL_SELF_*, SHOAL_TAG_*).
struct handler_self {
  std::string name;
  std::string address;
  tag_map tags;
};

/// One event for the handlers.
struct handler_event {
  /// member-join, member-leave, member-failed, member-update, member-reap,
  /// user or query (anything else is refused by dispatch()).
  std::string type;
  /// Membership events: one stdin line per member.
  std::vector<member> members;
  /// User event or query name.
  std::string name;
  std::uint64_t ltime = 0;
  /// User event or query payload, written to stdin as is.
  bytes payload;
  /// Queries only: called once with the handler's stdout (at most
  /// max_response bytes; longer is truncated and counted) when it exits 0,
  /// not called otherwise. With several matching handlers, the first to
  /// succeed answers (a query has one answer per node, as in Serf). Called
  /// on the io_context's thread; it may dispatch() or stop(), not destroy
  /// the runner. An exception from it is caught and logged.
  std::function<void(std::string)> on_response;
  /// Clamped to 1 MiB.
  std::size_t max_response = 1024;
  /// User events: the sender allowed coalescing (handler_spec::coalesce).
  bool coalescable = false;
};

/// The runner's counters, each as X(name, help), in the manner of
/// SHOAL_SERVER_COUNTERS (server.hpp). runs = succeeded + failed +
/// timed_out + stopped, once nothing is running.
#define SHOAL_HANDLER_COUNTERS(X)                                                              \
  X(handler_runs, "event handler programs started")                                            \
  X(handler_succeeded, "handler runs that exited 0")                                           \
  X(handler_failed, "handler runs that exited non-zero or were killed by a signal")            \
  X(handler_timed_out, "handler runs killed at their timeout (SIGKILL to the process group)")  \
  X(handler_stopped, "handler runs killed because the runner stopped")                         \
  X(handler_dropped, "events not run by a handler because its queue was full")                 \
  X(handler_spawn_errors, "handler programs that could not be started (no such program, ...)") \
  X(handler_coalesced, "user events replaced by a later one of the same name (coalesce)")      \
  X(handler_output_truncated,                                                                  \
    "handler runs whose stdout, stderr or query answer was longer than what is kept")

struct handler_stats {
#define SHOAL_FIELD_(name, help) std::uint64_t name = 0;
  SHOAL_HANDLER_COUNTERS(SHOAL_FIELD_)
#undef SHOAL_FIELD_
};

/// Calls f(name, help, value) for every counter of SHOAL_HANDLER_COUNTERS.
template <class F>
void visit_counters(const handler_stats& s, F&& f) {
#define SHOAL_VISIT_(name, help) f(#name, help, s.name);
  SHOAL_HANDLER_COUNTERS(SHOAL_VISIT_)
#undef SHOAL_VISIT_
}

/// Runs the handlers' programs on `ctx`'s thread without ever blocking it:
/// one run at a time per handler, handlers independent of each other.
/// Everything (dispatch, stop, the callbacks) happens on that one thread.
/// The constructor sets SIGPIPE to SIG_IGN when it is at its default (a
/// handler that does not read its stdin must not kill the daemon); children
/// get the default back.
class handler_runner {
 public:
  handler_runner(boost::asio::io_context& ctx, std::vector<handler_spec> specs,
                 std::shared_ptr<spdlog::logger> log);
  /// Kills the running children (their process groups) and reaps them.
  ~handler_runner();
  handler_runner(const handler_runner&) = delete;
  handler_runner& operator=(const handler_runner&) = delete;

  /// Who this daemon is, for the environment of the runs started after.
  void set_self(handler_self self);
  /// Queues the event for every handler that wants it and starts those that
  /// are idle. Never blocks.
  void dispatch(const handler_event& ev);
  /// Kills the running children and drops the queues; dispatch() is a no-op
  /// afterwards. The killed runs end (and running() drops) once they are
  /// reaped, on the io_context or at the latest in the destructor.
  void stop();

  const handler_stats& stats() const { return stats_; }
  /// Handlers with a run in progress.
  std::size_t running() const;
  /// Events waiting, over all handlers.
  std::size_t queued() const;
  /// Learn of exits by polling waitpid(WNOHANG) instead of through a pidfd
  /// (which the runner uses, and falls back from on kernels before 5.3).
  /// For tests; affects later runs.
  void set_exit_polling(bool on) { poll_exits_ = on; }

 private:
  struct job;
  struct run;
  struct slot;

  void pump(slot& s);
  bool start(slot& s, const std::shared_ptr<job>& j);
  void do_read(const std::shared_ptr<run>& r, bool err);
  void on_read(const std::shared_ptr<run>& r, bool err, const boost::system::error_code& ec,
               std::size_t n);
  void do_write(const std::shared_ptr<run>& r);
  void on_write(const std::shared_ptr<run>& r, const boost::system::error_code& ec);
  void do_wait_exit(const std::shared_ptr<run>& r);
  void on_exit_ready(const std::shared_ptr<run>& r, const boost::system::error_code& ec);
  void do_poll_exit(const std::shared_ptr<run>& r);
  bool try_reap(run& r);
  void on_timeout(const std::shared_ptr<run>& r, const boost::system::error_code& ec);
  void kill_run(run& r);
  void maybe_finish(const std::shared_ptr<run>& r);
  void finish(std::shared_ptr<run> r);

  boost::asio::io_context& ctx_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<std::unique_ptr<slot>> slots_;
  handler_self self_;
  handler_stats stats_;
  bool stopped_ = false;
  bool poll_exits_ = false;
};

}  // namespace shoal::daemon
