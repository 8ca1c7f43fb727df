// The runtime's lifecycle and its loop on the strand: start() binds the
// sockets and creates the core, stop() closes everything; drain() hands out
// what the core asked for (sends, streams, events, user data) and re-arms the
// one tick timer at the core's next deadline; warn_limited() and fail() log.
// runtime.hpp maps the other files.
#include "io/runtime.hpp"

#include <algorithm>
#include <exception>
#include <random>
#include <utility>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>

#include "io/icmp.hpp"
#include "io/streams.hpp"

namespace shoal::io {

namespace {

/// The largest datagram a peer of ours sends: the core's packet (which it
/// accepts up to udp_buffer_size + 512) in the largest envelope (header with
/// a 255-byte label, nonce and tag). The receive buffer is one byte larger,
/// so a bigger datagram, truncated by the kernel, is still seen as too large.
std::size_t max_datagram_in(const node_config& cfg) {
  return cfg.protocol.udp_buffer_size + 512 + 3 + max_label_size + nonce_size + tag_size;
}
constexpr std::size_t max_rate_limited_sources = 4096;
constexpr int max_bind_attempts = 16;           // port 0: UDP's port may be taken on TCP
constexpr int socket_receive_buffer = 1 << 20;  // asked of the kernel, best effort
constexpr auto warning_period = std::chrono::seconds(10);

bool is_unspecified(const address& a) {
  const auto ip = a.ip();
  return std::all_of(ip.begin(), ip.end(), [](std::uint8_t b) { return b == 0; });
}

/// Elements a dispatched batch's vectors keep room for: what a datagram or a
/// tick asks for (a few packets and events). A burst's room (a full state's
/// events) is released rather than kept for the node's lifetime.
constexpr std::size_t kept_batch_capacity = 8;

template <class T>
void clear_keeping_small(std::vector<T>& v) {
  if (v.capacity() > kept_batch_capacity)
    std::vector<T>().swap(v);
  else
    v.clear();
}

/// Empties a dispatched batch for reuse.
void recycle(outbox& b) {
  clear_keeping_small(b.packets);
  clear_keeping_small(b.streams);
  clear_keeping_small(b.events);
  clear_keeping_small(b.user_messages);
  clear_keeping_small(b.user_states);
}

std::uint64_t random_seed() {
  std::random_device rd;
  return (std::uint64_t{rd()} << 32) ^ std::uint64_t{rd()};
}

}  // namespace

runtime::runtime(node_config cfg, net::io_context& ctx, std::shared_ptr<net::io_context> owned)
    : owned_ctx_(std::move(owned)),
      cfg_(std::move(cfg)),
      log_(cfg_.protocol.logger),
      strand_(net::make_strand(ctx)),
      udp_(strand_),
      acceptor_(strand_),
      tick_timer_(strand_),
      accept_retry_timer_(strand_),
      seed_timer_(strand_),
      leave_timer_(strand_),
      receive_buffer_(max_datagram_in(cfg_) + 1),
      rate_limiter_(cfg_.max_packets_per_source_per_second, max_rate_limited_sources) {
  keys_ = std::make_shared<const keyring>(cfg_.keys);
}

runtime::~runtime() = default;

// ---- lifecycle ----

std::error_code runtime::start() {
  std::lock_guard start_lock(start_mu_);
  if (phase_ != phase::idle) return errc::not_running;
  if (cfg_.label.size() > max_label_size) {
    log_.log(spdlog::level::err, "node start failed: label over {} bytes", max_label_size);
    return errc::invalid_argument;
  }
  if (auto ec = bind_sockets()) {
    error_code ignored;
    udp_.close(ignored);
    acceptor_.close(ignored);
    return ec;
  }
  {
    std::lock_guard lock(mu_);
    config protocol = cfg_.protocol;
    protocol.advertise = advertise_;
    try {
      core_.emplace(std::move(protocol), cfg_.rng_seed ? *cfg_.rng_seed : random_seed());
    } catch (const std::exception& e) {
      log_.log(spdlog::level::err, "node start failed: {}", e.what());
      error_code ignored;
      udp_.close(ignored);
      acceptor_.close(ignored);
      return errc::invalid_argument;
    }
    if (!early_user_state_.empty()) core_->set_user_state(std::move(early_user_state_));
    core_->join(now(), {}, pending_);  // a cluster of one; seeds follow on the strand
  }
  phase_ = phase::running;
  log_.log(spdlog::level::info, "node started name={} bind={} advertise={}", cfg_.protocol.name,
           to_address(to_ip(cfg_.bind), port_.load()).to_string(), advertise_.to_string());
  net::post(strand_, [self = shared_from_this()] { self->on_started(); });
  if (owned_ctx_) {
    work_ = std::make_unique<net::executor_work_guard<net::io_context::executor_type>>(
        owned_ctx_->get_executor());
    thread_ = std::thread([ctx = owned_ctx_, log = log_] {
      for (;;) {
        try {
          ctx->run();
          return;
        } catch (const std::exception& e) {  // a bug: handlers do not throw
          log.log(spdlog::level::err, "handler threw: {}", e.what());
        }
      }
    });
  }
  return {};
}

std::error_code runtime::bind_sockets() {
  const net::ip::address ip = to_ip(cfg_.bind);
  const bool wildcard = ip.is_unspecified();
  family_ = ip.is_v4() ? family::v4 : (wildcard ? family::dual : family::v6_only);
  const int attempts = cfg_.bind.port() == 0 ? max_bind_attempts : 1;
  error_code ec;
  for (int i = 0; i < attempts; ++i) {
    ec = open_and_bind(ip, cfg_.bind.port());
    if (!ec) break;
    error_code ignored;
    udp_.close(ignored);
    acceptor_.close(ignored);
    if (ec != net::error::address_in_use) break;
  }
  if (ec) {
    log_.log(spdlog::level::err, "bind failed bind={} error={}", cfg_.bind.to_string(),
             ec.message());
    return to_std(ec);
  }
  port_ = udp_.local_endpoint(ec).port();
  if (cfg_.protocol.refusal_suspicion_timeout > duration::zero()) {
    if (const error_code icmp = enable_icmp_errors(udp_, family_)) {
      log_.log(spdlog::level::warn, "icmp errors unavailable, refused pings go unnoticed: {}",
               icmp.message());
    } else {
      icmp_errors_ = true;
    }
  }

  advertise_ = cfg_.protocol.advertise;
  std::optional<net::ip::address> ip_out;
  if (!is_unspecified(advertise_)) {
    ip_out = to_ip(advertise_);
  } else if (!wildcard) {
    ip_out = ip;
  } else {
    ip_out = route_source(false);
    if (!ip_out && family_ == family::dual) ip_out = route_source(true);
  }
  if (!ip_out) {
    log_.log(spdlog::level::err,
             "no address to advertise: bound to {} and no default route; set "
             "protocol.advertise",
             cfg_.bind.to_string());
    return errc::invalid_argument;
  }
  advertise_ = to_address(*ip_out, advertise_.port() != 0 ? advertise_.port() : port_.load());
  return {};
}

error_code runtime::open_and_bind(const net::ip::address& ip, std::uint16_t port) {
  error_code ec;
  const udp::endpoint udp_ep(ip, port);
  udp_.open(udp_ep.protocol(), ec);
  if (!ec && family_ == family::dual) udp_.set_option(net::ip::v6_only(false), ec);
  if (!ec) udp_.bind(udp_ep, ec);
  if (ec) return ec;
  error_code ignored;
  udp_.set_option(net::socket_base::receive_buffer_size(socket_receive_buffer), ignored);
  const std::uint16_t bound = udp_.local_endpoint(ec).port();
  if (ec) return ec;

  const tcp::endpoint tcp_ep(ip, bound);
  acceptor_.open(tcp_ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && family_ == family::dual) acceptor_.set_option(net::ip::v6_only(false), ec);
  if (!ec) acceptor_.bind(tcp_ep, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  return ec;
}

std::optional<net::ip::address> runtime::route_source(bool v6) {
  // Connecting a UDP socket sends nothing; it only asks the kernel for the
  // route, whose source address is the one peers can reach us on.
  error_code ec;
  const auto target = net::ip::make_address(v6 ? "2001:db8::1" : "192.0.2.1", ec);
  if (ec) return std::nullopt;
  udp::socket probe(strand_);
  const udp::endpoint ep(target, 9);
  probe.open(ep.protocol(), ec);
  if (!ec) probe.connect(ep, ec);
  if (ec) return std::nullopt;
  const auto local = probe.local_endpoint(ec);
  error_code ignored;
  probe.close(ignored);
  if (ec || local.address().is_unspecified()) return std::nullopt;
  return local.address();
}

void runtime::on_started() {
  if (closed_) return;
  do_receive();
  if (icmp_errors_) do_wait_error();
  do_accept();
  add_seed_names(cfg_.seeds);
  if (!seed_names_.empty()) join_in_background();
  drain();
}

void runtime::stop() {
  phase was = phase::idle;
  std::thread thread;
  std::unique_ptr<net::executor_work_guard<net::io_context::executor_type>> work;
  {
    std::lock_guard start_lock(start_mu_);
    was = phase_.exchange(phase::stopped);
    thread = std::move(thread_);
    work = std::move(work_);
  }
  if (was == phase::running) {
    if (strand_.running_in_this_thread()) {
      do_close();
    } else {
      auto closed = std::make_shared<std::promise<void>>();
      auto done = closed->get_future();
      net::post(strand_, [self = shared_from_this(), closed] {
        self->do_close();
        closed->set_value();
      });
      if (owned_ctx_)
        done.wait();
      else
        done.wait_for(cfg_.stream_deadline + blocking_grace);  // the caller's io_context
    }
  }
  work.reset();  // run() returns once the last handler completed
  if (thread.joinable()) {
    if (thread.get_id() == std::this_thread::get_id())
      thread.detach();  // stopped from a callback
    else
      thread.join();
  }
}

void runtime::do_close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  udp_.close(ignored);
  acceptor_.close(ignored);
  tick_timer_.cancel();
  accept_retry_timer_.cancel();
  seed_timer_.cancel();
  leave_timer_.cancel();
  for (auto& [id, weak] : sessions_)
    if (auto s = weak.lock()) s->close();
  for (auto& [id, weak] : clients_)
    if (auto c = weak.lock()) c->close();
  for (auto& [id, r] : resolvers_) r->cancel();
  const auto ops = join_ops_;
  for (const auto& op : ops) complete_join(op, errc::not_running);
  for (auto& w : leave_waiters_) w->promise.set_value(errc::not_running);
  leave_waiters_.clear();
  // A send in flight still reads the front packet until its handler runs.
  while (send_queue_.size() > (sending_ ? 1u : 0u)) send_queue_.pop_back();
  {
    std::lock_guard lock(mu_);
    pending_.clear();
  }
  log_.log(spdlog::level::info, "node stopped name={}", cfg_.protocol.name);
}

bool runtime::running() const {
  return phase_ == phase::running;
}

// ---- the outbox ----

void runtime::post_drain() {
  if (drain_posted_.exchange(true)) return;
  net::post(strand_, [self = shared_from_this()] {
    self->drain_posted_ = false;
    self->drain();
  });
}

void runtime::drain() {
  if (closed_) return;
  time_point next = time_point::max();
  // Swapped with pending_, then handed back emptied: the core fills the same
  // vectors again, so a datagram in and an ack out allocate no outbox.
  outbox batch;
  bool swapped = false;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (pending_.empty()) {
        if (swapped) std::swap(batch, pending_);
        next = core_->next_deadline();
        break;
      }
      std::swap(batch, pending_);
      swapped = true;
    }
    dispatch(batch);
    recycle(batch);
    if (closed_) return;  // a callback stopped the node
  }
  arm_tick(next);
  check_leave();
}

