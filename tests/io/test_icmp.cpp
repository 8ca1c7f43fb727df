// ICMP port unreachable, read from the UDP socket's error queue, reaching the
// core: the parser on hand-made entries, and crashed nodes on loopback.
#include <array>
#include <cstring>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <catch2/catch.hpp>

#ifdef __linux__
#include <arpa/inet.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif

#include "io/icmp.hpp"
#include "io_test_util.hpp"
#include "skip.hpp"

using namespace std::chrono_literals;
using iotest::node_list;
using shoal::member_state;

#ifdef __linux__

namespace {

constexpr std::size_t align_cmsg(std::size_t n) {
  return (n + sizeof(std::size_t) - 1) & ~(sizeof(std::size_t) - 1);
}

/// An error-queue entry as recvmsg(MSG_ERRQUEUE) leaves it.
struct entry {
  alignas(cmsghdr) std::array<unsigned char, 256> control{};
  sockaddr_storage name{};
  msghdr m{};

  entry(int level, int type, std::uint8_t origin, std::uint8_t icmp_type, std::uint8_t icmp_code) {
    sock_extended_err ee{};
    ee.ee_errno = ECONNREFUSED;
    ee.ee_origin = origin;
    ee.ee_type = icmp_type;
    ee.ee_code = icmp_code;
    cmsghdr h{};
    h.cmsg_level = level;
    h.cmsg_type = type;
    // The kernel appends the offender's address; the parser does not need it.
    h.cmsg_len = align_cmsg(sizeof(cmsghdr)) + sizeof ee + sizeof(sockaddr_in6);
    std::memcpy(control.data(), &h, sizeof h);
    std::memcpy(control.data() + align_cmsg(sizeof(cmsghdr)), &ee, sizeof ee);
    m.msg_control = control.data();
    m.msg_controllen = align_cmsg(h.cmsg_len);
    m.msg_name = &name;
    m.msg_flags = MSG_ERRQUEUE;
  }
  entry& to_v4(const char* ip, std::uint16_t port) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    REQUIRE(inet_pton(AF_INET, ip, &sin.sin_addr) == 1);
    std::memcpy(&name, &sin, sizeof sin);
    m.msg_namelen = sizeof sin;
    return *this;
  }
  entry& to_v6(const char* ip, std::uint16_t port) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    REQUIRE(inet_pton(AF_INET6, ip, &sin6.sin6_addr) == 1);
    std::memcpy(&name, &sin6, sizeof sin6);
    m.msg_namelen = sizeof sin6;
    return *this;
  }
};

entry v4_refused() {
  return entry(SOL_IP, IP_RECVERR, SO_EE_ORIGIN_ICMP, 3, 3);
}

}  // namespace

