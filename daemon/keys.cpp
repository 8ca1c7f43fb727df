// Cluster-wide key operations (the `keys` command): the request is gossiped
// to every member (a user broadcast: each receiver passes it on), each node
// applies it to its keyring and answers the origin directly, and the origin
// gathers the answers until all came or keys_timeout passed. Also the entry
// of every daemon-to-daemon message (on_user_message, peer_messages.hpp).
#include "agent.hpp"

namespace shoal::daemon {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

constexpr std::size_t max_seen_key_ops = 4096;

}  // namespace

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

  peer::key_request req;
  req.qid = qid;
  req.origin = cfg_.name;
  req.op = *op;
  req.key = key;
  if (q.nodes > 1) (void)node_->broadcast(peer::encode(req));
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
  peer::message m;
  std::string kind;
  switch (peer::decode(data, m, 65536, &kind)) {
    case peer::decode_status::ok:
      break;
    case peer::decode_status::malformed:
      if (kind == "shoal.event")
        ++server_.mutable_stats().user_events_rejected;
      else
        ++key_ops_rejected_;
      return;
    case peer::decode_status::unknown_kind:
      ++key_ops_rejected_;
      return;
  }
  if (auto* e = std::get_if<peer::user_event>(&m)) return on_event(std::move(*e));
  if (auto* q = std::get_if<peer::key_request>(&m)) return on_key_request(*q);
  on_key_reply(std::get<peer::key_reply>(std::move(m)));
}

void agent::on_key_request(const peer::key_request& q) {
  const auto now = steady_clock::now();
  if (!seen_key_ops_.emplace(std::make_pair(q.origin, q.qid), now).second) return;
  // Forget old request ids (bounded; one minute is far beyond keys_timeout).
  for (auto it = seen_key_ops_.begin(); it != seen_key_ops_.end();)
    it = (now - it->second > std::chrono::minutes(1) || seen_key_ops_.size() > max_seen_key_ops)
             ? seen_key_ops_.erase(it)
             : std::next(it);
  const key_reply r = apply_key_op(q.op, q.key);
  log_->info("key operation from {}: op={} result={}", q.origin, q.op,
             r.error.empty() ? "ok" : r.error);
  peer::key_reply out;
  out.qid = q.qid;
  out.name = cfg_.name;
  out.error = r.error.substr(0, peer::max_error_bytes);
  out.keys = r.keys;
  if (out.keys.size() > peer::max_reply_keys) out.keys.resize(peer::max_reply_keys);
  out.primary = r.primary;
  if (auto ec = node_->send_to(q.origin, peer::encode(out)))
    log_->warn("key operation reply to {} not sent: {}", q.origin, ec.message());
}

void agent::on_key_reply(peer::key_reply r) {
  auto it = key_queries_.find(r.qid);
  if (it == key_queries_.end()) {
    ++key_ops_rejected_;  // late (after keys_timeout) or for a query we never made
    return;
  }
  key_reply kr;
  kr.error = std::move(r.error);
  kr.keys = std::move(r.keys);
  kr.primary = r.primary;
  it->second.replies[r.name] = std::move(kr);
  if (it->second.replies.size() >= it->second.nodes) finish_key_query(r.qid);
}

}  // namespace shoal::daemon
