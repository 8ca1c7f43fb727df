#include "server.hpp"

#include "peer_messages.hpp"

#include "names.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <shoal/version.hpp>

namespace shoal::daemon {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

const char* status_name(member_state s) noexcept {
  const auto i = static_cast<std::size_t>(s);
  return i < status_names.size() ? status_names[i].data() : "unknown";
}

const char* event_name(event_type t) noexcept {
  const auto i = static_cast<std::size_t>(t);
  return i < event_names.size() ? event_names[i].data() : "unknown";
}

void write_str(writer& w, std::string_view s) {
  w.pack_str(static_cast<std::uint32_t>(s.size()));
  w.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

namespace {

constexpr std::uint32_t max_stream_types = 64;

std::vector<std::uint8_t> reply_frame(std::uint64_t id, const char* key,
                                      const std::function<void(writer&)>& fill) {
  msgpack::sbuffer b;
  writer w(b);
  w.pack_map(2);
  write_str(w, "id");
  w.pack_uint64(id);
  write_str(w, key);
  fill(w);
  return make_frame(b);
}

/// Bytes queued to one client (replies, events, snapshot frames) before it
/// is cut off as lagged, whatever stream_backlog says.
constexpr std::size_t max_queued_bytes = 32u << 20;
/// Names one coalescing stream holds at once; events of further names are
/// delivered at once.
constexpr std::size_t max_held_names = 1024;

/// What a client of the read-only socket may do: read the view and watch it.
bool read_only_command(std::string_view cmd) {
  return cmd == "members" || cmd == "member" || cmd == "info" || cmd == "stats" ||
         cmd == "stream" || cmd == "stop" || cmd == "handshake";
}

}  // namespace

void write_member(writer& w, const member& m) {
  w.pack_map(8);
  write_str(w, "name");
  write_str(w, m.name);
  write_str(w, "addr");
  write_str(w, m.addr.ip_string());
  write_str(w, "port");
  w.pack_uint16(m.addr.port());
  write_str(w, "status");
  write_str(w, status_name(m.state));
  write_str(w, "incarnation");
  w.pack_uint64(m.incarnation);
  write_str(w, "tags");
  w.pack_map(static_cast<std::uint32_t>(m.tags.size()));
  for (const auto& [k, v] : m.tags) {
    write_str(w, k);
    write_str(w, v);
  }
  write_str(w, "protocol");
  w.pack_uint8(m.protocol);
  write_str(w, "damped");
  w.pack(m.damped);
}

// --- session ------------------------------------------------------------------

session::session(server& srv, local::socket sock)
    : srv_(srv),
      sock_(std::move(sock)),
      frame_timer_(srv.context()),
      linger_timer_(srv.context()),
      coalesce_timer_(srv.context()),
      reader_(srv.limits().max_frame_bytes) {}

void session::start() {
  do_read();
}

void session::do_read() {
  if (reading_ || busy_ || closing_ || closed_) return;
  reading_ = true;
  sock_.async_read_some(asio::buffer(rbuf_),
                        [self = shared_from_this()](const boost::system::error_code& ec,
                                                    std::size_t n) { self->on_read(ec, n); });
}

void session::on_read(const boost::system::error_code& ec, std::size_t n) {
  reading_ = false;
  if (closed_) return;
  if (ec) {
    // End of file or reset: a started frame is dropped without a reply.
    if (reader_.mid_frame() && ec == asio::error::eof) ++srv_.mutable_stats().frames_timed_out;
    close();
    return;
  }
  reader_.feed({rbuf_.data(), n});
  process();
}

void session::process() {
  std::vector<std::uint8_t> frame;
  while (!busy_ && !closing_ && !closed_) {
    switch (reader_.next(frame)) {
      case frame_reader::status::need_more:
        arm_frame_timer();
        do_read();
        return;
      case frame_reader::status::too_large:
        frame_timer_.cancel();
        ++srv_.mutable_stats().frames_too_large;
        error(0, "frame_too_large",
              "frame length is 0 or exceeds max_frame_bytes (" +
                  std::to_string(srv_.limits().max_frame_bytes) + ")");
        closing_ = true;
        if (!writing_) close();
        return;
      case frame_reader::status::frame:
        ++srv_.mutable_stats().frames_in;
        dispatch(frame);
        break;
    }
  }
}

void session::arm_frame_timer() {
  if (!reader_.mid_frame()) {
    frame_timer_.cancel();
    return;
  }
  // Progress re-arms the deadline; a peer that stops sending mid-frame is cut off.
  frame_timer_.expires_after(srv_.limits().frame_timeout);
  frame_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed_) return;
    ++self->srv_.mutable_stats().frames_timed_out;
    self->srv_.log().debug("socket client cut off: incomplete frame for {} ms",
                           self->srv_.limits().frame_timeout.count());
    self->close();
  });
}

