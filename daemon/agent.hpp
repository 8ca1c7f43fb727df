// shoald's agent: one shoal::node, the socket API's commands, persistence in
// --data-dir, cluster-wide key operations, signals and the metrics listener.
//
// One class, one file per concept:
//   agent.cpp      start-up, the run loop, signals, SIGHUP reload, shutdown
//                  (and the `leave` command), persistence of state and keyring
//   commands.cpp   the socket commands on this node: members, member, join,
//                  force-leave, tags, info (on_request dispatches every command)
//   keys.cpp       the `keys` command: cluster-wide key operations, run as
//                  the built-in query `_shoal.keys`
//   events.cpp     the `event` command: user events gossiped to every member
//                  and delivered to the `user` streams of every daemon
//   queries.cpp    the `query` and `respond` commands: queries gossiped to the
//                  members their filters match, acks and responses sent back
//                  to the asker directly; the built-in `_shoal.ping`; the
//                  entry of every daemon-to-daemon message
//   stats.cpp      the counters: the `stats` command and the /metrics text
// Around it: shoald.cpp (main), config.* (flags, TOML, environment),
// persist.* (files in --data-dir), key_text.* (keys as base64, new keys),
// server.* (the socket, sessions, streams), frame.hpp (framing and msgpack
// helpers), matcher.* (the filters' patterns), metrics.* (the HTTP listener).
// shoalctl.cpp and client.* are the other side of the socket.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <shoal/node.hpp>

#include "config.hpp"
#include "handlers.hpp"
#include "peer_messages.hpp"
#include "persist.hpp"
#include "recent_ids.hpp"
#include "server.hpp"

namespace shoal::daemon {

class metrics_server;

class agent : public request_handler {
 public:
  /// `argv` is kept for SIGHUP reloads (the same flags, the file re-read).
  agent(daemon_config cfg, int argc, char** argv);
  ~agent() override;

  /// Runs until SIGTERM/SIGINT or a `leave` command; returns the exit code.
  int run();

  bool on_request(const std::shared_ptr<session>& s, std::uint64_t id, std::string_view cmd,
                  const msgpack::object& args) override;
  std::vector<member> snapshot() override;

  /// Prometheus text exposition of everything counted (metrics listener).
  std::string metrics_text() const;

 private:
  /// A query this daemon asked (a client's `query`, or `keys`), by qid.
  struct asked_query {
    std::shared_ptr<session> s;  ///< the asking client
    std::uint64_t req_id = 0;
    std::string name;
    std::set<std::string> acks;
    std::set<std::string> responders;
    std::chrono::steady_clock::time_point started;
    std::unique_ptr<boost::asio::steady_timer> timer;
    // `keys` only: the operation, members expected, their results.
    std::string key_op;
    std::size_t nodes = 0;
    std::map<std::string, peer::key_result> key_results;
  };
  /// A query received here that local clients may answer, by handle.
  struct received_query {
    std::string origin;
    std::uint64_t qid = 0;
    std::string name;
    std::chrono::steady_clock::time_point deadline;
    bool responded = false;
  };

  std::string start_node();
  void load_persisted();
  void schedule_save();
  void save_state();
  void save_keyring();
  /// DATA_DIR/tags.json when present and valid over `base` (else nullopt,
  /// logged when unusable).
  std::optional<tag_map> load_tags_file(const daemon_config& base);
  void save_tags();
  std::string keyring_path() const;
  void on_signal(int sig);
  void reload();
  void shutdown(bool leave, std::shared_ptr<session> s = nullptr, std::uint64_t id = 0);

  void cmd_members(const std::shared_ptr<session>& s, std::uint64_t id,
                   const msgpack::object& args);
  void cmd_member(const std::shared_ptr<session>& s, std::uint64_t id, const msgpack::object& args);
  void cmd_join(const std::shared_ptr<session>& s, std::uint64_t id, const msgpack::object& args);
  void cmd_force_leave(const std::shared_ptr<session>& s, std::uint64_t id,
                       const msgpack::object& args);
  void cmd_tags(const std::shared_ptr<session>& s, std::uint64_t id, const msgpack::object& args);
  void cmd_stats(const std::shared_ptr<session>& s, std::uint64_t id);
  void cmd_info(const std::shared_ptr<session>& s, std::uint64_t id);
  void cmd_keys(const std::shared_ptr<session>& s, std::uint64_t id, const msgpack::object& args);
  void cmd_event(const std::shared_ptr<session>& s, std::uint64_t id, const msgpack::object& args);
  void cmd_query(const std::shared_ptr<session>& s, std::uint64_t id, const msgpack::object& args);
  void cmd_respond(const std::shared_ptr<session>& s, std::uint64_t id,
                   const msgpack::object& args);

