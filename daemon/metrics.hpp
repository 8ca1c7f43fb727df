// Prometheus metrics of shoald over HTTP (Boost.Beast): GET /metrics returns
// the text exposition format 0.0.4. Bounded: 16 connections, 8 KiB requests,
// 5 s per exchange.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <shoal/node.hpp>

#include "handlers.hpp"
#include "server.hpp"

namespace shoal::daemon {

class agent;

/// The Markdown reference of every protocol and runtime counter (docs/metrics.md).
std::string render_metrics_reference();

/// The exposition text of everything counted.
std::string render_metrics(const node& n, const server& srv, std::uint64_t key_ops_rejected,
                           const handler_stats& handlers);

class metrics_server {
 public:
  metrics_server(boost::asio::io_context& ctx, const agent& a, std::shared_ptr<spdlog::logger> log);
  /// Binds `host_port` ("IP:PORT"); "" or the reason.
  std::string listen(const std::string& host_port);
  void close();
  std::size_t active() const { return *active_; }

 private:
  void do_accept();

  boost::asio::io_context& ctx_;
  const agent& agent_;
  std::shared_ptr<spdlog::logger> log_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::shared_ptr<std::size_t> active_ = std::make_shared<std::size_t>(0);
};

}  // namespace shoal::daemon