parsed_request parse_request(std::span<const std::uint8_t> frame) {
  parsed_request r;
  try {
    std::size_t off = 0;
    r.handle = msgpack::unpack(reinterpret_cast<const char*>(frame.data()), frame.size(), off,
                               nullptr, nullptr, frame_unpack_limit(frame.size()));
    if (off != frame.size()) throw std::runtime_error("trailing bytes after the map");
  } catch (const std::exception&) {
    r.code = "bad_frame";
    r.message = "the frame is not one msgpack map";
    return r;
  }
  const msgpack::object& req = r.handle.get();
  const msgpack::object* id_o = map_get(req, "id");
  if (req.type != msgpack::type::MAP || !id_o || id_o->type != msgpack::type::POSITIVE_INTEGER ||
      id_o->via.u64 == 0 || id_o->via.u64 > (std::uint64_t{1} << 63)) {
    r.code = "bad_frame";
    r.message = "a request is a map with a positive integer \"id\"";
    return r;
  }
  r.id = id_o->via.u64;
  const auto cmd = as_str(map_get(req, "cmd"));
  if (!cmd) {
    r.code = "bad_request";
    r.message = "missing string \"cmd\"";
    return r;
  }
  r.cmd = *cmd;
  const msgpack::object* args = map_get(req, "args");
  if (args && args->type == msgpack::type::NIL) args = nullptr;
  if (args && args->type != msgpack::type::MAP) {
    r.code = "bad_request";
    r.message = "\"args\" must be a map";
    return r;
  }
  static const msgpack::object empty_map = [] {
    msgpack::object o;
    o.type = msgpack::type::MAP;
    o.via.map.size = 0;
    o.via.map.ptr = nullptr;
    return o;
  }();
  r.args = args ? args : &empty_map;
  return r;
}

