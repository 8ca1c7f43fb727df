#include "client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>

namespace shoal::daemon {

namespace {

class client_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shoal.client"; }
  std::string message(int v) const override {
    switch (static_cast<client_errc>(v)) {
      case client_errc::socket_missing:
        return "no socket file";
      case client_errc::connection_refused:
        return "connection refused (nothing listens on the socket)";
      case client_errc::permission_denied:
        return "permission denied";
      case client_errc::daemon_busy:
        return "daemon busy (listen backlog full)";
      case client_errc::bad_socket_path:
        return "bad socket path";
      case client_errc::not_a_socket:
        return "not a socket";
      case client_errc::timed_out:
        return "timed out waiting for the daemon";
      case client_errc::connection_closed:
        return "the daemon closed the connection";
      case client_errc::frame_too_large:
        return "frame from the daemon over the client's limit";
      case client_errc::bad_reply:
        return "malformed frame from the daemon";
      case client_errc::handshake_failed:
        return "handshake failed";
      case client_errc::stream_ended:
        return "no open stream";
    }
    return "client error " + std::to_string(v);
  }
};

int remaining_ms(client_clock::time_point deadline) {
  // Rounded up: poll() must not return before the deadline.
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - client_clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, std::numeric_limits<int>::max()));
}

/// poll() one fd for `events` until the deadline; EINTR retries.
std::error_code wait_fd(int fd, short events, client_clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return {};
    if (r == 0) return client_errc::timed_out;
    if (errno != EINTR) return {errno, std::system_category()};
  }
}

std::error_code connect_errno(int e, const std::string& path) {
  switch (e) {
    case ENOENT:
      return client_errc::socket_missing;
    case ECONNREFUSED: {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode)) return client_errc::not_a_socket;
      return client_errc::connection_refused;
    }
    case EACCES:
    case EPERM:
      return client_errc::permission_denied;
    case EAGAIN:
      return client_errc::daemon_busy;
    case ENOTSOCK:
    case ENOTDIR:
      return client_errc::not_a_socket;
    default:
      return {e, std::system_category()};
  }
}

}  // namespace

const std::error_category& client_category() noexcept {
  static const client_category_impl c;
  return c;
}

std::string describe(const std::error_code& ec, const std::string& path) {
  if (ec.category() == client_category()) {
    switch (static_cast<client_errc>(ec.value())) {
      case client_errc::socket_missing:
        return "cannot connect to shoald: no socket at " + path +
               " (is shoald running? use --socket or SHOAL_SOCKET)";
      case client_errc::connection_refused:
        return "cannot connect to shoald: nothing listens on " + path +
               " (stale socket: shoald is not running)";
      case client_errc::permission_denied:
        return "cannot connect to shoald: permission denied on " + path +
               " (the socket is mode 0600 by default: run as shoald's user)";
      case client_errc::daemon_busy:
        return "cannot connect to shoald at " + path + ": too many pending connections";
      case client_errc::bad_socket_path:
        return "bad socket path '" + path + "' (empty or longer than " +
               std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)";
      case client_errc::not_a_socket:
        return "cannot connect to shoald: " + path + " is not a socket";
      default:
        break;
    }
  }
  return ec.message() + " (socket " + path + ")";
}

// ---- msgpack <-> json ----

bool to_json(const msgpack::object& o, json& out, int depth_left) {
  if (depth_left <= 0) return false;
  switch (o.type) {
    case msgpack::type::NIL:
      out = nullptr;
      return true;
    case msgpack::type::BOOLEAN:
      out = o.via.boolean;
      return true;
    case msgpack::type::POSITIVE_INTEGER:
      out = o.via.u64;
      return true;
    case msgpack::type::NEGATIVE_INTEGER:
      out = o.via.i64;
      return true;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      out = o.via.f64;
      return true;
    case msgpack::type::STR:
      out = std::string(o.via.str.ptr, o.via.str.size);
      return true;
    case msgpack::type::BIN: {
      const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
      out = json::binary(std::vector<std::uint8_t>(p, p + o.via.bin.size));
      return true;
    }
    case msgpack::type::ARRAY: {
      out = json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        json v;
        if (!to_json(o.via.array.ptr[i], v, depth_left - 1)) return false;
        out.push_back(std::move(v));
      }
      return true;
    }
    case msgpack::type::MAP: {
      out = json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) return false;
        json v;
        if (!to_json(kv.val, v, depth_left - 1)) return false;
        out[std::string(kv.key.via.str.ptr, kv.key.via.str.size)] = std::move(v);
      }
      return true;
    }
    default:  // ext
      return false;
  }
}

