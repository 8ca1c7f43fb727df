#include "metrics.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "agent.hpp"
#include "names.hpp"
#include "stats_fields.hpp"

namespace shoal::daemon {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t max_metrics_connections = 16;

struct text {
  std::string out;
  void family(const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  }
  void sample(const std::string& name, const std::string& labels, std::uint64_t v) {
    out += name;
    if (!labels.empty()) out += "{" + labels + "}";
    out += ' ';
    out += std::to_string(v);
    out += '\n';
  }
};

// One family per counter: shoal_<prefix><name>_total. The decoder's
// invalid_* counters are one family with a reason label instead.
void counter_family(text& t, const std::string& prefix, const char* name, const char* help,
                    std::uint64_t v) {
  if (std::string_view(name).rfind("invalid_", 0) == 0) return;
  const std::string full = prefix + name + "_total";
  t.family(full.c_str(), "counter", help);
  t.sample(full, "", v);
}

template <class Stats>
void counters(text& t, const char* prefix, const Stats& s) {
  visit_counters(s, [&](const char* name, const char* help, std::uint64_t v) {
    counter_family(t, prefix, name, help, v);
  });
}

class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(tcp::socket sock, const agent& a, std::shared_ptr<std::size_t> active)
      : stream_(std::move(sock)), agent_(a), active_(std::move(active)) {
    ++*active_;
  }
  ~http_session() { --*active_; }
  void start() {
    parser_.body_limit(8192);
    parser_.header_limit(8192);
    stream_.expires_after(std::chrono::seconds(5));
    http::async_read(stream_, buf_, parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (!ec) self->respond();
                     });
  }

 private:
  void respond() {
    const auto& req = parser_.get();
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(req.version());
    res->keep_alive(false);
    if (req.method() != http::verb::get) {
      res->result(http::status::method_not_allowed);
      res->body() = "GET only\n";
    } else if (req.target() != "/metrics") {
      res->result(http::status::not_found);
      res->body() = "see /metrics\n";
    } else {
      res->result(http::status::ok);
      res->set(http::field::content_type, "text/plain; version=0.0.4");
      res->body() = agent_.metrics_text();
    }
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code, std::size_t) {
                        beast::error_code ignored;
                        self->stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buf_;
  http::request_parser<http::string_body> parser_;
  const agent& agent_;
  std::shared_ptr<std::size_t> active_;
};

}  // namespace

std::string render_metrics(const node& n, const server& srv, std::uint64_t key_ops_rejected,
                           const handler_stats& handlers) {
  text t;
  std::uint64_t counts[4] = {};
  for (const auto& m : n.members()) ++counts[static_cast<int>(m.state)];
  t.family("shoal_members", "gauge", "Members of the local view by state.");
  for (std::size_t i = 0; i < status_names.size(); ++i)
    t.sample("shoal_members", "state=\"" + std::string(status_names[i]) + "\"", counts[i]);
  t.family("shoal_health_score", "gauge", "Lifeguard local health score (0 is healthy).");
  t.sample("shoal_health_score", "", static_cast<std::uint64_t>(n.health_score()));

  const node_stats ns = n.stats();
  counters(t, "shoal_", ns.core);
  t.family("shoal_invalid_packets_total", "counter", "Packets rejected by the decoder, by reason.");
  visit_counters(ns.core, [&](const char* name, const char*, std::uint64_t v) {
    const std::string_view s(name);
    if (s.rfind("invalid_", 0) == 0)
      t.sample("shoal_invalid_packets_total", "reason=\"" + std::string(s.substr(8)) + "\"", v);
  });
  t.family("shoal_messages_total", "counter",
           "Protocol messages by type and direction (UDP and TCP).");
  for_each_message_type(ns.core, [&](const char* type, const char* dir, std::uint64_t v) {
    t.sample("shoal_messages_total", std::string("type=\"") + type + "\",direction=\"" + dir + "\"",
             v);
  });
  counters(t, "shoal_runtime_", ns.runtime);
  t.family("shoal_tcp_sessions", "gauge", "Incoming TCP exchanges in progress.");
  t.sample("shoal_tcp_sessions", "", ns.tcp_sessions);
  t.family("shoal_streams_in_progress", "gauge", "Outgoing TCP exchanges in progress.");
  t.sample("shoal_streams_in_progress", "", ns.streams);

  counters(t, "shoal_socket_", srv.stats());
  t.family("shoal_socket_clients", "gauge", "Clients connected to the Unix socket.");
  t.sample("shoal_socket_clients", "", srv.connections());
  t.family("shoal_socket_streams", "gauge", "Event streams open on the Unix socket.");
  t.sample("shoal_socket_streams", "", srv.streams());
  t.family("shoal_key_ops_rejected_total", "counter",
           "Malformed cluster key-operation messages ignored.");
  t.sample("shoal_key_ops_rejected_total", "", key_ops_rejected);
  counters(t, "shoal_", handlers);
  return std::move(t.out);
}