void session::dispatch(const std::vector<std::uint8_t>& frame) {
  const parsed_request r = parse_request(frame);
  if (r.code) {
    if (std::string_view(r.code) == "bad_frame") ++srv_.mutable_stats().bad_frames;
    error(r.id, r.code, r.message);  // bad_request: counted by error()
    return;
  }
  const std::uint64_t id = r.id;
  const std::optional<std::string_view> cmd = r.cmd;
  const msgpack::object& a = *r.args;

  if (*cmd == "handshake") {
    const msgpack::object* v = map_get(a, "version");
    if (!v || v->type != msgpack::type::POSITIVE_INTEGER) {
      error(id, "bad_request", "handshake needs an integer \"version\"");
      return;
    }
    if (v->via.u64 != protocol_version) {
      error(id, "unsupported_version",
            "this daemon speaks version 1 only (min_version 1, max_version 1)");
      return;
    }
    handshaken_ = true;
    reply(id, [](writer& w) {
      w.pack_map(4);
      write_str(w, "version");
      w.pack_uint32(protocol_version);
      write_str(w, "daemon");
      write_str(w, SHOAL_VERSION_STRING);
      write_str(w, "min_version");
      w.pack_uint32(protocol_version);
      write_str(w, "max_version");
      w.pack_uint32(protocol_version);
    });
    return;
  }
  if (!handshaken_) {
    error(id, "handshake_required", "send handshake first");
    return;
  }
  if (read_only_ && !read_only_command(*cmd)) {
    ++srv_.mutable_stats().read_only_refused;
    error(id, "read_only",
          "this socket is read-only (members, member, info, stats, stream, stop); use the "
          "daemon's main socket to change anything");
    return;
  }
  if (*cmd == "stream") {
    stream_filter filter;
    if (const auto* t = map_get(a, "types")) {
      if (t->type != msgpack::type::ARRAY) {
        error(id, "bad_request", "\"types\" must be an array of strings");
        return;
      }
      if (t->via.array.size > max_stream_types) {
        error(id, "invalid_argument",
              "at most " + std::to_string(max_stream_types) + " types per stream");
        return;
      }
      for (std::uint32_t i = 0; i < t->via.array.size; ++i) {
        const auto s = as_str(&t->via.array.ptr[i]);
        if (!s) {
          error(id, "bad_request", "\"types\" must be an array of strings");
          return;
        }
        if (*s == "user") {
          filter.all_user = true;
          continue;
        }
        if (s->rfind("user:", 0) == 0 && s->size() > 5 &&
            s->size() <= 5 + peer::max_event_name_bytes) {
          filter.user_names.insert(std::string(s->substr(5)));
          continue;
        }
        if (*s == "query") {
          filter.all_queries = true;
          continue;
        }
        if (s->rfind("query:", 0) == 0 && s->size() > 6 &&
            s->size() <= 6 + peer::max_event_name_bytes) {
          filter.query_names.insert(std::string(s->substr(6)));
          continue;
        }
        const auto type = parse_event(*s);
        if (!type) {
          error(id, "invalid_argument",
                "unknown event type (joined updated suspected alive failed left reaped user "
                "user:NAME query query:NAME)");
          return;
        }
        filter.types.insert(*type);
      }
    }
    if (const auto* co = map_get(a, "coalesce_ms")) {
      if (co->type != msgpack::type::POSITIVE_INTEGER) {
        error(id, "bad_request", "\"coalesce_ms\" must be an unsigned integer");
        return;
      }
      if (co->via.u64 > 3'600'000) {
        error(id, "invalid_argument", "coalesce_ms must be 0 to 3600000");
        return;
      }
      filter.coalesce = std::chrono::milliseconds(co->via.u64);
    }
    bool snapshot = false;
    if (const auto* sn = map_get(a, "snapshot")) {
      if (sn->type != msgpack::type::BOOLEAN) {
        error(id, "bad_request", "\"snapshot\" must be a boolean");
        return;
      }
      snapshot = sn->via.boolean;
    }
    if (streams_.count(id) != 0) {
      error(id, "invalid_argument",
            "a stream with this id is open on this connection: stop it or use another id");
      return;
    }
    if (streams_.size() >= srv_.limits().max_streams) {
      error(id, "too_many_streams",
            "at most " + std::to_string(srv_.limits().max_streams) + " streams per connection");
      return;
    }
    reply(id, [](writer& w) { w.pack_map(0); });
    auto& st = streams_[id] = std::move(filter);
    if (snapshot) {
      // The view as it is now, before any later event (one thread: nothing
      // can come between the snapshot and the stream's first live event).
      const auto now =
          static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
      const auto members = srv_.handler().snapshot();
      for (const auto& m : members) {
        enqueue(reply_frame(id, "event",
                            [&](writer& w) {
                              w.pack_map(4);
                              write_str(w, "seq");
                              w.pack_uint64(++st.seq);
                              write_str(w, "type");
                              write_str(w, "member");
                              write_str(w, "member");
                              write_member(w, m);
                              write_str(w, "time_ms");
                              w.pack_uint64(now);
                            }),
                true);
        if (closing_) return;
      }
      enqueue(reply_frame(id, "event",
                          [&](writer& w) {
                            w.pack_map(4);
                            write_str(w, "seq");
                            w.pack_uint64(++st.seq);
                            write_str(w, "type");
                            write_str(w, "snapshot_end");
                            write_str(w, "members");
                            w.pack_uint64(members.size());
                            write_str(w, "time_ms");
                            w.pack_uint64(now);
                          }),
              true);
    }
    return;
  }
  if (*cmd == "stop") {
    const msgpack::object* s = map_get(a, "stream");
    if (!s || s->type != msgpack::type::POSITIVE_INTEGER) {
      error(id, "bad_request", "stop needs an integer \"stream\"");
      return;
    }
    if (streams_.erase(s->via.u64) == 0) {
      error(id, "not_found", "no open stream with that id on this connection");
      return;
    }
    reply(id, [](writer& w) { w.pack_map(0); });
    return;
  }
  busy_ = true;
  bool known = false;
  try {
    known = srv_.handler().on_request(shared_from_this(), id, *cmd, a);
  } catch (const std::exception& e) {
    srv_.log().error("socket command failed: cmd={} error={}", *cmd, e.what());
    if (busy_) error(id, "internal", e.what());
    return;
  }
  if (!known) {
    ++srv_.mutable_stats().unknown_commands;
    error(id, "unknown_command", "unknown command '" + std::string(cmd->substr(0, 64)) + "'");
  }
}