std::vector<std::uint8_t> encode_frame(const json& v) {
  const auto body = json::to_msgpack(v);
  return make_frame(reinterpret_cast<const char*>(body.data()), body.size());
}

std::vector<std::uint8_t> encode_request(std::uint64_t id, std::string_view cmd, const json& args) {
  // In the order of PROTOCOL.md's example: id, cmd, args.
  nlohmann::ordered_json request = {{"id", id}, {"cmd", cmd}};
  if (!args.is_null()) request["args"] = nlohmann::ordered_json(args);
  const auto body = nlohmann::ordered_json::to_msgpack(request);
  return make_frame(reinterpret_cast<const char*>(body.data()), body.size());
}

// ---- connection ----

connection::~connection() {
  close();
}

connection::connection(connection&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), reader_(std::move(o.reader_)) {}

connection& connection::operator=(connection&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    reader_ = std::move(o.reader_);
  }
  return *this;
}

void connection::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void connection::shutdown_write() noexcept {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

connection connection::open(const std::string& path, std::chrono::milliseconds timeout,
                            std::error_code& ec, std::size_t max_frame) {
  ec.clear();
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
    ec = client_errc::bad_socket_path;
    return {};
  }
  std::memcpy(sa.sun_path, path.data(), path.size());
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    ec = {errno, std::system_category()};
    return {};
  }
  connection c(fd, max_frame);
  // A non-blocking connect on a Unix socket either completes at once or
  // fails with EAGAIN when the backlog is full; retry that until the deadline.
  const auto deadline = client_clock::now() + timeout;
  for (;;) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) return c;
    const int e = errno;
    if (e == EINTR) continue;
    if (e == EINPROGRESS) {
      if ((ec = wait_fd(fd, POLLOUT, deadline))) return {};
      int so = 0;
      socklen_t len = sizeof so;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
      if (so == 0) return c;
      ec = connect_errno(so, path);
      return {};
    }
    if (e == EAGAIN && client_clock::now() < deadline) {
      ::poll(nullptr, 0, std::min(20, remaining_ms(deadline)));
      continue;
    }
    ec = connect_errno(e, path);
    return {};
  }
}

std::error_code connection::write(std::span<const std::uint8_t> bytes,
                                  client_clock::time_point deadline) {
  if (fd_ < 0) return client_errc::connection_closed;
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto ec = wait_fd(fd_, POLLOUT, deadline)) return ec;
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) return client_errc::connection_closed;
    return {errno, std::system_category()};
  }
  return {};
}

std::error_code connection::fill(client_clock::time_point deadline) {
  std::uint8_t buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      reader_.feed({buf, static_cast<std::size_t>(n)});
      return {};
    }
    if (n == 0) return client_errc::connection_closed;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET) return client_errc::connection_closed;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return {errno, std::system_category()};
    if (auto ec = wait_fd(fd_, POLLIN, deadline)) return ec;
  }
}

std::error_code connection::read_raw(std::vector<std::uint8_t>& payload,
                                     client_clock::time_point deadline) {
  if (fd_ < 0) return client_errc::connection_closed;
  for (;;) {
    switch (reader_.next(payload)) {
      case frame_reader::status::frame:
        return {};
      case frame_reader::status::too_large:
        return client_errc::frame_too_large;
      case frame_reader::status::need_more:
        break;
    }
    if (auto ec = fill(deadline)) return ec;
  }
}