std::string render_metrics_reference() {
  std::string out =
      "# Counters of shoald\n\n"
      "Generated from the counter lists in include/shoal/core.hpp (SHOAL_CORE_COUNTERS),\n"
      "include/shoal/node.hpp (SHOAL_RUNTIME_COUNTERS), daemon/server.hpp\n"
      "(SHOAL_SERVER_COUNTERS) and daemon/handlers.hpp (SHOAL_HANDLER_COUNTERS);\n"
      "tests/daemon/test_stats_fields.cpp\n"
      "fails when this file and the lists differ (`SHOAL_UPDATE_DOCS=1` rewrites it). Every\n"
      "counter only grows. `shoalctl stats` shows each under its group and name;\n"
      "`/metrics` (shoald `--metrics-bind`) exports it as the Prometheus family given.\n"
      "The decoder's `invalid_*` counters are one family, `shoal_invalid_packets_total`,\n"
      "with the reason as a label.\n";
  auto table = [&](const char* title, const char* group, const char* prefix, const auto& stats) {
    out += "\n## ";
    out += title;
    out += "\n\n| `stats` | `/metrics` | counts |\n| --- | --- | --- |\n";
    visit_counters(stats, [&](const char* name, const char* help, std::uint64_t) {
      const std::string_view n(name);
      std::string family = std::string(prefix) + name + "_total";
      if (n.rfind("invalid_", 0) == 0)
        family = "shoal_invalid_packets_total{reason=\"" + std::string(n.substr(8)) + "\"}";
      out += "| `" + std::string(group) + "." + name + "` | `" + family + "` | " + help + " |\n";
    });
  };
  table("Protocol (the core: shoal::core_stats)", "core", "shoal_", core_stats{});
  table("Runtime (sockets: shoal::runtime_stats)", "runtime", "shoal_runtime_", runtime_stats{});
  table("Socket API (shoald's Unix socket)", "daemon", "shoal_socket_", server_stats{});
  table("Event handlers (shoald's handler programs)", "handlers", "shoal_", handler_stats{});
  return out;
}

metrics_server::metrics_server(asio::io_context& ctx, const agent& a,
                               std::shared_ptr<spdlog::logger> log)
    : ctx_(ctx), agent_(a), log_(std::move(log)), acceptor_(ctx) {}

std::string metrics_server::listen(const std::string& host_port) {
  const auto a = address::parse(host_port);
  if (!a) return "metrics_bind: expected IP:PORT";
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(a->ip_string(), ec);
  if (ec) return "metrics_bind: " + ec.message();
  const tcp::endpoint ep(ip, a->port());
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return "metrics_bind " + host_port + ": " + ec.message();
  log_->info("metrics listening on http://{}/metrics", host_port);
  do_accept();
  return {};
}

void metrics_server::do_accept() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket sock) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (!ec) {
      if (*active_ >= max_metrics_connections) {
        boost::system::error_code ignored;
        sock.close(ignored);
      } else {
        std::make_shared<http_session>(std::move(sock), agent_, active_)->start();
      }
    }
    do_accept();
  });
}

void metrics_server::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
}

}  // namespace shoal::daemon
