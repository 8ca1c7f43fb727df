// TCP exchanges, one request and one reply each (framed as io/framing.hpp
// draws), each under one deadline:
//   tcp_session:   a peer connected to us; read its request, write the core's reply.
//   stream_client: the core asked for an exchange; connect, write, read the reply.
// Both run on the runtime's strand and keep themselves alive with
// shared_from_this() while an operation is pending.
#pragma once

#include <cstdint>
#include <memory>

#include <boost/asio/steady_timer.hpp>

#include <shoal/core.hpp>

#include "io/framing.hpp"
#include "io/net.hpp"

namespace shoal::io {

class runtime;

class tcp_session : public std::enable_shared_from_this<tcp_session> {
 public:
  tcp_session(std::shared_ptr<runtime> rt, std::uint64_t id, tcp::socket socket);
  void start();
  /// Shutdown: pending operations complete with operation_aborted.
  void close();

 private:
  void do_read_header();
  void on_read_header(const error_code& ec);
  void do_read_body();
  void on_read_body(const error_code& ec);
  void do_write();
  void on_write(const error_code& ec);
  void on_deadline(const error_code& ec);
  void finish(const error_code& ec);

  std::shared_ptr<runtime> rt_;
  std::uint64_t id_;
  tcp::socket socket_;
  strand_timer deadline_;
  address peer_;
  frame_header header_{};
  bytes body_;
  bytes reply_;
  bool timed_out_ = false;
  bool done_ = false;
};

class stream_client : public std::enable_shared_from_this<stream_client> {
 public:
  stream_client(std::shared_ptr<runtime> rt, std::uint64_t id, stream_request req);
  void start();
  /// Shutdown: pending operations complete with operation_aborted.
  void close();

 private:
  void on_connect(const error_code& ec);
  void on_write(const error_code& ec);
  void on_read_header(const error_code& ec);
  void on_read_body(const error_code& ec);
  void on_deadline(const error_code& ec);
  void finish(const error_code& ec);

  std::shared_ptr<runtime> rt_;
  std::uint64_t id_;
  stream_request req_;
  tcp::socket socket_;
  strand_timer deadline_;
  frame_header header_{};
  bytes reply_;
  bool timed_out_ = false;
  bool done_ = false;
};

}  // namespace shoal::io