void session::finish_request() {
  if (!busy_) return;
  busy_ = false;
  // Requests buffered while this one ran are handled now, outside the reply.
  asio::post(srv_.context(), [self = shared_from_this()] { self->process(); });
}

void session::reply(std::uint64_t id, const std::function<void(writer&)>& fill) {
  if (closed_) return;
  enqueue(reply_frame(id, "result", fill));
  finish_request();
}

void session::error(std::uint64_t id, std::string_view code, std::string_view message) {
  // Every bad_request, of the envelope or of a command's arguments.
  if (code == "bad_request") ++srv_.mutable_stats().bad_requests;
  if (closed_) return;
  enqueue(reply_frame(id, "error", [&](writer& w) {
    w.pack_map(2);
    write_str(w, "code");
    write_str(w, code);
    write_str(w, "message");
    write_str(w, message);
  }));
  finish_request();
}

void session::publish(const event& ev, std::uint64_t time_ms) {
  if (closed_ || closing_) return;
  for (auto& [sid, stream] : streams_) {
    auto& filter = stream;  // a plain reference: lambdas below may use it (clang 14)
    if (!filter.wants(ev.type)) continue;
    enqueue(reply_frame(sid, "event", [&](writer& w) {
      w.pack_map(4);
      write_str(w, "seq");
      w.pack_uint64(++filter.seq);
      write_str(w, "type");
      write_str(w, event_name(ev.type));
      write_str(w, "member");
      write_member(w, ev.who);
      write_str(w, "time_ms");
      w.pack_uint64(time_ms);
    }));
    if (closing_) return;
  }
}

void session::write_user_event(std::uint64_t sid, stream_filter& f, const peer::user_event& ev,
                               std::uint64_t time_ms) {
  enqueue(reply_frame(sid, "event", [&](writer& w) {
    w.pack_map(7);
    write_str(w, "seq");
    w.pack_uint64(++f.seq);
    write_str(w, "type");
    write_str(w, "user");
    write_str(w, "name");
    write_str(w, ev.name);
    write_str(w, "payload");
    w.pack_bin(static_cast<std::uint32_t>(ev.payload.size()));
    w.pack_bin_body(reinterpret_cast<const char*>(ev.payload.data()),
                    static_cast<std::uint32_t>(ev.payload.size()));
    write_str(w, "origin");
    write_str(w, ev.origin);
    write_str(w, "ltime");
    w.pack_uint64(ev.ltime);
    write_str(w, "time_ms");
    w.pack_uint64(time_ms);
  }));
}

