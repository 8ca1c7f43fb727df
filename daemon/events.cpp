// User events (the `event` command and the `user` stream type): a named
// payload a client hands to its daemon, gossiped to every live member as a
// user broadcast (epidemic: each receiver passes it on once) and delivered
// once to the local subscribers of every daemon it reaches, the origin's
// included. Each carries a Lamport time: a daemon's clock moves past every
// event time it sees, so an event sent after another was received is later.
// Duplicates (the same origin and id) are dropped.
//
// Between daemons: peer::user_event inside a user broadcast
// (peer_messages.hpp; PROTOCOL.md "Daemon-to-daemon messages").
#include "agent.hpp"

#include <algorithm>
#include <limits>

namespace shoal::daemon {

using std::chrono::steady_clock;

std::size_t agent::max_event_bytes() const {
  // What is left of a user broadcast once the envelope is packed with this
  // daemon's name: the array header, the kind, two 9-byte integers, the
  // origin, the name's and payload's headers (5 bytes each at most) and the
  // flags.
  const std::size_t envelope = 1 + (1 + 11) + 9 + (5 + cfg_.name.size()) + 9 + 5 + 5 + 9;
  return max_broadcast_bytes_ > envelope ? max_broadcast_bytes_ - envelope : 0;
}

void agent::cmd_event(const std::shared_ptr<session>& s, std::uint64_t id,
                      const msgpack::object& args) {
  const auto name = get_str(args, "name");
  if (!name || name->empty())
    return s->error(id, "bad_request", "event needs a non-empty string \"name\"");
  if (name->size() > peer::max_event_name_bytes)
    return s->error(id, "invalid_argument",
                    "event name over " + std::to_string(peer::max_event_name_bytes) + " bytes");
  bytes payload;
  if (const auto* p = map_get(args, "payload")) {
    if (p->type == msgpack::type::BIN)
      payload.assign(reinterpret_cast<const std::uint8_t*>(p->via.bin.ptr),
                     reinterpret_cast<const std::uint8_t*>(p->via.bin.ptr) + p->via.bin.size);
    else if (p->type == msgpack::type::STR)
      payload.assign(reinterpret_cast<const std::uint8_t*>(p->via.str.ptr),
                     reinterpret_cast<const std::uint8_t*>(p->via.str.ptr) + p->via.str.size);
    else if (p->type != msgpack::type::NIL)
      return s->error(id, "bad_request", "\"payload\" must be bytes or a string");
  }
  bool coalesce = false;
  if (const auto* c = map_get(args, "coalesce")) {
    if (c->type != msgpack::type::BOOLEAN)
      return s->error(id, "bad_request", "\"coalesce\" must be a boolean");
    coalesce = c->via.boolean;
  }
  if (name->size() + payload.size() > max_event_bytes())
    return s->error(id, "too_large",
                    "name and payload together over " + std::to_string(max_event_bytes()) +
                        " bytes (the user broadcast limit, max_user_broadcast_bytes, less the "
                        "event's envelope)");
  if (stopping_) return s->error(id, "not_running", "the daemon is stopping");

  peer::user_event ev;
  ev.id = rng_();
  ev.origin = cfg_.name;
  ev.ltime = event_clock_;
  ev.name = *name;
  ev.payload = std::move(payload);
  ev.flags = coalesce ? peer::event_flag_coalesce : 0;
  const auto ec = node_->broadcast(peer::encode(ev));
  if (ec == errc::queue_full)
    return s->error(id, "queue_full", "the broadcast queue is full; try again shortly");
  if (ec == errc::not_running) return s->error(id, "not_running", "the node is not running");
  if (ec) return s->error(id, "too_large", ec.message());
  ++event_clock_;
  ++server_.mutable_stats().user_events_sent;
  seen_events_.insert({ev.origin, ev.id}, steady_clock::now());
  const std::uint64_t ltime = ev.ltime;
  deliver_event(ev);
  s->reply(id, [&](writer& rw) {
    rw.pack_map(1);
    write_str(rw, "ltime");
    rw.pack_uint64(ltime);
  });
}

void agent::on_event(peer::user_event e) {
  // Lamport: our next event is later than every one we have seen.
  // Saturating: a forged time near 2^64 must not wrap our clock to 0.
  if (e.ltime >= event_clock_ && e.ltime < std::numeric_limits<std::uint64_t>::max())
    event_clock_ = e.ltime + 1;
  const auto now = steady_clock::now();
  // Bounded: ids are forgotten after ten minutes, the oldest first beyond 4,096.
  if (!seen_events_.insert({e.origin, e.id}, now)) {
    ++server_.mutable_stats().user_events_duplicate;
    return;
  }
  deliver_event(e);
}

void agent::deliver_event(const peer::user_event& ev) {
  ++server_.mutable_stats().user_events_delivered;
  server_.publish_user(ev);
  // Remembered for members that join with replay: the newest, ten minutes at
  // most, within what one push-pull state carries.
  recent_events_.push_back(ev);
  recent_times_.push_back(steady_clock::now());
  while (recent_events_.size() > peer::max_state_events) {
    recent_events_.pop_front();
    recent_times_.pop_front();
  }
  age_recent_events();
  if (handlers_ && !stopping_) {
    handler_event he;
    he.type = "user";
    he.name = ev.name;
    he.ltime = ev.ltime;
    he.payload = ev.payload;
    he.coalescable = (ev.flags & peer::event_flag_coalesce) != 0;
    handlers_->dispatch(he);
  }
}

void agent::age_recent_events() {
  const auto now = steady_clock::now();
  const auto max_age = std::chrono::minutes(10);
  while (!recent_times_.empty() && now - recent_times_.front() >= max_age) {
    recent_times_.pop_front();
    recent_events_.pop_front();
  }
  peer::event_state st;
  st.ltime = event_clock_;
  st.events.assign(recent_events_.begin(), recent_events_.end());
  node_->set_user_state(peer::encode(st));
  // Again when the oldest turns ten minutes old.
  recent_timer_.cancel();
  if (recent_times_.empty() || stopping_) return;
  recent_timer_.expires_at(recent_times_.front() + max_age);
  recent_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) age_recent_events();
  });
}

void agent::on_event_state(const bytes& data) {
  if (stopping_ || data.empty()) return;
  peer::event_state st;
  if (!peer::decode(data, st)) {
    ++server_.mutable_stats().user_events_rejected;
    return;
  }
  // The sender's clock is the time of its next event: ours moves up to it.
  if (st.ltime > event_clock_) event_clock_ = st.ltime;
  if (replaying_ == 0 && steady_clock::now() >= replay_until_) return;
  // Oldest first, each once: what this member has not delivered yet.
  std::stable_sort(
      st.events.begin(), st.events.end(),
      [](const peer::user_event& a, const peer::user_event& b) { return a.ltime < b.ltime; });
  const auto now = steady_clock::now();
  for (auto& e : st.events) {
    if (!seen_events_.insert({e.origin, e.id}, now)) continue;
    ++server_.mutable_stats().user_events_replayed;
    deliver_event(e);
  }
}

}  // namespace shoal::daemon
