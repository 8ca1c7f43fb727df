// Queries (the `query` and `respond` commands, the `query` stream type), in
// the manner of Serf's: a client asks its daemon a named question with a
// payload and filters (a name pattern, tag patterns); the query is gossiped
// to every live member as a user broadcast, and each member whose name and
// tags match acknowledges it (unless the asker said not to) and hands it to
// its local subscribers, one of whom may answer once. Acks and responses go
// straight back to the asking daemon (one UDP datagram each, not
// retransmitted), which streams them to its client until the query's
// timeout, then replies with a summary. The asking daemon takes part too:
// when it matches, it acks and delivers the query to its own subscribers.
//
// Built-in queries, answered by the daemon itself and never shown to
// clients: `_shoal.ping` (the response is the member's view digest; it powers
// `shoalctl reachability`) and `_shoal.keys` (cluster key operations,
// keys.cpp). Clients may send `_shoal.ping`; other `_shoal.` names are
// reserved.
//
// Every daemon-to-daemon message (peer_messages.hpp) enters at
// on_user_message.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "agent.hpp"
#include "matcher.hpp"

namespace shoal::daemon {

namespace asio = boost::asio;
using std::chrono::steady_clock;

namespace {

constexpr std::size_t max_received_queries = 4096;
constexpr std::size_t max_asked_queries = 64;
constexpr std::size_t max_replies_per_query = 65536;
constexpr std::uint64_t max_query_timeout_ms = 300000;
constexpr std::string_view reserved_prefix = "_shoal.";
constexpr std::string_view ping_query = "_shoal.ping";

std::uint64_t unix_ms(std::chrono::system_clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

/// The bytes of a msgpack bin or str argument (nil or absent: empty);
/// nullopt for any other type.
std::optional<bytes> payload_arg(const msgpack::object& args) {
  const auto* p = map_get(args, "payload");
  if (!p || p->type == msgpack::type::NIL) return bytes{};
  if (p->type == msgpack::type::BIN) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p->via.bin.ptr);
    return bytes(b, b + p->via.bin.size);
  }
  if (p->type == msgpack::type::STR) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p->via.str.ptr);
    return bytes(b, b + p->via.str.size);
  }
  return std::nullopt;
}

void write_bin(writer& w, const bytes& b) {
  w.pack_bin(static_cast<std::uint32_t>(b.size()));
  w.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
}

}  // namespace

std::string agent::digest_text() const {
  char digest[17];
  std::snprintf(digest, sizeof digest, "%016llx", static_cast<unsigned long long>(node_->digest()));
  return digest;
}

std::chrono::milliseconds agent::default_query_timeout() const {
  // Serf's rule: 16 gossip intervals per power of ten of the cluster's size,
  // time for the query to spread and the answers to come back.
  std::size_t live = 0;
  for (const auto& m : node_->members())
    if (m.state == member_state::alive || m.state == member_state::suspect) ++live;
  const auto decades = std::max(1.0, std::ceil(std::log10(static_cast<double>(live) + 1)));
  return std::chrono::milliseconds(
      static_cast<long long>(16 * gossip_interval_.count() * static_cast<long long>(decades)));
}

std::size_t agent::max_response_bytes() const {
  // A query reply must fit one user message: the array header, the kind,
  // the qid, our name, the reply kind and the payload's header.
  const std::size_t envelope = 1 + (1 + 17) + 9 + (5 + cfg_.name.size()) + 1 + 5;
  return max_broadcast_bytes_ > envelope ? max_broadcast_bytes_ - envelope : 0;
}

