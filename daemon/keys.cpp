// Cluster-wide key operations (the `keys` command), one user of the query
// machinery (queries.cpp): the built-in query `_shoal.keys` carries the
// operation (peer::key_op) to every member, each applies it to its keyring
// and answers with its result (peer::key_result), and the asking daemon
// gathers the answers until every member alive when it asked has answered or
// keys_timeout passed.
#include "agent.hpp"

namespace shoal::daemon {

peer::key_result agent::apply_key_op(const peer::key_op& op) {
  peer::key_result r;
  std::error_code ec;
  if (op.op == "install")
    ec = node_->install_key(*op.key);
  else if (op.op == "use")
    ec = node_->use_key(*op.key);
  else if (op.op == "remove")
    ec = node_->remove_key(*op.key);
  if (ec) {
    r.error = op.op == "remove" ? "cannot remove the primary key or a key not installed"
                                : (op.op == "use" ? "key not installed" : ec.message());
  } else if (op.op != "list") {
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
  peer::key_op kop;
  kop.op = *op;
  if (*op != "list") {
    const auto k = get_str(args, "key");
    if (!k) return s->error(id, "bad_request", "keys " + *op + " needs a base64 \"key\"");
    kop.key = base64_decode_key(*k);
    if (!kop.key) return s->error(id, "invalid_argument", "key must be base64 of exactly 32 bytes");
  }
  if (node_->list_keys().empty())
    return s->error(id, "encryption_disabled",
                    "this daemon runs without a keyring (--keyring-file)");
  if (stopping_) return s->error(id, "not_running", "the daemon is stopping");
  if (!query_slot_free())
    return s->error(id, "queue_full",
                    "64 queries (key operations included) in progress on this daemon; try again "
                    "shortly");

  peer::query q;
  q.qid = rng_();
  q.origin = cfg_.name;
  q.ltime = event_clock_;
  q.name = "_shoal.keys";
  q.payload = peer::encode(kop);
  q.timeout_ms = static_cast<std::uint64_t>(secs(cfg_.keys_timeout_s).count());
  asked_query aq;
  aq.s = s;
  aq.req_id = id;
  aq.key_op = *op;
  for (const auto& m : node_->members())
    if (m.state == member_state::alive) ++aq.nodes;
  if (auto e = ask(std::move(q), std::move(aq)); !e.empty())
    return s->error(id, e, "the key operation could not be sent (" + e + ")");
}

void agent::on_key_query(const peer::query& q) {
  peer::key_op op;
  if (!peer::decode(q.payload, op)) {
    ++key_ops_rejected_;
    return;
  }
  const auto r = apply_key_op(op);
  if (q.origin != cfg_.name)
    log_->info("key operation from {}: op={} result={}", q.origin, op.op,
               r.error.empty() ? "ok" : r.error);
  peer::key_result out = r;
  out.error = r.error.substr(0, peer::max_error_bytes);
  // Only what fits one reply: the primary first, then as many keys as fit.
  auto payload = peer::encode(out);
  while (payload.size() > max_response_bytes() && !out.keys.empty()) {
    out.keys.pop_back();
    payload = peer::encode(out);
  }
  ++server_.mutable_stats().query_responses;
  reply_to_query(q.origin, q.qid, peer::reply_kind::response, std::move(payload));
}

void agent::finish_keys(asked_query& aq) {
  std::map<std::string, std::size_t> key_counts, primary_counts;
  std::map<std::string, std::string> errors;
  for (const auto& [name, r] : aq.key_results) {
    if (!r.error.empty()) errors[name] = r.error;
    for (const auto& k : r.keys) ++key_counts[base64_encode(k)];
    if (r.primary) ++primary_counts[base64_encode(*r.primary)];
  }
  const bool list = aq.key_op == "list";
  aq.s->reply(aq.req_id, [&](writer& w) {
    w.pack_map(list ? 5 : 3);
    write_str(w, "nodes");
    w.pack_uint64(aq.nodes);
    write_str(w, "responded");
    w.pack_uint64(aq.key_results.size());
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

}  // namespace shoal::daemon