std::error_code connection::read(json& out, client_clock::time_point deadline) {
  std::vector<std::uint8_t> payload;
  if (auto ec = read_raw(payload, deadline)) return ec;
  try {
    const auto* data = reinterpret_cast<const char*>(payload.data());
    auto oh =
        msgpack::unpack(data, payload.size(), nullptr, nullptr, frame_unpack_limit(payload.size()));
    if (oh.get().type != msgpack::type::MAP || !to_json(oh.get(), out))
      return client_errc::bad_reply;
  } catch (const std::exception&) {  // msgpack reports bad bytes and limits by throwing
    return client_errc::bad_reply;
  }
  return {};
}

// ---- client ----

namespace {

/// A non-zero uint id in the frame, or 0 when absent or invalid.
std::uint64_t frame_id(const json& f) {
  const auto it = f.find("id");
  if (it == f.end() || !it->is_number_unsigned()) return 0;
  return it->get<std::uint64_t>();
}

std::optional<daemon_error> error_of(const json& f, std::uint64_t id) {
  const auto it = f.find("error");
  if (it == f.end()) return std::nullopt;
  daemon_error e;
  e.id = id;
  if (it->is_object()) {
    if (auto c = it->find("code"); c != it->end() && c->is_string()) e.code = c->get<std::string>();
    if (auto m = it->find("message"); m != it->end() && m->is_string())
      e.message = m->get<std::string>();
  }
  if (e.code.empty()) e.code = "internal";  // malformed error object: still an error
  return e;
}

}  // namespace

std::optional<client> client::connect(const options& opt, reply& out) {
  out = reply{};
  auto conn = connection::open(opt.socket_path, opt.timeout, out.ec, opt.max_frame);
  if (out.ec) return std::nullopt;
  return handshake(std::move(conn), opt, out);
}

std::optional<client> client::handshake(connection conn, const options& opt, reply& out) {
  client c(std::move(conn), opt);
  out = c.call("handshake", json{{"version", protocol_version}});
  if (!out.ok()) return std::nullopt;
  const auto v = out.result.find("version");
  if (!out.result.is_object() || v == out.result.end() || !v->is_number_unsigned() ||
      v->get<std::uint64_t>() != protocol_version) {
    out.ec = client_errc::handshake_failed;
    return std::nullopt;
  }
  c.hello_ = out.result;
  return c;
}

reply client::call(std::string_view cmd, const json& args) {
  return call(cmd, args, opt_.timeout);
}

reply client::call(std::string_view cmd, const json& args, std::chrono::milliseconds timeout) {
  return exchange(cmd, args, client_clock::now() + timeout);
}

bool client::take_stream_frame(const json& f, std::error_code& ec) {
  const bool is_event = f.contains("event");
  const bool is_lagged = f.contains("lagged");
  if (!is_event && !is_lagged) return false;
  const auto id = frame_id(f);
  if (id == 0 || !streams_.contains(id)) {
    ec = client_errc::bad_reply;  // an event for a stream we never opened
    return true;
  }
  stream_message m;
  m.stream = id;
  if (is_lagged) {
    m.what = stream_message::kind::lagged;
    m.body = f["lagged"];
    streams_.erase(id);
  } else {
    m.body = f["event"];
    if (!m.body.is_object()) {
      ec = client_errc::bad_reply;
      return true;
    }
  }
  if (queued_.size() >= opt_.max_queued_events && !queued_.empty()) {
    queued_.pop_front();
    ++local_dropped_;
  }
  queued_.push_back(std::move(m));
  return true;
}