void agent::cmd_query(const std::shared_ptr<session>& s, std::uint64_t id,
                      const msgpack::object& args) {
  const auto name = get_str(args, "name");
  if (!name || name->empty())
    return s->error(id, "bad_request", "query needs a non-empty string \"name\"");
  if (name->size() > peer::max_event_name_bytes)
    return s->error(id, "invalid_argument",
                    "query name over " + std::to_string(peer::max_event_name_bytes) + " bytes");
  if (name->rfind(reserved_prefix, 0) == 0 && *name != ping_query)
    return s->error(
        id, "invalid_argument",
        "query names starting with _shoal. are reserved (only _shoal.ping may be sent)");
  auto payload = payload_arg(args);
  if (!payload) return s->error(id, "bad_request", "\"payload\" must be bytes or a string");

  peer::query q;
  q.qid = rng_();
  q.origin = cfg_.name;
  q.name = *name;
  q.payload = std::move(*payload);
  q.flags = peer::query_flag_ack;
  if (const auto* a = map_get(args, "ack")) {
    if (a->type != msgpack::type::BOOLEAN)
      return s->error(id, "bad_request", "\"ack\" must be a boolean");
    if (!a->via.boolean) q.flags = 0;
  }
  std::string err;
  if (const auto* n = map_get(args, "node")) {
    const auto pat = as_str(n);
    if (!pat) return s->error(id, "bad_request", "\"node\" must be a string (a pattern)");
    if (!matcher::compile(*pat, err)) return s->error(id, "invalid_argument", "node: " + err);
    q.node_pattern = std::string(*pat);
  }
  if (const auto* t = map_get(args, "tags")) {
    if (t->type != msgpack::type::MAP)
      return s->error(id, "bad_request", "\"tags\" must be a map of tag to pattern");
    if (t->via.map.size > peer::max_tag_filters)
      return s->error(id, "invalid_argument",
                      "at most " + std::to_string(peer::max_tag_filters) + " tag filters");
    for (std::uint32_t i = 0; i < t->via.map.size; ++i) {
      const auto k = as_str(&t->via.map.ptr[i].key);
      const auto v = as_str(&t->via.map.ptr[i].val);
      if (!k || !v) return s->error(id, "bad_request", "\"tags\" must map strings to strings");
      if (k->empty() || k->size() > peer::max_tag_key_bytes)
        return s->error(id, "invalid_argument",
                        "a tag filter's key must be 1 to " +
                            std::to_string(peer::max_tag_key_bytes) + " bytes");
      if (!matcher::compile(*v, err))
        return s->error(id, "invalid_argument", "tags." + std::string(*k) + ": " + err);
      q.tag_patterns.emplace_back(std::string(*k), std::string(*v));
    }
  }
  auto timeout = default_query_timeout();
  if (const auto* t = map_get(args, "timeout_ms")) {
    if (t->type != msgpack::type::POSITIVE_INTEGER)
      return s->error(id, "bad_request", "\"timeout_ms\" must be an unsigned integer");
    if (t->via.u64 < 1 || t->via.u64 > max_query_timeout_ms)
      return s->error(id, "invalid_argument",
                      "timeout_ms must be 1 to " + std::to_string(max_query_timeout_ms));
    timeout = std::chrono::milliseconds(t->via.u64);
  }
  q.timeout_ms = static_cast<std::uint64_t>(timeout.count());
  q.ltime = event_clock_;
  const std::size_t size = peer::encode(q).size();
  if (size > max_broadcast_bytes_) {
    const std::size_t envelope = size - q.payload.size() - q.name.size();
    return s->error(
        id, "too_large",
        "name and payload together over " +
            std::to_string(max_broadcast_bytes_ > envelope ? max_broadcast_bytes_ - envelope : 0) +
            " bytes with these filters (max_user_broadcast_bytes less the query's "
            "envelope)");
  }
  if (stopping_) return s->error(id, "not_running", "the daemon is stopping");
  if (!query_slot_free())
    return s->error(id, "queue_full",
                    "at most " + std::to_string(max_asked_queries) +
                        " queries in progress on this daemon; try again shortly");
  asked_query aq;
  aq.s = s;
  aq.req_id = id;
  if (auto e = ask(std::move(q), std::move(aq)); !e.empty())
    return s->error(id, e,
                    e == "queue_full" ? "the broadcast queue is full; try again shortly"
                                      : "the node cannot send the query now (" + e + ")");
  ++server_.mutable_stats().queries_sent;
}

bool agent::query_slot_free() {
  if (asked_.size() < max_asked_queries) return true;
  // A query whose client went away keeps no slot.
  for (auto it = asked_.begin(); it != asked_.end();) {
    if (it->second.s && it->second.s->is_closed()) {
      if (it->second.timer) it->second.timer->cancel();
      it = asked_.erase(it);
    } else {
      ++it;
    }
  }
  return asked_.size() < max_asked_queries;
}

