// Reading the UDP socket's error queue (see icmp.hpp).
#include "io/icmp.hpp"

#include <array>
#include <cerrno>
#include <cstring>

#ifdef __linux__
#include <linux/errqueue.h>
#include <netinet/in.h>
#endif

namespace shoal::io {

#ifdef __linux__

namespace {

// The CMSG_* macros cast the C way; these are the same layout rules.
constexpr std::size_t cmsg_align(std::size_t n) {
  return (n + sizeof(std::size_t) - 1) & ~(sizeof(std::size_t) - 1);
}
constexpr std::size_t cmsg_header = cmsg_align(sizeof(::cmsghdr));

constexpr std::uint8_t icmp_dest_unreach = 3, icmp_port_unreach = 3;
constexpr std::uint8_t icmp6_dest_unreach = 1, icmp6_port_unreach = 4;

error_code last_error() {
  return {errno, boost::system::system_category()};
}

error_code set_int_option(int fd, int opt_level, int name) {
  const int one = 1;
  if (::setsockopt(fd, opt_level, name, &one, sizeof one) != 0) return last_error();
  return {};
}

/// The destination in msg_name, if it is a whole address with a port.
std::optional<address> destination(const ::msghdr& m) {
  if (m.msg_name == nullptr) return std::nullopt;
  const auto* name = static_cast<const unsigned char*>(m.msg_name);
  sa_family_t fam = 0;
  if (m.msg_namelen < sizeof fam) return std::nullopt;
  std::memcpy(&fam, name + offsetof(::sockaddr, sa_family), sizeof fam);
  if (fam == AF_INET && m.msg_namelen >= sizeof(::sockaddr_in)) {
    ::sockaddr_in sin{};
    std::memcpy(&sin, name, sizeof sin);
    if (sin.sin_port == 0) return std::nullopt;
    net::ip::address_v4::bytes_type b{};
    std::memcpy(b.data(), &sin.sin_addr, b.size());
    return to_address(net::ip::address_v4(b), ntohs(sin.sin_port));
  }
  if (fam == AF_INET6 && m.msg_namelen >= sizeof(::sockaddr_in6)) {
    ::sockaddr_in6 sin6{};
    std::memcpy(&sin6, name, sizeof sin6);
    if (sin6.sin6_port == 0) return std::nullopt;
    net::ip::address_v6::bytes_type b{};
    std::memcpy(b.data(), &sin6.sin6_addr, b.size());
    return to_address(net::ip::address_v6(b), ntohs(sin6.sin6_port));  // mapped: IPv4
  }
  return std::nullopt;
}

}  // namespace

icmp_report parse_icmp_error(const ::msghdr& m) {
  icmp_report r;
  if ((m.msg_flags & MSG_CTRUNC) != 0 || m.msg_control == nullptr) return r;
  const auto* control = static_cast<const unsigned char*>(m.msg_control);
  const std::size_t size = m.msg_controllen;
  std::optional<::sock_extended_err> err;
  // Walks the control messages, each checked against the buffer's end.
  for (std::size_t off = 0; off + sizeof(::cmsghdr) <= size;) {
    ::cmsghdr h{};
    std::memcpy(&h, control + off, sizeof h);
    if (h.cmsg_len < cmsg_header || h.cmsg_len > size - off) return r;  // malformed
    const bool recverr = (h.cmsg_level == SOL_IP && h.cmsg_type == IP_RECVERR) ||
                         (h.cmsg_level == SOL_IPV6 && h.cmsg_type == IPV6_RECVERR);
    if (recverr) {
      if (err || h.cmsg_len - cmsg_header < sizeof(::sock_extended_err)) return r;
      err.emplace();
      std::memcpy(&*err, control + off + cmsg_header, sizeof(::sock_extended_err));
    }
    off += cmsg_align(h.cmsg_len);
  }
  if (!err) return r;
  const bool v4 = err->ee_origin == SO_EE_ORIGIN_ICMP && err->ee_type == icmp_dest_unreach &&
                  err->ee_code == icmp_port_unreach;
  const bool v6 = err->ee_origin == SO_EE_ORIGIN_ICMP6 && err->ee_type == icmp6_dest_unreach &&
                  err->ee_code == icmp6_port_unreach;
  if (!v4 && !v6) return r;
  const auto to = destination(m);
  if (!to || to->is_v6() != v6) return r;  // an ICMPv4 error is about an IPv4 peer
  r.port_unreachable = true;
  r.to = *to;
  return r;
}

error_code enable_icmp_errors(strand_udp_socket& s, family f) {
  const int fd = s.native_handle();
  // A dual-stack socket's IPv4 peers are reported only with IP_RECVERR.
  if (f != family::v6_only)
    if (auto ec = set_int_option(fd, SOL_IP, IP_RECVERR)) return ec;
  if (f != family::v4)
    if (auto ec = set_int_option(fd, SOL_IPV6, IPV6_RECVERR)) return ec;
  return {};
}

std::optional<icmp_report> read_icmp_error(strand_udp_socket& s, error_code& ec) {
  ec.clear();
  // One sock_extended_err and the offender's address: well under this.
  alignas(::cmsghdr) std::array<unsigned char, 256> control{};
  ::sockaddr_storage name{};
  ::msghdr m{};
  for (;;) {
    m = ::msghdr{};
    m.msg_name = &name;
    m.msg_namelen = sizeof name;
    m.msg_control = control.data();
    m.msg_controllen = control.size();
    // No iovec: the returned copy of our own datagram is not needed.
    if (::recvmsg(s.native_handle(), &m, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) ec = last_error();
    return std::nullopt;
  }
  return parse_icmp_error(m);
}

bool is_icmp_error(const error_code& ec) {
  if (ec.category() != boost::system::system_category()) return false;
  // What the kernel turns ICMP(v6) errors into (icmp_err_convert,
  // icmpv6_err_convert): unreachable net, host, protocol or port, source
  // route failed, fragmentation needed / packet too big, administratively
  // prohibited, time exceeded, parameter problem.
  switch (ec.value()) {
    case ECONNREFUSED:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case EHOSTDOWN:
    case ENONET:
    case ENOPROTOOPT:
    case EOPNOTSUPP:
    case EMSGSIZE:
    case EACCES:
    case EPROTO:
      return true;
    default:
      return false;
  }
}

#else  // not Linux: ICMP errors are never enabled nor reported

error_code enable_icmp_errors(strand_udp_socket&, family) {
  return net::error::operation_not_supported;
}

std::optional<icmp_report> read_icmp_error(strand_udp_socket&, error_code& ec) {
  ec.clear();
  return std::nullopt;
}

bool is_icmp_error(const error_code&) {
  return false;
}

#endif

}  // namespace shoal::io