TEST_CASE("error-queue entries: only port unreachable with a destination counts", "[io]") {
  using shoal::io::parse_icmp_error;
  SECTION("ICMP port unreachable on an IPv4 socket") {
    auto e = v4_refused();
    e.to_v4("127.0.0.1", 7946);
    const auto r = parse_icmp_error(e.m);
    CHECK(r.port_unreachable);
    CHECK(r.to.to_string() == "127.0.0.1:7946");
  }
  SECTION("an IPv4 peer of a dual-stack socket: IPV6_RECVERR, ICMP origin, mapped name") {
    entry e(SOL_IPV6, IPV6_RECVERR, SO_EE_ORIGIN_ICMP, 3, 3);
    e.to_v6("::ffff:127.0.0.1", 7946);
    const auto r = parse_icmp_error(e.m);
    CHECK(r.port_unreachable);
    CHECK(r.to.to_string() == "127.0.0.1:7946");  // as received packets are named
  }
  SECTION("ICMPv6 port unreachable") {
    entry e(SOL_IPV6, IPV6_RECVERR, SO_EE_ORIGIN_ICMP6, 1, 4);
    e.to_v6("::1", 7946);
    const auto r = parse_icmp_error(e.m);
    CHECK(r.port_unreachable);
    CHECK(r.to.to_string() == "[::1]:7946");
  }
  SECTION("other ICMP types and codes, and local errors") {
    entry host(SOL_IP, IP_RECVERR, SO_EE_ORIGIN_ICMP, 3, 1);  // host unreachable
    CHECK_FALSE(parse_icmp_error(host.to_v4("10.0.0.1", 1).m).port_unreachable);
    entry v6_as_v4(SOL_IPV6, IPV6_RECVERR, SO_EE_ORIGIN_ICMP6, 3, 3);  // ICMPv6 3: time exceeded
    CHECK_FALSE(parse_icmp_error(v6_as_v4.to_v6("::1", 1).m).port_unreachable);
    entry local(SOL_IP, IP_RECVERR, SO_EE_ORIGIN_LOCAL, 0, 0);  // e.g. EMSGSIZE
    CHECK_FALSE(parse_icmp_error(local.to_v4("127.0.0.1", 1).m).port_unreachable);
    entry other_cmsg(SOL_IP, IP_TTL, SO_EE_ORIGIN_ICMP, 3, 3);
    CHECK_FALSE(parse_icmp_error(other_cmsg.to_v4("127.0.0.1", 1).m).port_unreachable);
  }
  SECTION("a destination that does not fit the report") {
    auto no_name = v4_refused();
    CHECK_FALSE(parse_icmp_error(no_name.m).port_unreachable);  // msg_namelen 0
    auto short_name = v4_refused();
    short_name.to_v4("127.0.0.1", 1).m.msg_namelen = sizeof(sockaddr_in) - 1;
    CHECK_FALSE(parse_icmp_error(short_name.m).port_unreachable);
    auto port_zero = v4_refused();
    CHECK_FALSE(parse_icmp_error(port_zero.to_v4("127.0.0.1", 0).m).port_unreachable);
    auto v6_name = v4_refused();  // an ICMPv4 error about an IPv6 destination
    CHECK_FALSE(parse_icmp_error(v6_name.to_v6("::1", 1).m).port_unreachable);
    auto null_name = v4_refused();
    null_name.to_v4("127.0.0.1", 1).m.msg_name = nullptr;
    CHECK_FALSE(parse_icmp_error(null_name.m).port_unreachable);
  }
  SECTION("malformed control data") {
    auto truncated = v4_refused();
    truncated.to_v4("127.0.0.1", 1).m.msg_flags |= MSG_CTRUNC;
    CHECK_FALSE(parse_icmp_error(truncated.m).port_unreachable);
    auto none = v4_refused();
    none.to_v4("127.0.0.1", 1).m.msg_controllen = 0;
    CHECK_FALSE(parse_icmp_error(none.m).port_unreachable);
    auto past_end = v4_refused();  // cmsg_len beyond the buffer the kernel filled
    past_end.to_v4("127.0.0.1", 1).m.msg_controllen = align_cmsg(sizeof(cmsghdr)) + 8;
    CHECK_FALSE(parse_icmp_error(past_end.m).port_unreachable);
    for (const std::size_t len : {std::size_t{0}, sizeof(cmsghdr) - 1,
                                  align_cmsg(sizeof(cmsghdr)) + sizeof(sock_extended_err) - 1}) {
      auto bad_len = v4_refused();
      bad_len.to_v4("127.0.0.1", 1);
      cmsghdr h{};
      std::memcpy(&h, bad_len.control.data(), sizeof h);
      h.cmsg_len = len;
      std::memcpy(bad_len.control.data(), &h, sizeof h);
      INFO("cmsg_len " << len);
      CHECK_FALSE(parse_icmp_error(bad_len.m).port_unreachable);
    }
  }
}

#endif  // __linux__

namespace {

struct crash_outcome {
  std::uint64_t unreachable_reports = 0, refusals = 0, refusal_deaths = 0;
  std::uint64_t icmp_unreachable_in = 0, udp_receive_errors = 0;
};

/// Four nodes (local_config, then `tweak`); the last is stopped without
/// leaving and must be dead in every survivor's view. Sums the survivors'
/// counters once it is.
crash_outcome crash_one(const std::string& prefix,
                        const std::function<void(shoal::node_config&)>& tweak) {
  auto nodes = iotest::start_cluster(prefix, 4, tweak);
  iotest::require_mesh(nodes, 4);
  nodes[3]->stop();
  node_list survivors;
  for (std::size_t i = 0; i < 3; ++i) survivors.push_back(std::move(nodes[i]));
  const std::string gone = prefix + "3";
  const bool dead = iotest::wait_until(
      [&] { return iotest::everyone_sees(survivors, gone, member_state::dead); }, 40s);
  INFO(iotest::views(survivors));
  REQUIRE(dead);
  crash_outcome o;
  for (const auto& n : survivors) {
    const auto s = n->stats();
    o.unreachable_reports += s.core.unreachable_reports;
    o.refusals += s.core.refusals;
    o.refusal_deaths += s.core.refusal_deaths;
    o.icmp_unreachable_in += s.runtime.icmp_unreachable_in;
    o.udp_receive_errors += s.runtime.udp_receive_errors;
  }
  return o;
}

}  // namespace