std::string agent::ask(peer::query q, asked_query aq) {
  const std::uint64_t qid = q.qid;
  const auto ec = node_->broadcast(peer::encode(q));
  if (ec == errc::queue_full) return "queue_full";
  if (ec == errc::not_running) return "not_running";
  if (ec) return "too_large";
  ++event_clock_;
  aq.name = q.name;
  aq.started = steady_clock::now();
  aq.timer = std::make_unique<asio::steady_timer>(ctx_, std::chrono::milliseconds(q.timeout_ms));
  aq.timer->async_wait([this, qid](const boost::system::error_code& e) {
    if (!e) finish_query(qid);
  });
  asked_.emplace(qid, std::move(aq));
  on_query(std::move(q));  // we are a member too
  return {};
}

bool agent::query_matches_here(const peer::query& q) {
  std::string err;
  if (!q.node_pattern.empty()) {
    const auto m = matcher::compile(q.node_pattern, err);
    if (!m) {
      ++server_.mutable_stats().queries_rejected;
      return false;
    }
    if (!m->matches(cfg_.name)) return false;
  }
  if (q.tag_patterns.empty()) return true;
  const auto self = node_->local_member();
  for (const auto& [tag, pattern] : q.tag_patterns) {
    const auto m = matcher::compile(pattern, err);
    if (!m) {
      ++server_.mutable_stats().queries_rejected;
      return false;
    }
    const auto it = self.tags.find(tag);
    if (it == self.tags.end() || !m->matches(it->second)) return false;
  }
  return true;
}

void agent::on_query(peer::query q) {
  // One Lamport clock for events and queries (saturating, as in on_event).
  if (q.ltime >= event_clock_ && q.ltime < std::numeric_limits<std::uint64_t>::max())
    event_clock_ = q.ltime + 1;
  const auto now = steady_clock::now();
  if (!seen_queries_.insert({q.origin, q.qid}, now)) {
    ++server_.mutable_stats().queries_duplicate;
    return;
  }
  if (!query_matches_here(q)) return;
  ++server_.mutable_stats().queries_received;
  if (q.flags & peer::query_flag_ack) reply_to_query(q.origin, q.qid, peer::reply_kind::ack, {});

  if (q.name == ping_query) {
    const auto d = digest_text();
    ++server_.mutable_stats().query_responses;
    return reply_to_query(q.origin, q.qid, peer::reply_kind::response, bytes(d.begin(), d.end()));
  }
  if (q.name == "_shoal.keys") return on_key_query(q);
  if (q.name.rfind(reserved_prefix, 0) == 0) return;  // a built-in this build does not know

  // Offer it to local subscribers, who may answer until its timeout.
  for (auto it = received_.begin(); it != received_.end();)
    it = (it->second.deadline < now || received_.size() >= max_received_queries)
             ? received_.erase(it)
             : std::next(it);
  const auto timeout = std::chrono::milliseconds(std::min(q.timeout_ms, max_query_timeout_ms));
  const std::uint64_t handle = next_query_handle_++;
  received_[handle] = received_query{q.origin, q.qid, q.name, now + timeout, false};
  local_query lq;
  lq.handle = handle;
  lq.q = &q;
  lq.deadline_ms = unix_ms(std::chrono::system_clock::now() + timeout);
  server_.publish_query(lq);
  if (handlers_) {
    // A handler's output answers the query, unless a client answered first.
    handler_event he;
    he.type = "query";
    he.name = q.name;
    he.ltime = q.ltime;
    he.payload = q.payload;
    he.max_response = max_response_bytes();
    he.on_response = [this, handle](std::string out) {
      auto it = received_.find(handle);
      if (it == received_.end() || it->second.responded || stopping_ ||
          it->second.deadline < steady_clock::now())
        return;
      it->second.responded = true;
      ++server_.mutable_stats().query_responses;
      reply_to_query(it->second.origin, it->second.qid, peer::reply_kind::response,
                     bytes(out.begin(), out.end()));
    };
    handlers_->dispatch(he);
  }
}

void agent::reply_to_query(const std::string& origin, std::uint64_t qid, peer::reply_kind kind,
                           bytes payload) {
  peer::query_reply r;
  r.qid = qid;
  r.from = cfg_.name;
  r.kind = kind;
  r.payload = std::move(payload);
  if (origin == cfg_.name) {
    // Our own query: handled after the current call returns, like a reply
    // from the network would be.
    asio::post(ctx_, [this, r = std::move(r)]() mutable { on_query_reply(std::move(r)); });
    return;
  }
  if (auto ec = node_->send_to(origin, peer::encode(r)))
    log_->debug("query reply not sent: to={} qid={} error={}", origin, qid, ec.message());
}