void session::publish_user(const peer::user_event& ev, std::uint64_t time_ms) {
  if (closed_ || closing_) return;
  const bool coalescable = (ev.flags & peer::event_flag_coalesce) != 0;
  for (auto& [sid, stream] : streams_) {
    auto& filter = stream;  // a plain reference: lambdas below may use it (clang 14)
    if (!filter.wants_user(ev.name)) continue;
    if (coalescable && filter.coalesce > std::chrono::milliseconds::zero() &&
        (filter.held.size() < max_held_names || filter.held.count(ev.name) != 0)) {
      // Held for the stream's window; a later one of the name replaces it.
      auto [it, fresh] = filter.held.try_emplace(ev.name);
      if (!fresh) ++srv_.mutable_stats().user_events_coalesced;
      if (fresh) it->second.due = std::chrono::steady_clock::now() + filter.coalesce;
      it->second.ev = ev;
      it->second.time_ms = time_ms;
      continue;
    }
    write_user_event(sid, filter, ev, time_ms);
    if (closing_) return;
  }
  flush_held();
}

void session::flush_held() {
  if (closed_ || closing_) return;
  const auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> next;
  for (auto& [sid, stream] : streams_) {
    auto& filter = stream;  // a plain reference: lambdas below may use it (clang 14)
    for (auto it = filter.held.begin(); it != filter.held.end();) {
      if (it->second.due > now) {
        if (!next || it->second.due < *next) next = it->second.due;
        ++it;
        continue;
      }
      write_user_event(sid, filter, it->second.ev, it->second.time_ms);
      if (closing_) return;
      it = filter.held.erase(it);
    }
  }
  if (!next || (coalesce_armed_ && coalesce_timer_.expiry() <= *next)) return;
  // (Re)armed for the earliest due event; a replaced wait is ignored by its
  // generation.
  coalesce_armed_ = true;
  const auto gen = ++coalesce_gen_;
  coalesce_timer_.expires_at(*next);
  coalesce_timer_.async_wait([self = shared_from_this(), gen](const boost::system::error_code& ec) {
    if (gen != self->coalesce_gen_) return;
    self->coalesce_armed_ = false;
    if (!ec) self->flush_held();
  });
}

std::size_t session::publish_query(const local_query& lq, std::uint64_t time_ms) {
  if (closed_ || closing_) return 0;
  std::size_t n = 0;
  for (auto& [sid, stream] : streams_) {
    auto& filter = stream;  // a plain reference: lambdas below may use it (clang 14)
    if (!filter.wants_query(lq.q->name)) continue;
    enqueue(reply_frame(sid, "event", [&](writer& w) {
      w.pack_map(9);
      write_str(w, "seq");
      w.pack_uint64(++filter.seq);
      write_str(w, "type");
      write_str(w, "query");
      write_str(w, "name");
      write_str(w, lq.q->name);
      write_str(w, "payload");
      w.pack_bin(static_cast<std::uint32_t>(lq.q->payload.size()));
      w.pack_bin_body(reinterpret_cast<const char*>(lq.q->payload.data()),
                      static_cast<std::uint32_t>(lq.q->payload.size()));
      write_str(w, "origin");
      write_str(w, lq.q->origin);
      write_str(w, "ltime");
      w.pack_uint64(lq.q->ltime);
      write_str(w, "query");
      w.pack_uint64(lq.handle);
      write_str(w, "deadline_ms");
      w.pack_uint64(lq.deadline_ms);
      write_str(w, "time_ms");
      w.pack_uint64(time_ms);
    }));
    if (closing_) return n;
    ++n;
  }
  return n;
}

