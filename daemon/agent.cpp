#include "agent.hpp"

// GCC 12 with -fsanitize=address reports -Wmaybe-uninitialized inside
// libstdc++'s <regex> (std::function members of its NFA states), a false
// positive in library code; it breaks the -Werror sanitizer build.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <sys/stat.h>

#include <csignal>
#include <cstring>
#include <regex>
#include <set>
#include <tuple>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <shoal/version.hpp>

#include "metrics.hpp"
#include "stats_fields.hpp"

namespace shoal::daemon {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

constexpr std::size_t max_state_file_bytes = 64u << 20;
constexpr std::size_t max_keyring_file_bytes = 1u << 20;
constexpr std::size_t max_regex_bytes = 256;
constexpr std::size_t max_join_addrs = 64;
constexpr std::size_t max_seen_key_ops = 4096;
constexpr std::string_view key_request_kind = "shoal.keys";
constexpr std::string_view key_reply_kind = "shoal.keys.reply";

void write_str(writer& w, std::string_view s) {
  w.pack_str(static_cast<std::uint32_t>(s.size()));
  w.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

std::optional<std::string> get_str(const msgpack::object& args, std::string_view key) {
  const auto* o = map_get(args, key);
  if (!o || o->type != msgpack::type::STR) return std::nullopt;
  return std::string(o->via.str.ptr, o->via.str.size);
}

std::chrono::milliseconds secs(double s) {
  return std::chrono::milliseconds(static_cast<long long>(s * 1000));
}

/// Compiles a client's pattern with the polynomial-time (BFS) matcher: a
/// pattern cannot make the daemon backtrack for ever.
std::optional<std::regex> compile(const std::string& pattern, std::string& err) {
  if (pattern.size() > max_regex_bytes) {
    err = "regular expression longer than 256 bytes";
    return std::nullopt;
  }
  try {
    return std::regex(pattern, std::regex::ECMAScript | std::regex_constants::__polynomial);
  } catch (const std::regex_error& e) {
    err = std::string("bad regular expression: ") + e.what();
    return std::nullopt;
  }
}

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

void agent::load_persisted() {
  if (cfg_.data_dir.empty()) return;
  ::mkdir(cfg_.data_dir.c_str(), 0700);
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
  try {
    node_ = std::make_unique<node>(nc);
  } catch (const std::exception& e) {
    return std::string("config: ") + e.what();
  }
  node_->subscribe([this](const event& ev) {
    asio::post(ctx_, [this, ev] {
      server_.publish(ev);
      schedule_save();
    });
  });
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

int agent::run() {
  load_persisted();
  if (auto err = server_.listen(cfg_.socket, cfg_.socket_mode, cfg_.socket_group); !err.empty()) {
    log_->critical("socket: {}", err);
    return 1;
  }
  if (auto err = start_node(); !err.empty()) {
    log_->critical("{}", err);
    server_.close();
    return 1;
  }
  save_state();  // the bumped incarnation is on disk before anyone sees it
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
        for (auto& [qid, q] : key_queries_)
          if (q.timer) q.timer->cancel();
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

bool agent::on_request(const std::shared_ptr<session>& s, std::uint64_t id, std::string_view cmd,
                       const msgpack::object& args) {
  if (cmd == "members")
    cmd_members(s, id, args);
  else if (cmd == "member")
    cmd_member(s, id, args);
  else if (cmd == "join")
    cmd_join(s, id, args);
  else if (cmd == "leave")
    shutdown(true, s, id);
  else if (cmd == "force-leave")
    cmd_force_leave(s, id, args);
  else if (cmd == "tags")
    cmd_tags(s, id, args);
  else if (cmd == "stats")
    cmd_stats(s, id);
  else if (cmd == "info")
    cmd_info(s, id);
  else if (cmd == "keys")
    cmd_keys(s, id, args);
  else
    return false;
  return true;
}

void agent::cmd_members(const std::shared_ptr<session>& s, std::uint64_t id,
                        const msgpack::object& args) {
  std::set<std::string> statuses;
  if (const auto* st = map_get(args, "status")) {
    if (st->type != msgpack::type::ARRAY)
      return s->error(id, "bad_request", "\"status\" must be an array of strings");
    for (std::uint32_t i = 0; i < st->via.array.size; ++i) {
      const auto& e = st->via.array.ptr[i];
      if (e.type != msgpack::type::STR)
        return s->error(id, "bad_request", "\"status\" must be an array of strings");
      std::string v(e.via.str.ptr, e.via.str.size);
      if (v != "alive" && v != "suspect" && v != "failed" && v != "left")
        return s->error(id, "invalid_argument", "status must be alive, suspect, failed or left");
      statuses.insert(v);
    }
  }
  std::optional<std::regex> name_re;
  std::string err;
  if (const auto* n = map_get(args, "name")) {
    if (n->type != msgpack::type::STR)
      return s->error(id, "bad_request", "\"name\" must be a string");
    name_re = compile(std::string(n->via.str.ptr, n->via.str.size), err);
    if (!name_re) return s->error(id, "invalid_argument", "name: " + err);
  }
  std::vector<std::pair<std::string, std::regex>> tag_res;
  if (const auto* t = map_get(args, "tags")) {
    if (t->type != msgpack::type::MAP)
      return s->error(id, "bad_request", "\"tags\" must be a map of strings");
    for (std::uint32_t i = 0; i < t->via.map.size; ++i) {
      const auto& kv = t->via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR)
        return s->error(id, "bad_request", "\"tags\" must be a map of strings");
      auto re = compile(std::string(kv.val.via.str.ptr, kv.val.via.str.size), err);
      if (!re) return s->error(id, "invalid_argument", "tags: " + err);
      tag_res.emplace_back(std::string(kv.key.via.str.ptr, kv.key.via.str.size), std::move(*re));
    }
  }
  std::vector<member> out;
  for (auto& m : node_->members()) {
    if (!statuses.empty() && statuses.count(status_name(m.state)) == 0) continue;
    if (name_re && !std::regex_match(m.name, *name_re)) continue;
    bool ok = true;
    for (const auto& [k, re] : tag_res) {
      auto it = m.tags.find(k);
      if (it == m.tags.end() || !std::regex_match(it->second, re)) {
        ok = false;
        break;
      }
    }
    if (ok) out.push_back(std::move(m));
  }
  s->reply(id, [&](writer& w) {
    w.pack_map(1);
    write_str(w, "members");
    w.pack_array(static_cast<std::uint32_t>(out.size()));
    for (const auto& m : out) write_member(w, m);
  });
}

void agent::cmd_member(const std::shared_ptr<session>& s, std::uint64_t id,
                       const msgpack::object& args) {
  const auto name = get_str(args, "name");
  if (!name) return s->error(id, "bad_request", "member needs a string \"name\"");
  const auto m = node_->find(*name);
  if (!m) return s->error(id, "not_found", "no member named " + name->substr(0, 128));
  s->reply(id, [&](writer& w) { write_member(w, *m); });
}

void agent::cmd_join(const std::shared_ptr<session>& s, std::uint64_t id,
                     const msgpack::object& args) {
  const auto* a = map_get(args, "addrs");
  if (!a || a->type != msgpack::type::ARRAY || a->via.array.size == 0)
    return s->error(id, "bad_request", "join needs a non-empty array \"addrs\"");
  if (a->via.array.size > max_join_addrs)
    return s->error(id, "invalid_argument", "at most 64 addresses");
  std::vector<std::string> addrs;
  for (std::uint32_t i = 0; i < a->via.array.size; ++i) {
    const auto& e = a->via.array.ptr[i];
    if (e.type != msgpack::type::STR || e.via.str.size == 0 || e.via.str.size > 300)
      return s->error(id, "bad_request", "\"addrs\" must hold HOST:PORT strings");
    addrs.emplace_back(e.via.str.ptr, e.via.str.size);
  }
  if (stopping_) return s->error(id, "not_running", "the daemon is stopping");
  // join() waits for the network: run it off the socket loop.
  // Finished join threads are joined here, so their number stays bounded by
  // the clients (each runs one request at a time).
  std::erase_if(workers_, [](worker& w) {
    if (!*w.done) return false;
    w.t.join();
    return true;
  });
  auto done = std::make_shared<std::atomic<bool>>(false);
  workers_.push_back({std::thread([this, s, id, addrs, done] {
                        const join_result r = node_->join(addrs);
                        *done = true;
                        asio::post(ctx_, [s, id, r] {
                          if (r.contacted == 0 && r.error) {
                            const bool timed_out = r.error == std::errc::timed_out;
                            return s->error(id, timed_out ? "timeout" : "invalid_argument",
                                            "join failed: " + r.error.message());
                          }
                          s->reply(id, [&](writer& w) {
                            w.pack_map(2);
                            write_str(w, "resolved");
                            w.pack_uint64(r.resolved);
                            write_str(w, "contacted");
                            w.pack_uint64(r.contacted);
                          });
                        });
                      }),
                      done});
}

void agent::cmd_force_leave(const std::shared_ptr<session>& s, std::uint64_t id,
                            const msgpack::object& args) {
  const auto name = get_str(args, "name");
  if (!name) return s->error(id, "bad_request", "force-leave needs a string \"name\"");
  const auto m = node_->find(*name);
  if (!m) return s->error(id, "not_found", "no member named " + name->substr(0, 128));
  if (m->state != member_state::dead)
    return s->error(id, "not_failed", *name + " is " + status_name(m->state) + ", not failed");
  if (auto ec = node_->force_leave(*name)) {
    const bool not_failed = ec == make_error_code(errc::member_not_failed);
    return s->error(
        id,
        not_failed ? "not_failed"
                   : (ec == make_error_code(errc::unknown_member) ? "not_found" : "not_running"),
        ec.message());
  }
  s->reply(id, [](writer& w) { w.pack_map(0); });
}

void agent::cmd_tags(const std::shared_ptr<session>& s, std::uint64_t id,
                     const msgpack::object& args) {
  tag_map tags = node_->local_member().tags;
  if (const auto* set = map_get(args, "set")) {
    if (set->type != msgpack::type::MAP)
      return s->error(id, "bad_request", "\"set\" must be a map of strings");
    for (std::uint32_t i = 0; i < set->via.map.size; ++i) {
      const auto& kv = set->via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR ||
          kv.key.via.str.size == 0)
        return s->error(id, "bad_request",
                        "\"set\" must be a map of non-empty string keys to strings");
      tags[std::string(kv.key.via.str.ptr, kv.key.via.str.size)] =
          std::string(kv.val.via.str.ptr, kv.val.via.str.size);
    }
  }
  if (const auto* unset = map_get(args, "unset")) {
    if (unset->type != msgpack::type::ARRAY)
      return s->error(id, "bad_request", "\"unset\" must be an array of strings");
    for (std::uint32_t i = 0; i < unset->via.array.size; ++i) {
      const auto& e = unset->via.array.ptr[i];
      if (e.type != msgpack::type::STR)
        return s->error(id, "bad_request", "\"unset\" must be an array of strings");
      tags.erase(std::string(e.via.str.ptr, e.via.str.size));
    }
  }
  if (auto ec = node_->set_tags(tags)) {
    const bool stopped = ec == make_error_code(errc::not_running);
    return s->error(id, stopped ? "not_running" : "invalid_argument",
                    "tags not changed: " + ec.message());
  }
  cfg_.tags = tags;
  s->reply(id, [&](writer& w) {
    w.pack_map(1);
    write_str(w, "tags");
    w.pack_map(static_cast<std::uint32_t>(tags.size()));
    for (const auto& [k, v] : tags) {
      write_str(w, k);
      write_str(w, v);
    }
  });
}

void agent::cmd_stats(const std::shared_ptr<session>& s, std::uint64_t id) {
  const node_stats ns = node_->stats();
  s->reply(id, [&](writer& w) {
    auto group = [&](const char* name, const auto& st, std::size_t extra, auto&& more) {
      std::uint32_t n = 0;
      for_each_counter(st, [&](const char*, std::uint64_t) { ++n; });
      write_str(w, name);
      w.pack_map(n + static_cast<std::uint32_t>(extra));
      for_each_counter(st, [&](const char* k, std::uint64_t v) {
        write_str(w, k);
        w.pack_uint64(v);
      });
      more();
    };
    w.pack_map(4);
    group("core", ns.core, 0, [] {});
    write_str(w, "messages");
    w.pack_map(2);
    for (const char* dir : {"in", "out"}) {
      write_str(w, dir);
      w.pack_map(static_cast<std::uint32_t>(message_type_count));
      for_each_message_type(ns.core, [&](const char* type, const char* d, std::uint64_t v) {
        if (std::string_view(d) != dir) return;
        write_str(w, type);
        w.pack_uint64(v);
      });
    }
    group("runtime", ns.runtime, 2, [&] {
      write_str(w, "tcp_sessions");
      w.pack_uint64(ns.tcp_sessions);
      write_str(w, "streams_in_progress");
      w.pack_uint64(ns.streams);
    });
    group("daemon", server_.stats(), 3, [&] {
      write_str(w, "clients");
      w.pack_uint64(server_.connections());
      write_str(w, "streams");
      w.pack_uint64(server_.streams());
      write_str(w, "key_ops_rejected");
      w.pack_uint64(key_ops_rejected_);
    });
  });
}

void agent::cmd_info(const std::shared_ptr<session>& s, std::uint64_t id) {
  const member self = node_->local_member();
  std::size_t counts[4] = {};
  for (const auto& m : node_->members()) ++counts[static_cast<int>(m.state)];
  char digest[17];
  std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(node_->digest()));
  const auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(steady_clock::now() - started_).count();
  s->reply(id, [&](writer& w) {
    w.pack_map(13);
    write_str(w, "version");
    write_str(w, library_version());
    write_str(w, "name");
    write_str(w, self.name);
    write_str(w, "addr");
    write_str(w, self.addr.ip_string());
    write_str(w, "port");
    w.pack_uint16(self.addr.port());
    write_str(w, "bind");
    write_str(w, cfg_.bind);
    write_str(w, "preset");
    write_str(w, cfg_.preset);
    write_str(w, "health_score");
    w.pack_int(node_->health_score());
    write_str(w, "digest");
    write_str(w, digest);
    write_str(w, "incarnation");
    w.pack_uint64(self.incarnation);
    write_str(w, "members");
    w.pack_map(4);
    const char* names[4] = {"alive", "suspect", "failed", "left"};
    for (int i = 0; i < 4; ++i) {
      write_str(w, names[i]);
      w.pack_uint64(counts[i]);
    }
    write_str(w, "encrypted");
    w.pack(!node_->list_keys().empty());
    write_str(w, "label");
    write_str(w, cfg_.label);
    write_str(w, "uptime_s");
    w.pack_uint64(static_cast<std::uint64_t>(uptime));
  });
}

// --- cluster-wide key operations -------------------------------------------------------

agent::key_reply agent::apply_key_op(const std::string& op,
                                     const std::optional<encryption_key>& key) {
  key_reply r;
  std::error_code ec;
  if (op == "install")
    ec = node_->install_key(*key);
  else if (op == "use")
    ec = node_->use_key(*key);
  else if (op == "remove")
    ec = node_->remove_key(*key);
  if (ec) {
    r.error = op == "remove" ? "cannot remove the primary key or a key not installed"
                             : (op == "use" ? "key not installed" : ec.message());
  } else if (op != "list") {
    save_keyring();
  }
  r.keys = node_->list_keys();
  if (!r.keys.empty()) r.primary = r.keys.front();
  return r;
}

void agent::cmd_keys(const std::shared_ptr<session>& s, std::uint64_t id,
                     const msgpack::object& args) {
  const auto op = get_str(args, "op");
  if (!op || (*op != "list" && *op != "install" && *op != "use" && *op != "remove"))
    return s->error(id, "bad_request", "keys needs \"op\": list, install, use or remove");
  std::optional<encryption_key> key;
  if (*op != "list") {
    const auto k = get_str(args, "key");
    if (!k) return s->error(id, "bad_request", "keys " + *op + " needs a base64 \"key\"");
    key = base64_decode_key(*k);
    if (!key) return s->error(id, "invalid_argument", "key must be base64 of exactly 32 bytes");
  }
  if (node_->list_keys().empty())
    return s->error(id, "encryption_disabled",
                    "this daemon runs without a keyring (--keyring-file)");
  if (stopping_) return s->error(id, "not_running", "the daemon is stopping");

  const std::uint64_t qid = rng_();
  key_query q;
  q.s = s;
  q.req_id = id;
  q.op = *op;
  for (const auto& m : node_->members())
    if (m.state == member_state::alive || m.state == member_state::suspect) ++q.nodes;
  q.replies[cfg_.name] = apply_key_op(*op, key);
  seen_key_ops_[{cfg_.name, qid}] = steady_clock::now();

  msgpack::sbuffer b;
  writer w(b);
  w.pack_array(5);
  write_str(w, key_request_kind);
  w.pack_uint64(qid);
  write_str(w, cfg_.name);
  write_str(w, *op);
  if (key) {
    w.pack_bin(32);
    w.pack_bin_body(reinterpret_cast<const char*>(key->data()), 32);
  } else {
    w.pack_nil();
  }
  if (q.nodes > 1) (void)node_->broadcast(bytes(b.data(), b.data() + b.size()));
  q.timer = std::make_unique<asio::steady_timer>(ctx_, secs(cfg_.keys_timeout_s));
  q.timer->async_wait([this, qid](const boost::system::error_code& ec) {
    if (!ec) finish_key_query(qid);
  });
  key_queries_.emplace(qid, std::move(q));
  if (key_queries_[qid].replies.size() >= key_queries_[qid].nodes) finish_key_query(qid);
}

void agent::finish_key_query(std::uint64_t qid) {
  auto it = key_queries_.find(qid);
  if (it == key_queries_.end()) return;
  key_query q = std::move(it->second);
  key_queries_.erase(it);
  if (q.timer) q.timer->cancel();
  std::map<std::string, std::size_t> key_counts, primary_counts;
  std::map<std::string, std::string> errors;
  for (const auto& [name, r] : q.replies) {
    if (!r.error.empty()) errors[name] = r.error;
    for (const auto& k : r.keys) ++key_counts[base64_encode(k)];
    if (r.primary) ++primary_counts[base64_encode(*r.primary)];
  }
  const bool list = q.op == "list";
  q.s->reply(q.req_id, [&](writer& w) {
    w.pack_map(list ? 5 : 3);
    write_str(w, "nodes");
    w.pack_uint64(q.nodes);
    write_str(w, "responded");
    w.pack_uint64(q.replies.size());
    write_str(w, "errors");
    w.pack_map(static_cast<std::uint32_t>(errors.size()));
    for (const auto& [n, e] : errors) {
      write_str(w, n);
      write_str(w, e);
    }
    if (!list) return;
    for (auto* counts : {&key_counts, &primary_counts}) {
      write_str(w, counts == &key_counts ? "keys" : "primary");
      w.pack_map(static_cast<std::uint32_t>(counts->size()));
      for (const auto& [k, n] : *counts) {
        write_str(w, k);
        w.pack_uint64(n);
      }
    }
  });
}

void agent::on_user_message(const bytes& data) {
  if (stopping_) return;
  // Only our own two message kinds; anything else is counted and ignored.
  msgpack::object_handle oh;
  try {
    oh = msgpack::unpack(reinterpret_cast<const char*>(data.data()), data.size(), nullptr, nullptr,
                         frame_unpack_limit(data.size()));
  } catch (const std::exception&) {
    ++key_ops_rejected_;
    return;
  }
  const msgpack::object& o = oh.get();
  auto arr = [&](std::uint32_t i) -> const msgpack::object* {
    return (o.type == msgpack::type::ARRAY && i < o.via.array.size) ? &o.via.array.ptr[i] : nullptr;
  };
  auto str = [&](std::uint32_t i) -> std::optional<std::string> {
    const auto* e = arr(i);
    if (!e || e->type != msgpack::type::STR || e->via.str.size > 256) return std::nullopt;
    return std::string(e->via.str.ptr, e->via.str.size);
  };
  auto key_at = [&](const msgpack::object* e) -> std::optional<encryption_key> {
    if (!e || e->type != msgpack::type::BIN || e->via.bin.size != 32) return std::nullopt;
    encryption_key k{};
    std::memcpy(k.data(), e->via.bin.ptr, 32);
    return k;
  };
  const auto kind = str(0);
  const auto* qid_o = arr(1);
  if (!kind || !qid_o || qid_o->type != msgpack::type::POSITIVE_INTEGER) {
    ++key_ops_rejected_;
    return;
  }
  const std::uint64_t qid = qid_o->via.u64;
  const auto now = steady_clock::now();
  if (*kind == key_request_kind) {
    const auto origin = str(2);
    const auto op = str(3);
    const auto key = key_at(arr(4));
    if (!origin || !op || (*op != "list" && *op != "install" && *op != "use" && *op != "remove") ||
        (*op != "list" && !key)) {
      ++key_ops_rejected_;
      return;
    }
    if (!seen_key_ops_.emplace(std::make_pair(*origin, qid), now).second) return;
    // Forget old request ids (bounded; one minute is far beyond keys_timeout).
    for (auto it = seen_key_ops_.begin(); it != seen_key_ops_.end();)
      it = (now - it->second > std::chrono::minutes(1) || seen_key_ops_.size() > max_seen_key_ops)
               ? seen_key_ops_.erase(it)
               : std::next(it);
    (void)node_->broadcast(data);  // everyone gets it, not only the origin's gossip targets
    const key_reply r = apply_key_op(*op, key);
    log_->info("key operation from {}: op={} result={}", *origin, *op,
               r.error.empty() ? "ok" : r.error);
    msgpack::sbuffer b;
    writer w(b);
    w.pack_array(6);
    write_str(w, key_reply_kind);
    w.pack_uint64(qid);
    write_str(w, cfg_.name);
    write_str(w, r.error);
    w.pack_array(static_cast<std::uint32_t>(std::min<std::size_t>(r.keys.size(), 64)));
    for (std::size_t i = 0; i < r.keys.size() && i < 64; ++i) {
      w.pack_bin(32);
      w.pack_bin_body(reinterpret_cast<const char*>(r.keys[i].data()), 32);
    }
    if (r.primary) {
      w.pack_bin(32);
      w.pack_bin_body(reinterpret_cast<const char*>(r.primary->data()), 32);
    } else {
      w.pack_nil();
    }
    if (auto ec = node_->send_to(*origin, bytes(b.data(), b.data() + b.size())))
      log_->warn("key operation reply to {} not sent: {}", *origin, ec.message());
    return;
  }
  if (*kind == key_reply_kind) {
    auto it = key_queries_.find(qid);
    const auto name = str(2);
    const auto err = str(3);
    const auto* keys = arr(4);
    if (it == key_queries_.end() || !name || !err || !keys || keys->type != msgpack::type::ARRAY) {
      ++key_ops_rejected_;
      return;
    }
    key_reply r;
    r.error = *err;
    for (std::uint32_t i = 0; i < keys->via.array.size; ++i)
      if (auto k = key_at(&keys->via.array.ptr[i])) r.keys.push_back(*k);
    r.primary = key_at(arr(5));
    it->second.replies[*name] = std::move(r);
    if (it->second.replies.size() >= it->second.nodes) finish_key_query(qid);
    return;
  }
  ++key_ops_rejected_;
}

std::string agent::metrics_text() const {
  return render_metrics(*node_, server_, key_ops_rejected_);
}

}  // namespace shoal::daemon