void agent::on_query_reply(peer::query_reply r) {
  auto it = asked_.find(r.qid);
  if (it == asked_.end()) {
    ++server_.mutable_stats().query_replies_late;  // after its timeout, or never ours
    return;
  }
  asked_query& aq = it->second;
  auto& who = r.kind == peer::reply_kind::ack ? aq.acks : aq.responders;
  if (who.size() >= max_replies_per_query || !who.insert(r.from).second) return;
  if (!aq.key_op.empty()) {
    if (r.kind != peer::reply_kind::response) return;
    peer::key_result kr;
    if (!peer::decode(r.payload, kr)) {
      ++key_ops_rejected_;
      return;
    }
    aq.key_results[r.from] = std::move(kr);
    if (aq.key_results.size() >= aq.nodes) finish_query(r.qid);
    return;
  }
  if (!aq.s) return;
  const bool ack = r.kind == peer::reply_kind::ack;
  aq.s->push(aq.req_id, [&](writer& w) {
    w.pack_map(ack ? 2 : 3);
    write_str(w, "type");
    write_str(w, ack ? "ack" : "response");
    write_str(w, "from");
    write_str(w, r.from);
    if (ack) return;
    write_str(w, "payload");
    write_bin(w, r.payload);
  });
}

void agent::finish_query(std::uint64_t qid) {
  auto it = asked_.find(qid);
  if (it == asked_.end()) return;
  asked_query aq = std::move(it->second);
  asked_.erase(it);
  if (aq.timer) aq.timer->cancel();
  if (!aq.key_op.empty()) return finish_keys(aq);
  if (!aq.s) return;
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - aq.started);
  aq.s->reply(aq.req_id, [&](writer& w) {
    w.pack_map(3);
    write_str(w, "acks");
    w.pack_uint64(aq.acks.size());
    write_str(w, "responses");
    w.pack_uint64(aq.responders.size());
    write_str(w, "duration_ms");
    w.pack_uint64(static_cast<std::uint64_t>(ms.count()));
  });
}

void agent::cmd_respond(const std::shared_ptr<session>& s, std::uint64_t id,
                        const msgpack::object& args) {
  const auto* h = map_get(args, "query");
  if (!h || h->type != msgpack::type::POSITIVE_INTEGER)
    return s->error(id, "bad_request", "respond needs an integer \"query\" (from a query event)");
  auto payload = payload_arg(args);
  if (!payload) return s->error(id, "bad_request", "\"payload\" must be bytes or a string");
  if (payload->size() > max_response_bytes())
    return s->error(id, "too_large",
                    "response over " + std::to_string(max_response_bytes()) +
                        " bytes (max_user_broadcast_bytes less the reply's envelope)");
  auto it = received_.find(h->via.u64);
  if (it == received_.end() || it->second.deadline < steady_clock::now())
    return s->error(id, "not_found",
                    "no query with that id awaits a response (unknown or expired)");
  if (it->second.responded)
    return s->error(id, "invalid_argument", "this query was already answered on this member");
  if (stopping_) return s->error(id, "not_running", "the daemon is stopping");
  it->second.responded = true;
  ++server_.mutable_stats().query_responses;
  reply_to_query(it->second.origin, it->second.qid, peer::reply_kind::response,
                 std::move(*payload));
  s->reply(id, [](writer& w) { w.pack_map(0); });
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
        ++server_.mutable_stats().queries_rejected;
      return;
    case peer::decode_status::unknown_kind:
      ++server_.mutable_stats().queries_rejected;
      return;
  }
  if (auto* e = std::get_if<peer::user_event>(&m)) return on_event(std::move(*e));
  if (auto* q = std::get_if<peer::query>(&m)) return on_query(std::move(*q));
  if (auto* p = std::get_if<peer::prune>(&m)) {
    // Forget the member if it is failed or left here; an alive or suspect
    // one is kept (it may have come back since).
    const auto ec = node_->prune(p->member);
    log_->info("prune of {} from {}: {}", p->member, p->origin, ec ? ec.message() : "forgotten");
    return;
  }
  on_query_reply(std::get<peer::query_reply>(std::move(m)));
}

}  // namespace shoal::daemon
