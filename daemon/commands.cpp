// The socket commands that read or change this node (daemon/PROTOCOL.md):
// members, member, join, force-leave, tags and info. `leave` is the agent's
// shutdown (agent.cpp), `keys` a cluster key operation (keys.cpp), `stats`
// is in stats.cpp.
#include "agent.hpp"
#include "names.hpp"

#include <cstdio>
#include <set>

#include <boost/asio/post.hpp>

#include <shoal/version.hpp>

#include "matcher.hpp"

namespace shoal::daemon {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

constexpr std::size_t max_join_addrs = 64;
/// How long after a join with replay the states that arrive are still
/// replayed (the join's own may be handled just after it completes).
constexpr std::chrono::seconds replay_grace{5};
/// `members` pages: at most this many members, and members of at most this
/// many bytes (one member is at most about 66 KB: a page stays far below the
/// 16 MiB bound of a reply frame).
constexpr std::size_t max_members_page = 100000;
constexpr std::size_t members_page_bytes = 8u << 20;

}  // namespace

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
  else if (cmd == "event")
    cmd_event(s, id, args);
  else if (cmd == "query")
    cmd_query(s, id, args);
  else if (cmd == "respond")
    cmd_respond(s, id, args);
  else
    return false;
  return true;
}

std::vector<member> agent::snapshot() {
  auto all = node_->members();
  std::sort(all.begin(), all.end(),
            [](const member& a, const member& b) { return a.name < b.name; });
  return all;
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
      if (!parse_status(v))
        return s->error(id, "invalid_argument", "status must be alive, suspect, failed or left");
      statuses.insert(v);
    }
  }
  std::optional<matcher> name_re;
  std::string err;
  if (const auto* n = map_get(args, "name")) {
    if (n->type != msgpack::type::STR)
      return s->error(id, "bad_request", "\"name\" must be a string");
    name_re = matcher::compile(std::string_view(n->via.str.ptr, n->via.str.size), err);
    if (!name_re) return s->error(id, "invalid_argument", "name: " + err);
  }
  std::vector<std::pair<std::string, matcher>> tag_res;
  if (const auto* t = map_get(args, "tags")) {
    if (t->type != msgpack::type::MAP)
      return s->error(id, "bad_request", "\"tags\" must be a map of strings");
    for (std::uint32_t i = 0; i < t->via.map.size; ++i) {
      const auto& kv = t->via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::STR)
        return s->error(id, "bad_request", "\"tags\" must be a map of strings");
      auto re = matcher::compile(std::string_view(kv.val.via.str.ptr, kv.val.via.str.size), err);
      if (!re) return s->error(id, "invalid_argument", "tags: " + err);
      tag_res.emplace_back(std::string(kv.key.via.str.ptr, kv.key.via.str.size), std::move(*re));
    }
  }
  // Paging: at most `limit` members after the name `after`, and never more
  // than members_page_bytes of them, so that every reply frame stays within
  // the documented bound; `next` says where the following page starts.
  std::size_t limit = max_members_page;
  if (const auto* l = map_get(args, "limit")) {
    if (l->type != msgpack::type::POSITIVE_INTEGER)
      return s->error(id, "bad_request", "\"limit\" must be an unsigned integer");
    if (l->via.u64 < 1 || l->via.u64 > max_members_page)
      return s->error(id, "invalid_argument",
                      "limit must be 1 to " + std::to_string(max_members_page));
    limit = static_cast<std::size_t>(l->via.u64);
  }
  std::optional<std::string> after;
  if (const auto* a = map_get(args, "after")) {
    if (a->type != msgpack::type::STR)
      return s->error(id, "bad_request", "\"after\" must be a string (a member name)");
    after = std::string(a->via.str.ptr, a->via.str.size);
  }
  std::vector<member> out;
  auto all = node_->members();
  std::sort(all.begin(), all.end(),
            [](const member& a, const member& b) { return a.name < b.name; });
  std::size_t bytes = 0;
  bool more = false;
  for (auto& m : all) {
    if (after && m.name <= *after) continue;
    if (!statuses.empty() && statuses.count(status_name(m.state)) == 0) continue;
    if (name_re && !name_re->matches(m.name)) continue;
    bool ok = true;
    for (const auto& [k, re] : tag_res) {
      auto it = m.tags.find(k);
      if (it == m.tags.end() || !re.matches(it->second)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    msgpack::sbuffer one;
    writer ow(one);
    write_member(ow, m);
    if (out.size() >= limit || (!out.empty() && bytes + one.size() > members_page_bytes)) {
      more = true;
      break;
    }
    bytes += one.size();
    out.push_back(std::move(m));
  }
  s->reply(id, [&](writer& w) {
    w.pack_map(more ? 2 : 1);
    write_str(w, "members");
    w.pack_array(static_cast<std::uint32_t>(out.size()));
    for (const auto& m : out) write_member(w, m);
    if (more) {
      write_str(w, "next");
      write_str(w, out.back().name);
    }
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
  bool replay = false;
  if (const auto* r = map_get(args, "replay")) {
    if (r->type != msgpack::type::BOOLEAN)
      return s->error(id, "bad_request", "\"replay\" must be a boolean");
    replay = r->via.boolean;
  }
  if (stopping_) return s->error(id, "not_running", "the daemon is stopping");
  // While it runs, the recent events in the states it exchanges are delivered.
  if (replay) ++replaying_;
  // join() waits for the network: run it off the socket loop.
  // Finished join threads are joined here, so their number stays bounded by
  // the clients (each runs one request at a time).
  std::erase_if(workers_, [](worker& w) {
    if (!*w.done) return false;
    w.t.join();
    return true;
  });
  auto done = std::make_shared<std::atomic<bool>>(false);
  workers_.push_back({std::thread([this, s, id, addrs, done, replay] {
                        const join_result r = node_->join(addrs);
                        *done = true;
                        asio::post(ctx_, [this, s, id, r, replay] {
                          if (replay) {
                            --replaying_;
                            replay_until_ = std::chrono::steady_clock::now() + replay_grace;
                          }
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
  bool prune = false;
  if (const auto* p = map_get(args, "prune")) {
    if (p->type != msgpack::type::BOOLEAN)
      return s->error(id, "bad_request", "\"prune\" must be a boolean");
    prune = p->via.boolean;
  }
  const auto m = node_->find(*name);
  if (!m) return s->error(id, "not_found", "no member named " + name->substr(0, 128));
  if (prune && m->state == member_state::left) {
    // Already left: --prune only forgets it, here and everywhere.
  } else if (m->state != member_state::dead) {
    return s->error(id, "not_failed", *name + " is " + status_name(m->state) + ", not failed");
  } else if (auto ec = node_->force_leave(*name)) {
    const bool not_failed = ec == make_error_code(errc::member_not_failed);
    return s->error(
        id,
        not_failed ? "not_failed"
                   : (ec == make_error_code(errc::unknown_member) ? "not_found" : "not_running"),
        ec.message());
  }
  if (prune) {
    (void)node_->prune(*name);
    peer::prune pr;
    pr.id = rng_();
    pr.origin = cfg_.name;
    pr.member = *name;
    if (auto ec = node_->broadcast(peer::encode(pr)))
      log_->warn("force-leave --prune of {}: the other daemons not told: {}", *name, ec.message());
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
  save_tags();
  update_handler_self();
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

void agent::cmd_info(const std::shared_ptr<session>& s, std::uint64_t id) {
  const member self = node_->local_member();
  std::size_t counts[4] = {};
  for (const auto& m : node_->members()) ++counts[static_cast<int>(m.state)];
  const std::string digest = digest_text();
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
    for (std::size_t i = 0; i < status_names.size(); ++i) {
      write_str(w, status_names[i]);
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

}  // namespace shoal::daemon
