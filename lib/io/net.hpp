// Small pieces the runtime shares: Asio aliases, conversions between
// shoal::address and Asio endpoints, error_code conversion, the clock, and
// logging through the optional logger.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include <spdlog/logger.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/system/error_code.hpp>

#include <shoal/address.hpp>
#include <shoal/core.hpp>

#include "core/rate_limit.hpp"

namespace shoal::io {

namespace net = boost::asio;
using udp = net::ip::udp;
using tcp = net::ip::tcp;
using error_code = boost::system::error_code;

/// The strand a runtime runs on, and I/O objects bound to it by their type.
/// An object of Asio's default executor type (udp::socket, steady_timer)
/// holds the strand type-erased, and the strand does not fit the erasure's
/// inline storage: every operation it starts and every completion it
/// dispatches copies the strand into a new heap block. Typed with the strand,
/// they allocate nothing for it; the UDP socket and the tick timer work per
/// datagram.
using strand_type = net::strand<net::io_context::executor_type>;
using strand_udp_socket = udp::socket::rebind_executor<strand_type>::other;
using strand_timer = net::steady_timer::rebind_executor<strand_type>::other;

/// The core's clock: steady_clock, so a cast is all the conversion there is.
inline time_point now() {
  return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
}

inline std::chrono::steady_clock::time_point to_steady(time_point t) {
  return std::chrono::time_point_cast<std::chrono::steady_clock::duration>(t);
}

/// An IPv4-mapped IPv6 address (what a dual-stack socket reports for an IPv4
/// peer) becomes the IPv4 address, so the core sees one name per peer.
inline address to_address(const net::ip::address& ip, std::uint16_t port) {
  if (ip.is_v6()) {
    const auto v6 = ip.to_v6();
    if (v6.is_v4_mapped())
      return address::v4(net::ip::make_address_v4(net::ip::v4_mapped, v6).to_bytes(), port);
    return address::v6(v6.to_bytes(), port);
  }
  return address::v4(ip.to_v4().to_bytes(), port);
}

template <class Endpoint>
address to_address(const Endpoint& ep) {
  return to_address(ep.address(), ep.port());
}

inline net::ip::address to_ip(const address& a) {
  const auto b = a.ip();
  if (a.is_v6()) {
    net::ip::address_v6::bytes_type v6{};
    for (std::size_t i = 0; i < v6.size(); ++i) v6[i] = b[i];
    return net::ip::address_v6(v6);
  }
  net::ip::address_v4::bytes_type v4{};
  for (std::size_t i = 0; i < v4.size(); ++i) v4[i] = b[i];
  return net::ip::address_v4(v4);
}

/// What a UDP socket bound to some address can send to.
enum class family : std::uint8_t {
  v4,       ///< an IPv4 socket: IPv4 peers only
  v6_only,  ///< an IPv6 socket on a specific address: IPv6 peers only
  dual,     ///< an IPv6 wildcard socket: both (IPv4 as mapped addresses)
};

inline bool reachable(family f, const address& a) {
  switch (f) {
    case family::v4:
      return !a.is_v6();
    case family::v6_only:
      return a.is_v6();
    case family::dual:
      return true;
  }
  return false;
}

/// The endpoint a socket of family `f` sends to for `a` (nullopt: unreachable).
inline std::optional<udp::endpoint> udp_endpoint(family f, const address& a) {
  if (!reachable(f, a)) return std::nullopt;
  const net::ip::address ip = to_ip(a);
  if (f == family::dual && ip.is_v4())
    return udp::endpoint(net::ip::make_address_v6(net::ip::v4_mapped, ip.to_v4()), a.port());
  return udp::endpoint(ip, a.port());
}

/// Boost's system and generic errors as std ones (comparable with
/// std::errc); anything else through Boost's own std bridge.
inline std::error_code to_std(const error_code& ec) {
  if (!ec) return {};
  if (ec.category() == boost::system::system_category())
    return {ec.value(), std::system_category()};
  if (ec.category() == boost::system::generic_category())
    return {ec.value(), std::generic_category()};
  return static_cast<std::error_code>(ec);
}

/// Logging through the optional logger (null: nothing is logged).
///
/// log() formats only when the level is enabled, but its arguments are
/// evaluated before the call: a line written per packet or per stream whose
/// arguments cost something (an address's to_string(), an error's message())
/// goes through SHOAL_LOG instead, which evaluates nothing when the level is
/// off.
class log_sink {
 public:
  explicit log_sink(std::shared_ptr<spdlog::logger> logger) : logger_(std::move(logger)) {}

  bool enabled(spdlog::level::level_enum lvl) const { return logger_ && logger_->should_log(lvl); }

  template <class... Args>
  void log(spdlog::level::level_enum lvl, spdlog::format_string_t<Args...> fmt,
           Args&&... args) const {
    if (enabled(lvl)) logger_->log(lvl, fmt, std::forward<Args>(args)...);
  }

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

/// Logs through `sink` (a log_sink) at `lvl` with a format and its
/// arguments, as log_sink::log, but evaluates the arguments only when `lvl`
/// is enabled: for the per-packet and per-stream lines, so trace and debug
/// logging cost nothing when off. In the spirit of spdlog's
/// SPDLOG_LOGGER_TRACE.
#define SHOAL_LOG(sink, lvl, ...)                            \
  do {                                                       \
    if ((sink).enabled(lvl)) (sink).log((lvl), __VA_ARGS__); \
  } while (false)

/// One warning per period (lib/core/rate_limit.hpp, shared with the core).
using detail::rate_limit;

}  // namespace shoal::io
