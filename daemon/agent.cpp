// shoald's agent, start-up to exit: the node's configuration, persisted state
// and keyring loaded, signals (SIGTERM/SIGINT leave, SIGHUP reloads), the
// graceful shutdown and the writes to --data-dir. The socket commands are in
// commands.cpp, the cluster key operations in keys.cpp, the counters in
// stats.cpp (file map: agent.hpp).
#include "agent.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <tuple>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include "metrics.hpp"

namespace shoal::daemon {

namespace asio = boost::asio;

namespace {

constexpr std::size_t max_state_file_bytes = 64u << 20;
constexpr std::size_t max_keyring_file_bytes = 1u << 20;
constexpr std::size_t max_tags_file_bytes = 1u << 20;

std::shared_ptr<spdlog::logger> make_logger(const std::string& level) {
  auto log =
      std::make_shared<spdlog::logger>("shoald", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  log->set_level(spdlog::level::from_str(level));
  log->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %v");
  return log;
}

bool member_counts_for_rejoin(const member& m) {
  return m.state != member_state::left;
}

}  // namespace

agent::agent(daemon_config cfg, int argc, char** argv)
    : cfg_(std::move(cfg)),
      argc_(argc),
      argv_(argv),
      log_(make_logger(cfg_.log_level)),
      signals_(ctx_),
      save_timer_(ctx_),
      server_(ctx_,
              server_limits{cfg_.max_connections, cfg_.max_frame_bytes, cfg_.stream_backlog,
                            cfg_.max_streams_per_connection, secs(cfg_.frame_timeout_s),
                            std::chrono::seconds(5)},
              *this, log_) {}

agent::~agent() {
  if (leaver_.joinable()) leaver_.join();
  for (auto& w : workers_)
    if (w.t.joinable()) w.t.join();
}

std::string agent::keyring_path() const {
  if (!cfg_.keyring_file.empty()) return cfg_.keyring_file;
  if (!cfg_.data_dir.empty()) return cfg_.data_dir + "/keyring.json";
  return {};
}

std::optional<tag_map> agent::load_tags_file(const daemon_config& base) {
  if (cfg_.data_dir.empty()) return std::nullopt;
  tag_map tags;
  std::string msg;
  const auto st =
      load_file(cfg_.data_dir + "/tags.json", max_tags_file_bytes, decode_tags, tags, msg);
  if (st == load_status::corrupt) log_->error("tags file unusable, ignored: {}", msg);
  if (st != load_status::ok) return std::nullopt;
  daemon_config probe = base;
  probe.tags = tags;
  if (auto err = validate(probe)) {
    log_->error("tags file {}/tags.json ignored: {}", cfg_.data_dir, *err);
    return std::nullopt;
  }
  return tags;
}

void agent::save_tags() {
  if (cfg_.data_dir.empty()) return;
  if (auto err = write_file_atomic(cfg_.data_dir + "/tags.json", encode_tags(cfg_.tags));
      !err.empty())
    log_->error("persisting tags failed: {}", err);
}

void agent::load_persisted() {
  if (cfg_.data_dir.empty()) return;
  ::mkdir(cfg_.data_dir.c_str(), 0700);
  // Tags set over the socket outlive a restart: they replace the configured ones.
  if (auto tags = load_tags_file(cfg_)) {
    log_->info("tags from {}/tags.json (set over the socket) replace the configured ones: {}",
               cfg_.data_dir, tags->size());
    cfg_.tags = std::move(*tags);
  }
  std::string msg;
  const auto st =
      load_file(cfg_.data_dir + "/state.json", max_state_file_bytes, decode_state, persisted_, msg);
  if (st == load_status::corrupt)
    log_->error("persisted state unusable, starting without it: {}", msg);
  if (st == load_status::ok)
    log_->info("persisted state loaded: incarnation={} members={}", persisted_.incarnation,
               persisted_.members.size());
}

std::string agent::start_node() {
  // The preset, with the name, tags, addresses, label, seeds and limits configured.
  node_config nc = node_config_of(cfg_);
  nc.protocol.logger = log_;
  max_broadcast_bytes_ = nc.protocol.max_user_broadcast_bytes;
  // One more than the last life's: its claims about us are refuted at once.
  if (persisted_.name == cfg_.name) nc.protocol.initial_incarnation = persisted_.incarnation + 1;
  for (const auto& m : persisted_.members)
    if (m.name != cfg_.name &&
        std::find(nc.seeds.begin(), nc.seeds.end(), m.addr) == nc.seeds.end())
      nc.seeds.push_back(m.addr);
  const std::string kpath = keyring_path();
  if (!kpath.empty()) {
    std::vector<encryption_key> keys;
    std::string msg;
    const auto st = load_file(kpath, max_keyring_file_bytes, decode_keyring, keys, msg);
    if (st == load_status::corrupt)
      log_->error("keyring unusable, starting without encryption: {}", msg);
    if (st == load_status::ok) nc.keys = keys;
  }
  // ICMP is not authenticated: an encrypted cluster trusts refusals only
  // when the operator says so.
  if (!cfg_.refusal_suspicion_timeout_s && !nc.keys.empty())
    nc.protocol.refusal_suspicion_timeout = duration::zero();
  gossip_interval_ =
      std::chrono::duration_cast<std::chrono::milliseconds>(nc.protocol.gossip_interval);
  try {
    node_ = std::make_unique<node>(nc);
  } catch (const std::exception& e) {
    return std::string("config: ") + e.what();
  }
  node_->subscribe([this](const event& ev) {
    asio::post(ctx_, [this, ev] {
      server_.publish(ev);
      run_handlers(ev);
      schedule_save();
    });
  });
  node_->on_user_state(
      [this](const bytes& state) { asio::post(ctx_, [this, state] { on_event_state(state); }); });
  node_->on_user_message([this](const user_message& um) {
    asio::post(ctx_, [this, data = um.data] { on_user_message(data); });
  });
  if (auto ec = node_->start()) return "start: " + ec.message() + " (bind " + cfg_.bind + ")";
  log_->info("shoald started: name={} bind={} port={} preset={} seeds={} encrypted={}", cfg_.name,
             cfg_.bind, node_->port(), cfg_.preset, nc.seeds.size(), !nc.keys.empty());
  log_->info(
      "limits: max_name_length={} max_tag_bytes={} max_members={} max_push_pull_bytes={} "
      "udp_buffer_size={} "
      "max_tcp_sessions={} max_packets_per_source_per_second={} refusal_suspicion_timeout={}s",
      nc.protocol.max_name_length, nc.protocol.max_tag_bytes, nc.protocol.max_members,
      nc.protocol.max_push_pull_bytes, nc.protocol.udp_buffer_size, nc.max_tcp_sessions,
      nc.max_packets_per_source_per_second,
      std::chrono::duration<double>(nc.protocol.refusal_suspicion_timeout).count());
  return {};
}

void agent::run_handlers(const event& ev) {
  if (!handlers_ || stopping_) return;
  const char* type = nullptr;
  switch (ev.type) {
    case event_type::member_joined:
      type = "member-join";
      break;
    case event_type::member_left:
      type = "member-leave";
      break;
    case event_type::member_failed:
      type = "member-failed";
      break;
    case event_type::member_updated:
      type = "member-update";
      break;
    case event_type::member_reaped:
      type = "member-reap";
      break;
    default:
      return;  // suspected and alive: Serf has no handler event for them
  }
  handler_event he;
  he.type = type;
  he.members.push_back(ev.who);
  handlers_->dispatch(he);
  if (ev.who.name == cfg_.name) update_handler_self();
}

void agent::update_handler_self() {
  if (!handlers_ || !node_) return;
  const member self = node_->local_member();
  handlers_->set_self(handler_self{self.name, self.addr.ip_string(), self.tags});
}

int agent::run() {
  load_persisted();
  if (!cfg_.handlers.empty()) {
    handlers_ = std::make_unique<handler_runner>(ctx_, cfg_.handlers, log_);
    log_->info("event handlers: {}", cfg_.handlers.size());
  }
  if (auto err = server_.listen(cfg_.socket, cfg_.socket_mode, cfg_.socket_group); !err.empty()) {
    log_->critical("socket: {}", err);
    return 1;
  }
  if (!cfg_.read_only_socket.empty()) {
    if (auto err = server_.listen(cfg_.read_only_socket, cfg_.read_only_socket_mode,
                                  cfg_.socket_group, true);
        !err.empty()) {
      log_->critical("read_only_socket: {}", err);
      server_.close();
      return 1;
    }
  }
  if (auto err = start_node(); !err.empty()) {
    log_->critical("{}", err);
    server_.close();
    return 1;
  }
  save_state();  // the bumped incarnation is on disk before anyone sees it
  update_handler_self();
  if (!cfg_.metrics_bind.empty()) {
    metrics_ = std::make_unique<metrics_server>(ctx_, *this, log_);
    if (auto err = metrics_->listen(cfg_.metrics_bind); !err.empty()) {
      log_->critical("metrics: {}", err);
      node_->stop();
      server_.close();
      return 1;
    }
  }
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (!ec) on_signal(sig);
  });
  ctx_.run();
  if (leaver_.joinable()) leaver_.join();
  for (auto& w : workers_) w.t.join();
  workers_.clear();
  log_->info("shoald stopped");
  return 0;
}