void session::push(std::uint64_t id, const std::function<void(writer&)>& fill) {
  if (closed_ || closing_) return;
  enqueue(reply_frame(id, "event", fill));
}

void session::push_out(std::vector<std::uint8_t> frame, bool unbounded) {
  queued_bytes_ += frame.size();
  out_.push_back(std::move(frame));
  out_unbounded_.push_back(unbounded);
  if (unbounded) ++unbounded_waiting_;
}

void session::pop_out() {
  queued_bytes_ -= out_.front().size();
  out_.pop_front();
  if (out_unbounded_.front()) --unbounded_waiting_;
  out_unbounded_.pop_front();
}

void session::enqueue(std::vector<std::uint8_t> frame, bool unbounded) {
  // Once cut off for lagging, the lagged frames are the last written.
  if (closed_ || lagged_) return;
  const std::size_t waiting =
      out_.size() - (writing_ && !out_unbounded_.front() ? 1 : 0) - unbounded_waiting_;
  // Frames beyond the backlog, or bytes beyond max_queued_bytes (snapshot
  // frames too): the client is not keeping up.
  if (!closing_ && ((!unbounded && waiting >= srv_.limits().stream_backlog) ||
                    queued_bytes_ + frame.size() > max_queued_bytes)) {
    lag();
    return;
  }
  push_out(std::move(frame), unbounded);
  do_write();
}

void session::lag() {
  // The client stopped reading: drop what waits, say so on every stream, close.
  const std::size_t keep = writing_ ? 1 : 0;
  const std::size_t dropped = out_.size() - keep;
  while (out_.size() > keep) {
    queued_bytes_ -= out_.back().size();
    if (out_unbounded_.back()) --unbounded_waiting_;
    out_.pop_back();
    out_unbounded_.pop_back();
  }
  lagged_ = true;
  ++srv_.mutable_stats().streams_lagged;
  srv_.log().warn("socket client cut off: fell behind by {} frames (stream_backlog)", dropped);
  closing_ = true;
  if (streams_.empty()) {
    // No stream to say it on: one connection-level error, then the close.
    push_out(reply_frame(0, "error",
                         [&](writer& w) {
                           w.pack_map(2);
                           write_str(w, "code");
                           write_str(w, "lagged");
                           write_str(w, "message");
                           write_str(w, "the client fell behind by " + std::to_string(dropped) +
                                            " frames (stream_backlog); the connection is closed");
                         }),
             false);
  }
  for (const auto& [sid, filter] : streams_) {
    push_out(reply_frame(sid, "lagged",
                         [&](writer& w) {
                           w.pack_map(1);
                           write_str(w, "dropped");
                           w.pack_uint64(dropped);
                         }),
             false);
  }
  streams_.clear();
  linger_timer_.expires_after(srv_.limits().lagged_linger);
  linger_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->close();
  });
  do_write();
}

void session::do_write() {
  if (writing_ || closed_) return;
  if (out_.empty()) {
    if (closing_) close();
    return;
  }
  writing_ = true;
  asio::async_write(sock_, asio::buffer(out_.front()),
                    [self = shared_from_this()](const boost::system::error_code& ec, std::size_t) {
                      self->writing_ = false;
                      if (self->closed_) return;
                      if (ec) {
                        self->close();
                        return;
                      }
                      ++self->srv_.mutable_stats().frames_out;
                      self->pop_out();
                      self->do_write();
                    });
}

void session::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  frame_timer_.cancel();
  linger_timer_.cancel();
  coalesce_timer_.cancel();
  sock_.shutdown(local::socket::shutdown_both, ignored);
  sock_.close(ignored);
  out_.clear();
  out_unbounded_.clear();
  unbounded_waiting_ = 0;
  queued_bytes_ = 0;
  streams_.clear();
  srv_.forget(this);
}

// --- server ---------------------------------------------------------------------

