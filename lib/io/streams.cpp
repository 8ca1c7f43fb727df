#include "io/streams.hpp"

#include <array>
#include <limits>
#include <utility>

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include "io/runtime.hpp"

namespace shoal::io {

namespace {

void close_socket(tcp::socket& s) {
  error_code ignored;
  s.shutdown(tcp::socket::shutdown_both, ignored);
  s.close(ignored);
}

}  // namespace

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
                      "peer=" + peer_.to_string());
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
                      "peer=" + req_.to.to_string());
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