  // User events (events.cpp).
  std::size_t max_event_bytes() const;
  void on_event(peer::user_event e);
  void deliver_event(const peer::user_event& ev);
  /// A peer's push-pull user state: its clock, and its recent events to
  /// replay while a `join` with replay runs.
  void on_event_state(const bytes& data);

  // Queries (queries.cpp). Every daemon-to-daemon message arrives at
  // on_user_message.
  void on_user_message(const bytes& data);
  /// Sends `q` (from this daemon) to the cluster and handles it here too;
  /// `aq` is recorded under q.qid until q.timeout_ms passes.
  std::string ask(peer::query q, asked_query aq);
  /// Fewer than 64 queries in progress (those of closed clients dropped).
  bool query_slot_free();
  void on_query(peer::query q);
  void on_query_reply(peer::query_reply r);
  /// Acks or answers the query (origin, qid): directly to its origin, or
  /// locally when we asked it.
  void reply_to_query(const std::string& origin, std::uint64_t qid, peer::reply_kind kind,
                      bytes payload);
  bool query_matches_here(const peer::query& q);
  void finish_query(std::uint64_t qid);
  std::chrono::milliseconds default_query_timeout() const;
  std::size_t max_response_bytes() const;
  std::string digest_text() const;

  // Cluster-wide key operations (keys.cpp), the built-in query `_shoal.keys`.
  peer::key_result apply_key_op(const peer::key_op& op);
  void on_key_query(const peer::query& q);
  void finish_keys(asked_query& aq);

  daemon_config cfg_;
  int argc_;
  char** argv_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::io_context ctx_;
  boost::asio::signal_set signals_;
  boost::asio::steady_timer save_timer_;
  server server_;
  std::unique_ptr<node> node_;
  std::unique_ptr<metrics_server> metrics_;
  std::unique_ptr<handler_runner> handlers_;  ///< null without configured handlers
  /// Hands a membership event to the handlers (Serf's event names).
  void run_handlers(const event& ev);
  void update_handler_self();
  persisted_state persisted_;
  bool save_pending_ = false;
  bool stopping_ = false;
  std::thread leaver_;
  struct worker {
    std::thread t;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<worker> workers_;  ///< join commands (in progress or finished)
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::mt19937_64 rng_{std::random_device{}()};
  std::map<std::uint64_t, asked_query> asked_;        ///< by qid
  std::map<std::uint64_t, received_query> received_;  ///< by local handle
  std::uint64_t next_query_handle_ = 1;
  recent_ids seen_queries_{4096, std::chrono::minutes(10)};  ///< (origin, qid) handled here
  std::uint64_t key_ops_rejected_ = 0;
  std::chrono::milliseconds gossip_interval_{200};
  std::size_t max_broadcast_bytes_ = 0;                     ///< the node's max_user_broadcast_bytes
  std::uint64_t event_clock_ = 0;                           ///< Lamport time of our next user event
  recent_ids seen_events_{4096, std::chrono::minutes(10)};  ///< (origin, id) delivered here
  std::deque<peer::user_event> recent_events_;  ///< the newest delivered, sent with push-pulls
  std::deque<std::chrono::steady_clock::time_point> recent_times_;  ///< when each was delivered
  int replaying_ = 0;  ///< `join` commands with replay in progress
  /// Replay stays on this long after such a join: the join's own push-pull
  /// state may be handled after its completion.
  std::chrono::steady_clock::time_point replay_until_{};
  /// Forgets recent events past ten minutes (and updates the push-pull
  /// state) even when no new event comes.
  boost::asio::steady_timer recent_timer_{ctx_};
  void age_recent_events();
};

}  // namespace shoal::daemon
