// TCP: the runtime's acceptor and the exchanges the core asks for (the
// runtime's side), and the two classes that run one exchange each
// (io/streams.hpp): tcp_session serves a peer's request, stream_client sends
// ours and reads the reply.
#include "io/streams.hpp"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "io/runtime.hpp"

namespace shoal::io {

namespace {

constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

void close_socket(tcp::socket& s) {
  error_code ignored;
  s.shutdown(tcp::socket::shutdown_both, ignored);
  s.close(ignored);
}

}  // namespace

// ---- the runtime: accepting peers' exchanges, starting ours ----

void runtime::do_accept() {
  acceptor_.async_accept([self = shared_from_this()](const error_code& ec, tcp::socket socket) {
    self->on_accept(ec, std::move(socket));
  });
}

void runtime::on_accept(const error_code& ec, tcp::socket socket) {
  if (ec == net::error::operation_aborted || closed_) return;
  if (ec) {  // e.g. out of descriptors: try again a little later, do not spin
    fail(ec, "tcp accept");
    accept_retry_timer_.expires_after(accept_retry_delay);
    accept_retry_timer_.async_wait([self = shared_from_this()](const error_code& e) {
      if (e == net::error::operation_aborted || self->closed_) return;
      self->do_accept();
    });
    return;
  }
  if (sessions_.size() >= cfg_.max_tcp_sessions) {
    bump(counters_.tcp_rejected);
    warn_limited("tcp connection closed: max_tcp_sessions reached", [&] {
      error_code ignored;
      return "peer=" + to_address(socket.remote_endpoint(ignored)).to_string();
    });
    error_code ignored;
    socket.close(ignored);
  } else {
    bump(counters_.tcp_accepted);
    const std::uint64_t id = next_io_id_++;
    auto session = std::make_shared<tcp_session>(shared_from_this(), id, std::move(socket));
    sessions_.emplace(id, session);
    session_count_ = sessions_.size();
    session->start();
  }
  do_accept();
}

bytes runtime::serve_stream(const address& from, std::span<const std::uint8_t> request) {
  if (closed_) return {};
  bytes opened;
  if (!open_in(request, opened, from, "tcp request", max_frame()))
    return {};  // close without a reply
  bytes reply;
  {
    std::lock_guard lock(mu_);
    reply = core_->handle_stream(now(), from, request, pending_);
  }
  drain();
  if (!reply.empty()) seal_out(reply);
  return reply;
}

void runtime::session_done(std::uint64_t session_id, bool /*ok*/) {
  sessions_.erase(session_id);
  session_count_ = sessions_.size();
}

void runtime::start_stream(stream_request req) {
  if (clients_.size() >= cfg_.max_tcp_sessions) {
    bump(counters_.streams_rejected);
    SHOAL_LOG(log_, spdlog::level::debug, "stream not started to={}: max_tcp_sessions reached",
              req.to.to_string());
    finish_stream(req.id, net::error::no_buffer_space, {});
    return;
  }
  SHOAL_LOG(log_, spdlog::level::debug, "stream start id={} to={} kind={} bytes={}", req.id,
            req.to.to_string(), static_cast<int>(req.kind), req.data.size());
  seal_out(req.data);
  const std::uint64_t id = next_io_id_++;
  auto client = std::make_shared<stream_client>(shared_from_this(), id, std::move(req));
  clients_.emplace(id, client);
  stream_count_ = clients_.size();
  client->start();
}

void runtime::stream_done(std::uint64_t client_id, std::uint64_t stream_id, const address& peer,
                          const error_code& e, std::span<const std::uint8_t> reply) {
  clients_.erase(client_id);
  stream_count_ = clients_.size();
  if (closed_) return;
  error_code ec = e;
  bytes opened;
  if (!ec && !open_in(reply, opened, peer, "tcp reply", max_frame()))
    ec = boost::system::errc::make_error_code(boost::system::errc::permission_denied);
  if (ec) {
    bump(counters_.streams_failed);
    SHOAL_LOG(log_, spdlog::level::debug, "stream failed id={} error={}", stream_id, ec.message());
  } else {
    bump(counters_.streams_ok);
  }
  finish_stream(stream_id, ec, reply);
  drain();
}

void runtime::finish_stream(std::uint64_t stream_id, const error_code& ec,
                            std::span<const std::uint8_t> reply) {
  {
    std::lock_guard lock(mu_);
    if (ec)
      core_->stream_failed(now(), stream_id, pending_);
    else
      core_->handle_stream_reply(now(), stream_id, reply, pending_);
  }
  const auto it = join_streams_.find(stream_id);
  if (it == join_streams_.end()) return;
  const auto op = it->second;
  join_streams_.erase(it);
  op->streams.erase(stream_id);
  if (ec)
    op->last_error = to_std(ec);
  else
    ++op->result.contacted;
  if (op->streams.empty()) complete_join(op, {});
}

std::size_t runtime::max_frame() const {
  return std::min<std::size_t>(cfg_.protocol.max_push_pull_bytes,
                               std::numeric_limits<std::uint32_t>::max());
}

// ---- tcp_session: a peer's request, the core's reply ----

tcp_session::tcp_session(std::shared_ptr<runtime> rt, std::uint64_t id, tcp::socket socket)
    : rt_(std::move(rt)), id_(id), socket_(std::move(socket)), deadline_(rt_->strand()) {
  error_code ec;
  const auto ep = socket_.remote_endpoint(ec);
  if (!ec) peer_ = to_address(ep);
}

void tcp_session::start() {
  deadline_.expires_after(rt_->cfg().stream_deadline);
  deadline_.async_wait(
      [self = shared_from_this()](const error_code& ec) { self->on_deadline(ec); });
  do_read_header();
}

void tcp_session::close() {
  deadline_.cancel();
  error_code ignored;
  socket_.close(ignored);
}

void tcp_session::do_read_header() {
  net::async_read(socket_, net::buffer(header_),
                  [self = shared_from_this()](const error_code& ec, std::size_t transferred) {
                    bump(self->rt_->counters().tcp_bytes_in, transferred);
                    self->on_read_header(ec);
                  });
}

void tcp_session::on_read_header(const error_code& ec) {
  if (ec) return finish(ec);
  const std::uint32_t n = decode_frame_header(header_);
  if (n == 0 || n > rt_->max_frame()) {
    if (n > 0) bump(rt_->counters().frames_too_large);
    rt_->warn_limited(n == 0 ? "empty stream request" : "stream request over max_push_pull_bytes",
                      [&] { return "peer=" + peer_.to_string(); });
    return finish(net::error::message_size);
  }
  body_.resize(n);
  do_read_body();
}

void tcp_session::do_read_body() {
  net::async_read(socket_, net::buffer(body_),
                  [self = shared_from_this()](const error_code& ec, std::size_t transferred) {
                    bump(self->rt_->counters().tcp_bytes_in, transferred);
                    self->on_read_body(ec);
                  });
}

void tcp_session::on_read_body(const error_code& ec) {
  if (ec) return finish(ec);
  reply_ = rt_->serve_stream(peer_, body_);
  bytes{}.swap(body_);
  if (reply_.empty()) return finish({});  // nothing to say: just close
  if (reply_.size() > rt_->max_frame()) {
    bump(rt_->counters().frames_too_large);
    return finish(net::error::message_size);
  }
  do_write();
}

void tcp_session::do_write() {
  header_ = encode_frame_header(static_cast<std::uint32_t>(reply_.size()));
  const std::array<net::const_buffer, 2> buffers{net::buffer(header_), net::buffer(reply_)};
  net::async_write(socket_, buffers,
                   [self = shared_from_this()](const error_code& ec, std::size_t transferred) {
                     bump(self->rt_->counters().tcp_bytes_out, transferred);
                     self->on_write(ec);
                   });
}

void tcp_session::on_write(const error_code& ec) {
  finish(ec);
}

void tcp_session::on_deadline(const error_code& ec) {
  if (ec == net::error::operation_aborted || done_) return;
  timed_out_ = true;
  error_code ignored;
  socket_.close(ignored);  // the pending read or write completes with an error
}

void tcp_session::finish(const error_code& ec) {
  if (done_) return;
  done_ = true;
  deadline_.cancel();
  close_socket(socket_);
  const bool ok = !ec && !timed_out_;
  if (!ok && !rt_->closed()) {
    bump(rt_->counters().tcp_session_errors);
    if (timed_out_) bump(rt_->counters().stream_timeouts);
    rt_->fail(timed_out_ ? error_code(net::error::timed_out) : ec, "tcp session");
  }
  rt_->session_done(id_, ok);
}

// ---- stream_client: our request, the peer's reply ----

stream_client::stream_client(std::shared_ptr<runtime> rt, std::uint64_t id, stream_request req)
    : rt_(std::move(rt)),
      id_(id),
      req_(std::move(req)),
      socket_(rt_->strand()),
      deadline_(rt_->strand()) {}

void stream_client::start() {
  deadline_.expires_after(rt_->cfg().stream_deadline);
  deadline_.async_wait(
      [self = shared_from_this()](const error_code& ec) { self->on_deadline(ec); });
  socket_.async_connect(
      tcp::endpoint(to_ip(req_.to), req_.to.port()),
      [self = shared_from_this()](const error_code& ec) { self->on_connect(ec); });
}

void stream_client::close() {
  deadline_.cancel();
  error_code ignored;
  socket_.close(ignored);
}

void stream_client::on_connect(const error_code& ec) {
  if (ec) return finish(ec);
  if (req_.data.empty() || req_.data.size() > rt_->max_frame()) {
    bump(rt_->counters().frames_too_large);
    return finish(net::error::message_size);
  }
  header_ = encode_frame_header(static_cast<std::uint32_t>(req_.data.size()));
  const std::array<net::const_buffer, 2> buffers{net::buffer(header_), net::buffer(req_.data)};
  net::async_write(socket_, buffers,
                   [self = shared_from_this()](const error_code& e, std::size_t transferred) {
                     bump(self->rt_->counters().tcp_bytes_out, transferred);
                     self->on_write(e);
                   });
}

void stream_client::on_write(const error_code& ec) {
  if (ec) return finish(ec);
  bytes{}.swap(req_.data);  // a full state can be large; it is sent
  net::async_read(socket_, net::buffer(header_),
                  [self = shared_from_this()](const error_code& e, std::size_t transferred) {
                    bump(self->rt_->counters().tcp_bytes_in, transferred);
                    self->on_read_header(e);
                  });
}

void stream_client::on_read_header(const error_code& ec) {
  if (ec) return finish(ec);  // eof here: the peer had no reply
  const std::uint32_t n = decode_frame_header(header_);
  if (n == 0 || n > rt_->max_frame()) {
    if (n > 0) bump(rt_->counters().frames_too_large);
    rt_->warn_limited(n == 0 ? "empty stream reply" : "stream reply over max_push_pull_bytes",
                      [&] { return "peer=" + req_.to.to_string(); });
    return finish(net::error::message_size);
  }
  reply_.resize(n);
  net::async_read(socket_, net::buffer(reply_),
                  [self = shared_from_this()](const error_code& e, std::size_t transferred) {
                    bump(self->rt_->counters().tcp_bytes_in, transferred);
                    self->on_read_body(e);
                  });
}

void stream_client::on_read_body(const error_code& ec) {
  finish(ec);
}

void stream_client::on_deadline(const error_code& ec) {
  if (ec == net::error::operation_aborted || done_) return;
  timed_out_ = true;
  error_code ignored;
  socket_.close(ignored);
}

void stream_client::finish(const error_code& ec) {
  if (done_) return;
  done_ = true;
  deadline_.cancel();
  close_socket(socket_);
  if (timed_out_) {
    bump(rt_->counters().stream_timeouts);
    rt_->stream_done(id_, req_.id, req_.to, net::error::timed_out, {});
    return;
  }
  rt_->stream_done(id_, req_.id, req_.to, ec, reply_);
}

}  // namespace shoal::io
