// UDP: the receive loop (rate limit per source, size bound, open_in, then
// core.handle_packet), the socket's ICMP error queue, and the send queue
// (sealed on entry, one send in flight at a time, bounded).
//
// The UDP socket's error queue (Linux, io/icmp.hpp) tells the core when a
// datagram it sent was refused: a host that is up answers a ping to a port
// nothing listens on with ICMP port unreachable, and the core ends such a
// suspicion after protocol.refusal_suspicion_timeout instead of waiting for
// Lifeguard's minimum. With that timeout set, the socket asks for
// IP_RECVERR (and IPV6_RECVERR), a wait for error readiness stays armed on
// the strand, and each wakeup reads at most max_icmp_per_wakeup entries
// (the rest in one handler posted after them, so a flood of ICMP shares the
// strand with everything else). Port unreachable goes to
// core.handle_unreachable; anything else is only counted. The same ICMP
// error also fails the next receive or send on the socket with the error it
// stands for: a receive is re-armed silently and a send is tried once more.
#include "io/runtime.hpp"

#include <chrono>
#include <span>
#include <utility>

#include <boost/asio/post.hpp>

#include "io/icmp.hpp"

namespace shoal::io {

namespace {

constexpr std::size_t max_send_queue = 4096;  // packets waiting for the socket
constexpr int max_icmp_per_wakeup = 64;       // error-queue entries read per handler

}  // namespace

void runtime::do_receive() {
  udp_.async_receive_from(net::buffer(receive_buffer_), sender_,
                          [self = shared_from_this()](const error_code& ec, std::size_t n) {
                            self->on_receive(ec, n);
                          });
}

void runtime::on_receive(const error_code& ec, std::size_t n) {
  if (ec == net::error::operation_aborted || closed_) return;
  if (ec && icmp_errors_ && is_icmp_error(ec)) {
    // An ICMP error about an earlier datagram, reported in place of this
    // read; the error queue holds it (on_error_ready).
    SHOAL_LOG(log_, spdlog::level::trace, "udp receive: pending icmp error {}", ec.message());
  } else if (ec) {
    bump(counters_.udp_receive_errors);
    fail(ec, "udp receive");
  } else {
    bump(counters_.udp_packets_in);
    bump(counters_.udp_bytes_in, n);
    const address from = to_address(sender_);
    SHOAL_LOG(log_, spdlog::level::trace, "udp in from={} bytes={}", from.to_string(), n);
    if (!rate_limiter_.allow(from, std::chrono::steady_clock::now())) {
      bump(counters_.rate_limited);
      warn_limited("udp packets dropped: over max_packets_per_source_per_second",
                   [&] { return "from=" + from.to_string(); });
      if (!closed_) do_receive();
      return;
    }
    if (n >= receive_buffer_.size()) {  // over max_datagram_in(), maybe truncated
      bump(counters_.udp_too_large);
      warn_limited("udp datagram dropped: larger than any peer sends",
                   [&] { return "from=" + from.to_string(); });
      if (!closed_) do_receive();
      return;
    }
    std::span<const std::uint8_t> data(receive_buffer_.data(), n);
    bytes opened;
    if (open_in(data, opened, from, "udp", max_datagram_size)) {
      {
        std::lock_guard lock(mu_);
        core_->handle_packet(now(), from, data, pending_);
      }
      drain();
    }
  }
  if (!closed_) do_receive();
}

void runtime::do_wait_error() {
  udp_.async_wait(strand_udp_socket::wait_error,
                  [self = shared_from_this()](const error_code& ec) { self->on_error_ready(ec); });
}

void runtime::on_error_ready(const error_code& ec) {
  if (ec == net::error::operation_aborted || closed_) return;
  if (ec) {  // not expected of an open socket; do not spin on it
    log_.log(spdlog::level::warn, "udp error wait failed, refused pings go unnoticed: {}",
             ec.message());
    return;
  }
  // Armed before reading: an entry queued while we read wakes it again
  // (the reactor is edge-triggered and does not look for what was there).
  do_wait_error();
  read_error_queue();
}

void runtime::read_error_queue() {
  if (closed_) return;
  bool delivered = false;
  for (int i = 0; i < max_icmp_per_wakeup; ++i) {
    error_code ec;
    const auto entry = read_icmp_error(udp_, ec);
    if (!entry) {
      if (ec) fail(ec, "udp error queue");
      if (delivered) drain();
      return;
    }
    if (!entry->port_unreachable) {
      bump(counters_.icmp_other_in);
      continue;
    }
    bump(counters_.icmp_unreachable_in);
    SHOAL_LOG(log_, spdlog::level::trace, "icmp port unreachable to={}", entry->to.to_string());
    {
      std::lock_guard lock(mu_);
      core_->handle_unreachable(now(), entry->to, pending_);
    }
    delivered = true;
  }
  if (delivered) drain();
  // More may be queued, and no new error may come to say so: read on after
  // whatever else waits on the strand (one such handler at a time).
  if (closed_ || error_read_posted_) return;
  error_read_posted_ = true;
  net::post(strand_, [self = shared_from_this()] {
    self->error_read_posted_ = false;
    self->read_error_queue();
  });
}

void runtime::enqueue_send(outgoing_packet p) {
  if (send_queue_.size() >= max_send_queue) {
    bump(counters_.udp_send_dropped);
    return;
  }
  seal_out(p.data);
  send_queue_.push_back(std::move(p));
  do_send();
}

void runtime::do_send() {
  while (!sending_ && !send_queue_.empty()) {
    const outgoing_packet& p = send_queue_.front();
    const auto ep = udp_endpoint(family_, p.to);
    if (!ep) {  // e.g. an IPv6 peer and an IPv4 socket
      bump(counters_.udp_send_errors);
      SHOAL_LOG(log_, spdlog::level::debug, "udp send skipped to={}: other address family",
                p.to.to_string());
      send_queue_.pop_front();
      continue;
    }
    SHOAL_LOG(log_, spdlog::level::trace, "udp out to={} bytes={}", p.to.to_string(),
              p.data.size());
    sending_ = true;
    udp_.async_send_to(
        net::buffer(p.data), *ep,
        [self = shared_from_this()](const error_code& ec, std::size_t n) { self->on_send(ec, n); });
  }
}

void runtime::on_send(const error_code& ec, std::size_t n) {
  sending_ = false;
  if (ec == net::error::operation_aborted || closed_) return;
  if (ec && icmp_errors_ && is_icmp_error(ec) && !send_retried_) {
    // The socket's pending error (an ICMP error about an earlier datagram)
    // failed this send before it left. Reading the error queue clears it
    // (and hands the core what it says); then once more. Twice means it is
    // ours, or a flood of ICMP that refills the queue as fast as we read.
    SHOAL_LOG(log_, spdlog::level::trace, "udp send: pending icmp error {}, retrying",
              ec.message());
    send_retried_ = true;
    read_error_queue();
    do_send();
    return;
  }
  send_retried_ = false;
  if (!send_queue_.empty()) send_queue_.pop_front();
  if (ec) {
    bump(counters_.udp_send_errors);
    fail(ec, "udp send");
  } else {
    bump(counters_.udp_packets_out);
    bump(counters_.udp_bytes_out, n);
  }
  do_send();
  if (send_queue_.empty()) check_leave();
}

}  // namespace shoal::io