reply client::members(const json& args) {
  json a = args.is_object() ? args : json::object();
  json all = json::array();
  for (;;) {
    auto r = call("members", a);
    if (!r.ok()) return r;
    const auto it = r.result.find("members");
    if (!r.result.is_object() || it == r.result.end() || !it->is_array()) {
      r.ec = client_errc::bad_reply;
      return r;
    }
    for (auto& m : *it) all.push_back(std::move(m));
    const auto next = r.result.find("next");
    if (next == r.result.end()) {
      r.result = json{{"members", std::move(all)}};
      return r;
    }
    if (!next->is_string() || (a.contains("after") && a["after"] == *next)) {
      r.ec = client_errc::bad_reply;  // a page that does not move on
      return r;
    }
    a["after"] = *next;
  }
}

reply client::query(const json& args, const std::function<void(const json&)>& on_progress,
                    std::chrono::milliseconds wait) {
  return exchange("query", args, client_clock::now() + wait, &on_progress);
}

reply client::exchange(std::string_view cmd, const json& args, client_clock::time_point deadline,
                       const std::function<void(const json&)>* progress) {
  reply r;
  const std::uint64_t id = next_id_++;
  if ((r.ec = conn_.write(encode_request(id, cmd, args), deadline))) {
    // A daemon that refuses a connection (too_many_connections) writes why
    // and closes: our write can fail before we read it. Read what is left.
    json f;
    if (r.ec == client_errc::connection_closed && !conn_.read(f, client_clock::now())) {
      if (auto e = error_of(f, frame_id(f)); e && e->id == 0) {
        r.ec.clear();
        r.error = std::move(e);
      }
    }
    return r;
  }
  for (;;) {
    json f;
    if ((r.ec = conn_.read(f, deadline))) return r;
    if (progress && frame_id(f) == id && f.contains("event")) {
      // An intermediate frame of this very request (a query's acks and
      // responses).
      if (!f["event"].is_object()) {
        r.ec = client_errc::bad_reply;
        return r;
      }
      (*progress)(f["event"]);
      continue;
    }
    std::error_code sec;
    if (take_stream_frame(f, sec)) {
      if (sec) {
        r.ec = sec;
        return r;
      }
      continue;
    }
    const auto got = frame_id(f);
    if (auto e = error_of(f, got)) {
      // Our request's error, or a connection-level one (id 0: the daemon
      // could not attribute it, e.g. too_many_connections).
      if (got == id || got == 0) {
        r.error = std::move(e);
        return r;
      }
      r.ec = client_errc::bad_reply;
      return r;
    }
    const auto res = f.find("result");
    if (got != id || res == f.end()) {
      r.ec = client_errc::bad_reply;  // replies come in order: anything else is broken
      return r;
    }
    r.result = *res;
    return r;
  }
}

reply client::open_stream(const std::vector<std::string>& types, std::uint64_t& id, bool snapshot,
                          std::uint64_t coalesce_ms) {
  json args = json::object();
  if (!types.empty()) args["types"] = types;
  if (snapshot) args["snapshot"] = true;
  if (coalesce_ms > 0) args["coalesce_ms"] = coalesce_ms;
  // The id is known before the reply so that events right behind it are accepted.
  id = next_id_;
  streams_.insert(id);
  auto r = call("stream", args);
  if (!r.ok()) streams_.erase(id);
  return r;
}

reply client::stop_stream(std::uint64_t id) {
  auto r = call("stop", json{{"stream", id}});
  if (r.ok()) {
    streams_.erase(id);
    std::erase_if(queued_, [id](const stream_message& m) { return m.stream == id; });
  }
  return r;
}

std::error_code client::next_event(stream_message& out, std::chrono::milliseconds timeout) {
  const auto deadline = client_clock::now() + timeout;
  for (;;) {
    if (!queued_.empty()) {
      out = std::move(queued_.front());
      queued_.pop_front();
      return {};
    }
    if (streams_.empty()) return client_errc::stream_ended;
    json f;
    if (auto ec = conn_.read(f, deadline)) return ec;
    std::error_code sec;
    if (!take_stream_frame(f, sec)) return client_errc::bad_reply;  // a reply nobody asked for
    if (sec) return sec;
  }
}

}  // namespace shoal::daemon