server::server(asio::io_context& ctx, server_limits limits, request_handler& handler,
               std::shared_ptr<spdlog::logger> log)
    : ctx_(ctx), limits_(limits), handler_(handler), log_(std::move(log)) {}

std::string server::listen(const std::string& path, unsigned mode, const std::string& group,
                           bool read_only) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return path + " exists and is not a socket; not touching it";
    // Someone answering means a live daemon: refuse. Refused means stale.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    const int rc = fd < 0 ? -1 : ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    const int err = errno;
    if (fd >= 0) ::close(fd);
    if (rc == 0) return "a live daemon already answers on " + path;
    if (err != ECONNREFUSED && err != ENOENT)
      return "cannot check " + path + ": " + std::strerror(err);
    log_->info("replacing stale socket file path={}", path);
    ::unlink(path.c_str());
  }
  boost::system::error_code ec;
  auto l = std::make_unique<listener>(ctx_);
  l->read_only = read_only;
  auto& acceptor_ = l->acceptor;
  acceptor_.open(local(), ec);
  if (ec) return "socket: " + ec.message();
  // The file is created with `mode` from the start: no window where it is wider.
  const mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  acceptor_.bind(local::endpoint(path), ec);
  ::umask(old);
  if (ec) return "bind " + path + ": " + ec.message();
  if (::chmod(path.c_str(), mode) != 0) return "chmod " + path + ": " + std::strerror(errno);
  if (!group.empty()) {
    struct group* g = ::getgrnam(group.c_str());
    if (!g) return "socket_group: no group named '" + group + "'";
    if (::chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0)
      return "chown " + path + ": " + std::strerror(errno);
  }
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return "listen " + path + ": " + ec.message();
  l->path = path;
  listeners_.push_back(std::move(l));
  do_accept(*listeners_.back());
  return {};
}

void server::do_accept(listener& l) {
  l.acceptor.async_accept([this, &l](const boost::system::error_code& ec, local::socket sock) {
    if (ec == asio::error::operation_aborted || !l.acceptor.is_open()) return;
    if (!ec) {
      if (sessions_.size() >= limits_.max_connections) {
        ++stats_.connections_rejected;
        log_->warn("socket client refused: max_connections={} reached", limits_.max_connections);
        auto s = std::make_shared<session>(*this, std::move(sock));
        sessions_[s.get()] = s;
        s->closing_ = true;
        s->error(0, "too_many_connections", "max_connections reached; try again later");
      } else {
        ++stats_.connections;
        auto s = std::make_shared<session>(*this, std::move(sock));
        s->read_only_ = l.read_only;
        sessions_[s.get()] = s;
        s->start();
      }
    }
    do_accept(l);
  });
}

void server::close() {
  boost::system::error_code ignored;
  for (auto& l : listeners_) l->acceptor.close(ignored);
  auto all = sessions_;
  for (auto& [p, w] : all)
    if (auto s = w.lock()) s->close();
  sessions_.clear();
  for (auto& l : listeners_)
    if (!l->path.empty()) ::unlink(l->path.c_str());
  listeners_.clear();
}

void server::publish(const event& ev) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto all = sessions_;
  for (auto& [p, w] : all)
    if (auto s = w.lock()) s->publish(ev, static_cast<std::uint64_t>(now));
}

void server::publish_user(const peer::user_event& ev) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto all = sessions_;
  for (auto& [p, w] : all)
    if (auto s = w.lock()) s->publish_user(ev, static_cast<std::uint64_t>(now));
}

std::size_t server::publish_query(const local_query& lq) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  std::size_t n = 0;
  for (auto& [p, w] : sessions_)
    if (auto s = w.lock()) n += s->publish_query(lq, static_cast<std::uint64_t>(now));
  return n;
}

std::size_t server::streams() const {
  std::size_t n = 0;
  for (const auto& [p, w] : sessions_)
    if (auto s = w.lock()) n += s->stream_count();
  return n;
}

}  // namespace shoal::daemon