void agent::on_signal(int sig) {
  if (sig == SIGHUP) {
    reload();
    signals_.async_wait([this](const boost::system::error_code& ec, int s) {
      if (!ec) on_signal(s);
    });
    return;
  }
  log_->info("signal {}: leaving", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  shutdown(true);
}

void agent::reload() {
  int code = 0;
  auto fresh = load_config(argc_, argv_, code);
  if (!fresh) {
    log_->error("SIGHUP: configuration invalid, nothing reloaded");
    return;
  }
  log_->set_level(spdlog::level::from_str(fresh->log_level));
  cfg_.log_level = fresh->log_level;
  auto limits = [](const daemon_config& c) {
    return std::tie(c.max_name_length, c.max_tag_bytes, c.max_members, c.max_push_pull_bytes,
                    c.udp_buffer_size, c.max_tcp_sessions, c.max_packets_per_source_per_second);
  };
  if (limits(*fresh) != limits(cfg_))
    log_->warn("SIGHUP: protocol limits changed; they apply at the next start");
  // Tags set over the socket (tags.json) stay in force over the file's.
  if (auto kept = load_tags_file(*fresh)) fresh->tags = std::move(*kept);
  if (fresh->tags != cfg_.tags) {
    if (auto ec = node_->set_tags(fresh->tags)) {
      log_->error("SIGHUP: tags not applied: {}", ec.message());
    } else {
      cfg_.tags = fresh->tags;
    }
  }
  cfg_.keyring_file = fresh->keyring_file;
  const std::string kpath = keyring_path();
  if (!kpath.empty()) {
    std::vector<encryption_key> keys;
    std::string msg;
    if (load_file(kpath, max_keyring_file_bytes, decode_keyring, keys, msg) == load_status::ok) {
      for (const auto& k : keys) (void)node_->install_key(k);
      (void)node_->use_key(keys.front());
      for (const auto& k : node_->list_keys())
        if (std::find(keys.begin(), keys.end(), k) == keys.end()) (void)node_->remove_key(k);
    } else if (!msg.empty()) {
      log_->error("SIGHUP: keyring not reloaded: {}", msg);
    }
  }
  log_->info("SIGHUP: reloaded log_level={} tags={} keys={}", cfg_.log_level, cfg_.tags.size(),
             node_->list_keys().size());
}

void agent::shutdown(bool leave, std::shared_ptr<session> s, std::uint64_t id) {
  if (stopping_) {
    if (s) s->error(id, "not_running", "the daemon is already stopping");
    return;
  }
  stopping_ = true;
  // leave() blocks up to leave_timeout: run it beside the socket loop, which
  // keeps answering until the node is gone.
  leaver_ = std::thread([this, leave, s, id] {
    std::error_code ec;
    if (leave) ec = node_->leave(secs(cfg_.leave_timeout_s));
    asio::post(ctx_, [this, ec, s, id] {
      if (ec) log_->warn("leave: {} (stopping anyway)", ec.message());
      node_->stop();
      save_state();
      if (s) s->reply(id, [](writer& w) { w.pack_map(0); });
      // Give the reply a moment to be written, then close everything.
      auto t = std::make_shared<asio::steady_timer>(ctx_, std::chrono::milliseconds(s ? 100 : 0));
      t->async_wait([this, t](const boost::system::error_code&) {
        server_.close();
        if (metrics_) metrics_->close();
        signals_.cancel();
        save_timer_.cancel();
        for (auto& [qid, q] : asked_)
          if (q.timer) q.timer->cancel();
        if (handlers_) handlers_->stop();
        recent_timer_.cancel();
      });
    });
  });
}

void agent::schedule_save() {
  if (cfg_.data_dir.empty() || stopping_) return;
  // The first members learned are written at once: a crash in the next second
  // must not leave a restart with nobody to rejoin.
  if (persisted_.members.empty() && node_ && node_->members().size() > 1) {
    save_timer_.cancel();
    save_pending_ = false;
    save_state();
    return;
  }
  if (save_pending_) return;
  save_pending_ = true;
  save_timer_.expires_after(std::chrono::seconds(1));
  save_timer_.async_wait([this](const boost::system::error_code& ec) {
    save_pending_ = false;
    if (!ec) save_state();
  });
}

void agent::save_state() {
  if (cfg_.data_dir.empty() || !node_) return;
  persisted_state s;
  s.name = cfg_.name;
  const member self = node_->local_member();
  s.incarnation = std::max(self.incarnation, persisted_.incarnation);
  for (const auto& m : node_->members())
    if (m.name != cfg_.name && member_counts_for_rejoin(m))
      s.members.push_back({m.name, m.addr.to_string()});
  // Members we knew but have not heard of yet this life stay remembered.
  if (s.members.empty()) s.members = persisted_.members;
  if (auto err = write_file_atomic(cfg_.data_dir + "/state.json", encode_state(s)); !err.empty()) {
    log_->error("persisting state failed: {}", err);
    return;
  }
  persisted_ = std::move(s);
}

void agent::save_keyring() {
  const std::string path = keyring_path();
  if (path.empty()) return;
  if (auto err = write_file_atomic(path, encode_keyring(node_->list_keys())); !err.empty())
    log_->error("persisting keyring failed: {}", err);
}

}  // namespace shoal::daemon
