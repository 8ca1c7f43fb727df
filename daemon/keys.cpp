// Cluster-wide key operations (the `keys` command): the request is gossiped
// to every member (and re-gossiped once by each receiver), each node applies
// it to its keyring and answers the origin directly, and the origin gathers
// the answers until all came or keys_timeout passed.
#include "agent.hpp"

#include <cstring>

namespace shoal::daemon {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

constexpr std::size_t max_seen_key_ops = 4096;
constexpr std::string_view key_request_kind = "shoal.keys";
constexpr std::string_view key_reply_kind = "shoal.keys.reply";

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

}  // namespace shoal::daemon
