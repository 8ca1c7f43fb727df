// shoald's agent: one shoal::node, the socket API's commands, persistence in
// --data-dir, cluster-wide key operations, signals and the metrics listener.
//
// One class, one file per concept:
//   agent.cpp      start-up, the run loop, signals, SIGHUP reload, shutdown
//                  (and the `leave` command), persistence of state and keyring
//   commands.cpp   the socket commands on this node: members, member, join,
//                  force-leave, tags, info (on_request dispatches every command)
//   keys.cpp       the `keys` command: cluster-wide key operations, gossiped
//                  requests and direct replies between daemons
//   events.cpp     the `event` command: user events gossiped to every member
//                  and delivered to the `user` streams of every daemon
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
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <shoal/node.hpp>

#include "config.hpp"
#include "peer_messages.hpp"
#include "persist.hpp"
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

  /// Prometheus text exposition of everything counted (metrics listener).
  std::string metrics_text() const;

 private:
  struct key_reply {
    std::string error;
    std::vector<encryption_key> keys;
    std::optional<encryption_key> primary;
  };
  struct key_query {
    std::shared_ptr<session> s;
    std::uint64_t req_id = 0;
    std::string op;
    std::size_t nodes = 0;
    std::map<std::string, key_reply> replies;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  std::string start_node();
  void load_persisted();
  void schedule_save();
  void save_state();
  void save_keyring();
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

  // User events (events.cpp).
  std::size_t max_event_bytes() const;
  void on_event(peer::user_event e);
  void deliver_event(const peer::user_event& ev);

  // Every daemon-to-daemon message arrives here (keys.cpp).
  void on_user_message(const bytes& data);
  // Cluster-wide key operations: a request is gossiped to every member, each
  // node applies it and answers the origin directly.
  void on_key_request(const peer::key_request& q);
  void on_key_reply(peer::key_reply r);
  key_reply apply_key_op(const std::string& op, const std::optional<encryption_key>& key);
  void finish_key_query(std::uint64_t qid);

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
  std::map<std::uint64_t, key_query> key_queries_;
  std::map<std::pair<std::string, std::uint64_t>, std::chrono::steady_clock::time_point>
      seen_key_ops_;
  std::uint64_t key_ops_rejected_ = 0;
  std::size_t max_broadcast_bytes_ = 0;  ///< the node's max_user_broadcast_bytes
  std::uint64_t event_clock_ = 0;        ///< Lamport time of our next user event
  std::map<std::pair<std::string, std::uint64_t>, std::chrono::steady_clock::time_point>
      seen_events_;  ///< (origin, id) of user events delivered here
};

}  // namespace shoal::daemon