void runtime::dispatch(outbox& batch) {
  for (auto& p : batch.packets) enqueue_send(std::move(p));
  for (auto& s : batch.streams) start_stream(std::move(s));
  deliver_events(batch.events);
  deliver_user_data(batch.user_messages, batch.user_states);
}

namespace {

template <class Handler, class... Args>
void invoke_guarded(const log_sink& log, runtime_counters& counters, const char* what,
                    const Handler& h, Args&&... args) {
  try {
    h(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    bump(counters.callback_exceptions);
    log.log(spdlog::level::err, "{} callback threw: {}", what, e.what());
  } catch (...) {
    bump(counters.callback_exceptions);
    log.log(spdlog::level::err, "{} callback threw", what);
  }
}

}  // namespace

void runtime::deliver_events(std::vector<event>& events) {
  if (events.empty()) return;
  // The core already logs each membership change at info; here at debug, as
  // delivered to subscribers.
  for (const auto& e : events)
    SHOAL_LOG(log_, spdlog::level::debug, "deliver {} member={} addr={} inc={} state={}",
              to_string(e.type), e.who.name, e.who.addr.to_string(), e.who.incarnation,
              to_string(e.who.state));
  std::vector<std::shared_ptr<node::event_handler>> handlers;
  {
    std::lock_guard lock(cb_mu_);
    handlers.reserve(subscribers_.size());
    for (const auto& [id, h] : subscribers_) handlers.push_back(h);
  }
  for (const auto& e : events) {
    for (const auto& h : handlers) {
      invoke_guarded(log_, counters_, "event", *h, e);
      if (closed_) return;
    }
  }
}

void runtime::deliver_user_data(std::vector<user_message>& messages, std::vector<bytes>& states) {
  if (messages.empty() && states.empty()) return;
  std::shared_ptr<node::user_message_handler> on_message;
  std::shared_ptr<node::user_state_handler> on_state;
  {
    std::lock_guard lock(cb_mu_);
    on_message = user_message_handler_;
    on_state = user_state_handler_;
  }
  if (on_message) {
    for (const auto& m : messages) {
      invoke_guarded(log_, counters_, "user message", *on_message, m);
      if (closed_) return;
    }
  }
  if (on_state) {
    for (const auto& s : states) {
      invoke_guarded(log_, counters_, "user state", *on_state, s);
      if (closed_) return;
    }
  }
}

// ---- the tick timer: one, armed at the core's next deadline ----

void runtime::arm_tick(time_point at) {
  if (closed_ || (tick_armed_at_ && *tick_armed_at_ == at)) return;
  ++tick_generation_;  // a wait armed before this one is stale
  if (at == time_point::max()) {
    tick_armed_at_.reset();
    tick_timer_.cancel();
    return;
  }
  tick_armed_at_ = at;
  tick_timer_.expires_at(to_steady(at));
  tick_timer_.async_wait([self = shared_from_this(), gen = tick_generation_](const error_code& ec) {
    self->on_tick(ec, gen);
  });
}

void runtime::on_tick(const error_code& ec, std::uint64_t generation) {
  if (ec == net::error::operation_aborted || closed_ || generation != tick_generation_) return;
  tick_armed_at_.reset();
  {
    std::lock_guard lock(mu_);
    core_->tick(now(), pending_);
  }
  drain();
}

// ---- logging ----

spdlog::level::level_enum runtime::warning_level(const char* what) {
  auto it = warnings_.find(std::string_view(what));
  if (it == warnings_.end())
    it = warnings_.emplace(std::string(what), rate_limit(warning_period)).first;
  return it->second.allow(now()) ? spdlog::level::warn : spdlog::level::debug;
}

void runtime::fail(const error_code& ec, const char* what) const {
  if (ec == net::error::operation_aborted) return;
  SHOAL_LOG(log_, spdlog::level::debug, "{} failed: {}", what, ec.message());
}

}  // namespace shoal::io
