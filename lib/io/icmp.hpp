// ICMP errors about our own datagrams, read from the UDP socket's error
// queue. Linux only (IP_RECVERR / IPV6_RECVERR); elsewhere nothing is
// enabled and nothing is ever reported.
//
// What this kernel does (measured on 6.x, loopback):
// - An IPv4 socket with IP_RECVERR queues each error with a control message
//   (SOL_IP, IP_RECVERR); an IPv6 socket with IPV6_RECVERR with
//   (SOL_IPV6, IPV6_RECVERR). msg_name is the refused datagram's destination.
// - On a dual-stack socket, errors about IPv4-mapped peers are queued only
//   when IP_RECVERR is set (IPV6_RECVERR alone queues nothing for them), and
//   are read back as (SOL_IPV6, IPV6_RECVERR) with origin SO_EE_ORIGIN_ICMP
//   and a mapped msg_name. So a dual-stack socket sets both options and the
//   parser accepts either control message with either origin.
// - Each queued error also sets the socket's pending error, which the next
//   receive or send on the socket returns instead of doing its work: a send
//   failing that way did not leave (is_icmp_error() tells those errors).
#pragma once

#include <optional>

#ifdef __linux__
#include <sys/socket.h>
#endif

#include "io/net.hpp"

namespace shoal::io {

/// What one error-queue entry says about a datagram this node sent.
struct icmp_report {
  /// ICMP port unreachable (type 3 code 3) or ICMPv6 port unreachable
  /// (type 1 code 4) with a usable destination. Anything else (other types,
  /// local errors, malformed control data) is false.
  bool port_unreachable = false;
  /// The refused datagram's destination, IPv4-mapped addresses as IPv4
  /// (valid when port_unreachable).
  address to;
};

/// Asks the kernel to queue ICMP errors about datagrams sent from `s` (open,
/// of family `f`). Not Linux: operation_not_supported.
error_code enable_icmp_errors(strand_udp_socket& s, family f);

/// Reads one entry of the error queue without blocking: nullopt with no
/// error when it is empty, nullopt with `ec` set when reading failed.
std::optional<icmp_report> read_icmp_error(strand_udp_socket& s, error_code& ec);

/// With enable_icmp_errors, a receive or send fails with one of these when
/// an ICMP error about an earlier datagram set the socket's pending error:
/// not this operation's fault (its entry is in the error queue).
bool is_icmp_error(const error_code& ec);

#ifdef __linux__
/// Parses an entry as recvmsg(MSG_ERRQUEUE) left it in `m` (name, control,
/// flags); exposed for tests.
icmp_report parse_icmp_error(const ::msghdr& m);
#endif

}  // namespace shoal::io