#ifdef __linux__

TEST_CASE("a crashed node's refused pings end its suspicion early", "[io]") {
  const auto o =
      crash_one("icmp", [](shoal::node_config& nc) { nc.protocol.refusal_suspicion_timeout = 1s; });
  CHECK(o.icmp_unreachable_in > 0);
  // Each report counted by the runtime reached the core (which is read
  // first by stats(), so it may be a report behind).
  CHECK(o.unreachable_reports > 0);
  CHECK(o.unreachable_reports <= o.icmp_unreachable_in);
  CHECK(o.refusals > 0);
  CHECK(o.refusal_deaths >= 1);
  // The refusals also fail reads with the socket's pending error: not errors.
  CHECK(o.udp_receive_errors == 0);
}

TEST_CASE("refused pings over ::1 end a suspicion early too", "[io]") {
  if (!iotest::loopback_v6()) return;
  const auto o = crash_one("icmp6", [](shoal::node_config& nc) {
    nc.bind = *shoal::address::parse("[::1]:0");
    nc.protocol.refusal_suspicion_timeout = 1s;
  });
  CHECK(o.icmp_unreachable_in > 0);
  CHECK(o.refusals > 0);
  CHECK(o.refusal_deaths >= 1);
  CHECK(o.udp_receive_errors == 0);
}

TEST_CASE("a dual-stack node reads the refusals of an IPv4 peer", "[io]") {
  if (!iotest::dual_stack()) return;
  auto nodes = iotest::start_cluster("icmpd", 3, [](shoal::node_config& nc) {
    nc.protocol.refusal_suspicion_timeout = 1s;
    if (nc.protocol.name != "icmpd0") return;
    nc.bind = *shoal::address::parse("[::]:0");
    nc.protocol.advertise = *shoal::address::parse("127.0.0.1:0");
  });
  iotest::require_mesh(nodes, 3);
  nodes[2]->stop();
  // Queued only with IP_RECVERR, read back as IPV6_RECVERR about a mapped
  // address: a refusal counts only if that became the member's IPv4 address
  // (icmpd0 probes icmpd2, or relays icmpd1's probe of it).
  const shoal::node& dual = *nodes[0];
  const bool refused = iotest::wait_until([&] { return dual.stats().core.refusals > 0; }, 20s);
  const auto s = dual.stats();
  INFO("icmp_unreachable_in=" << s.runtime.icmp_unreachable_in
                              << " unreachable_reports=" << s.core.unreachable_reports);
  CHECK(refused);
  CHECK(s.runtime.icmp_unreachable_in > 0);
  CHECK(s.runtime.udp_receive_errors == 0);
  node_list survivors;
  for (std::size_t i = 0; i < 2; ++i) survivors.push_back(std::move(nodes[i]));
  CHECK(iotest::wait_until(
      [&] { return iotest::everyone_sees(survivors, "icmpd2", member_state::dead); }, 40s));
}

#endif  // __linux__

TEST_CASE("with refusal_suspicion_timeout 0 ICMP is not read and Lifeguard decides", "[io]") {
  const auto o = crash_one("noicmp", [](shoal::node_config& nc) {
    nc.protocol.refusal_suspicion_timeout = shoal::duration::zero();
  });
  CHECK(o.icmp_unreachable_in == 0);
  CHECK(o.unreachable_reports == 0);
  CHECK(o.refusals == 0);
  CHECK(o.refusal_deaths == 0);
  CHECK(o.udp_receive_errors == 0);
}
