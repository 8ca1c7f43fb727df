// Joining and leaving: seeds (resolved, numeric or by DNS, and retried while
// this node is alone), the blocking join() with the exchanges it waits for,
// and the blocking leave() that returns once the departure is on the wire.
//
// The core retries the seed addresses it was given; the runtime resolves the
// names again each seed_retry_interval and hands it only new addresses.
#include "io/runtime.hpp"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>

#include "io/seeds.hpp"

namespace shoal::io {

// ---- seeds and join ----

/// One do_resolve() call: the names still being resolved and what came back.
struct runtime::resolve_batch {
  std::size_t pending = 0;
  std::vector<address> addrs;
  std::error_code error;
  resolved_handler done;
};

void runtime::do_resolve(const std::vector<std::string>& names, resolved_handler done) {
  auto batch = std::make_shared<resolve_batch>();
  batch->done = std::move(done);
  for (const auto& name : names) {
    const auto spec = parse_seed(name, port_.load());
    if (!spec) {
      bump(counters_.resolve_failures);
      batch->error = errc::invalid_argument;
      log_.log(spdlog::level::warn, "bad seed seed={}", name);
      continue;
    }
    error_code ec;
    const auto ip = net::ip::make_address(spec->host, ec);
    if (!ec) {  // numeric: no DNS
      add_resolved(*batch, to_address(ip, spec->port));
      continue;
    }
    const std::uint64_t id = next_io_id_++;
    auto resolver = std::make_shared<udp::resolver>(strand_);
    resolvers_.emplace(id, resolver);
    ++batch->pending;
    // No address_configured flag: a host with only loopback still gets its
    // A and AAAA records.
    resolver->async_resolve(spec->host, std::to_string(spec->port), udp::resolver::numeric_service,
                            [self = shared_from_this(), batch, id, name](
                                const error_code& e, const udp::resolver::results_type& results) {
                              self->on_resolve(e, results, batch, id, name);
                            });
  }
  if (batch->pending == 0) finish_resolve(*batch);
}

void runtime::on_resolve(const error_code& ec, const udp::resolver::results_type& results,
                         const std::shared_ptr<resolve_batch>& batch, std::uint64_t id,
                         const std::string& name) {
  resolvers_.erase(id);
  if (ec == net::error::operation_aborted || closed_) return;
  if (ec) {
    bump(counters_.resolve_failures);
    batch->error = to_std(ec);
    warn_limited("cannot resolve seed", [&] { return "seed=" + name + " error=" + ec.message(); });
  } else {
    for (const auto& entry : results) add_resolved(*batch, to_address(entry.endpoint()));
  }
  if (--batch->pending == 0) finish_resolve(*batch);
}

void runtime::add_resolved(resolve_batch& batch, const address& a) const {
  if (reachable(family_, a) && a != advertise_) batch.addrs.push_back(a);
}

void runtime::finish_resolve(resolve_batch& batch) {
  if (closed_) return;
  std::sort(batch.addrs.begin(), batch.addrs.end());
  batch.addrs.erase(std::unique(batch.addrs.begin(), batch.addrs.end()), batch.addrs.end());
  batch.done(std::move(batch.addrs), batch.error);
}

void runtime::add_seed_names(const std::vector<std::string>& seeds) {
  for (const auto& s : seeds)
    if (std::find(seed_names_.begin(), seed_names_.end(), s) == seed_names_.end())
      seed_names_.push_back(s);
  if (!seed_names_.empty()) arm_seed_retry();
}

void runtime::join_in_background() {
  do_resolve(seed_names_, [self = shared_from_this()](std::vector<address> addrs, std::error_code) {
    // The core retries the addresses it was given; it only needs new ones.
    std::vector<address> fresh;
    for (const auto& a : addrs)
      if (self->seeds_given_.insert(a).second) fresh.push_back(a);
    if (fresh.empty()) return;
    {
      std::lock_guard lock(self->mu_);
      self->core_->join(now(), fresh, self->pending_);
    }
    self->drain();
  });
}

void runtime::arm_seed_retry() {
  if (seed_timer_armed_ || closed_) return;
  seed_timer_armed_ = true;
  seed_timer_.expires_after(cfg_.protocol.seed_retry_interval);
  seed_timer_.async_wait(
      [self = shared_from_this()](const error_code& ec) { self->on_seed_retry(ec); });
}

void runtime::on_seed_retry(const error_code& ec) {
  seed_timer_armed_ = false;
  if (ec == net::error::operation_aborted || closed_ || leaving_) return;
  if (alone()) join_in_background();  // names are resolved again each time
  arm_seed_retry();
}

bool runtime::alone() const {
  std::lock_guard lock(mu_);
  return core_->count(member_state::alive) + core_->count(member_state::suspect) <= 1;
}

join_result runtime::join(const std::vector<std::string>& seeds) {
  if (!running()) return {0, 0, errc::not_running};
  if (strand_.running_in_this_thread())
    return {0, 0, std::make_error_code(std::errc::resource_deadlock_would_occur)};
  if (seeds.empty()) return {};
  auto op = std::make_shared<join_op>(strand_);
  auto result = op->promise.get_future();
  net::post(strand_, [self = shared_from_this(), op, seeds] { self->do_join(seeds, op); });
  // The op's own timer bounds it, as long as someone runs the io_context.
  if (result.wait_for(2 * cfg_.stream_deadline + blocking_grace) != std::future_status::ready)
    return {0, 0, std::make_error_code(std::errc::timed_out)};
  return result.get();
}

void runtime::do_join(std::vector<std::string> seeds, std::shared_ptr<join_op> op) {
  if (closed_) return complete_join(op, errc::not_running);
  join_ops_.insert(op);
  add_seed_names(seeds);
  // Resolution plus one exchange, with room for a slow resolver.
  op->timer.expires_after(2 * cfg_.stream_deadline);
  op->timer.async_wait([self = shared_from_this(), op](const error_code& ec) {
    if (ec == net::error::operation_aborted) return;
    self->complete_join(op, std::make_error_code(std::errc::timed_out));
  });
  do_resolve(seeds,
             [self = shared_from_this(), op](std::vector<address> addrs, std::error_code ec) {
               self->on_join_resolved(std::move(addrs), ec, op);
             });
}

void runtime::on_join_resolved(std::vector<address> addrs, std::error_code ec,
                               const std::shared_ptr<join_op>& op) {
  if (op->done) return;
  op->result.resolved = addrs.size();
  if (addrs.empty()) {
    return complete_join(op, ec ? ec : std::make_error_code(std::errc::host_unreachable));
  }
  {
    std::lock_guard lock(mu_);
    const std::size_t first = pending_.streams.size();
    core_->join(now(), addrs, pending_);
    for (std::size_t i = first; i < pending_.streams.size(); ++i) {
      const stream_request& s = pending_.streams[i];
      if (s.kind != stream_kind::join) continue;
      op->streams.insert(s.id);
      join_streams_[s.id] = op;
    }
  }
  for (const auto& a : addrs) seeds_given_.insert(a);
  if (op->streams.empty()) complete_join(op, errc::not_running);  // leaving, or too busy
  drain();
}

void runtime::complete_join(const std::shared_ptr<join_op>& op, std::error_code ec) {
  if (op->done) return;
  op->done = true;
  op->timer.cancel();
  for (const auto id : op->streams) join_streams_.erase(id);
  op->streams.clear();
  join_ops_.erase(op);
  join_result r = op->result;
  if (r.contacted > 0) {
    r.error = {};
  } else if (ec) {
    r.error = ec;
  } else {
    r.error = op->last_error ? op->last_error : std::make_error_code(std::errc::host_unreachable);
  }
  log_.log(spdlog::level::debug, "join done resolved={} contacted={} error={}", r.resolved,
           r.contacted, r.error.message());
  op->promise.set_value(r);
}

// ---- leave ----

std::error_code runtime::leave(duration timeout) {
  if (!running()) return errc::not_running;
  if (strand_.running_in_this_thread())
    return std::make_error_code(std::errc::resource_deadlock_would_occur);
  auto waiter = std::make_shared<leave_waiter>();
  auto result = waiter->promise.get_future();
  {
    std::lock_guard lock(mu_);
    const time_point t = now();
    core_->leave(t, timeout, pending_);
    waiter->deadline = t + timeout;
  }
  log_.log(spdlog::level::info, "leaving name={}", cfg_.protocol.name);
  net::post(strand_, [self = shared_from_this(), waiter] {
    if (self->closed_) return waiter->promise.set_value(errc::not_running);
    self->leaving_ = true;  // no more seed retries
    self->leave_waiters_.push_back(waiter);
    self->leave_timer_.expires_at(to_steady(waiter->deadline));
    self->leave_timer_.async_wait([self](const error_code& ec) {
      if (ec == net::error::operation_aborted || self->closed_) return;
      self->check_leave();
    });
    self->drain();  // sends the departure, then checks whether it is done
  });
  if (result.wait_for(timeout + blocking_grace) != std::future_status::ready)
    return std::make_error_code(std::errc::timed_out);
  return result.get();
}

void runtime::check_leave() {
  if (leave_waiters_.empty()) return;
  const time_point t = now();
  bool done = false;
  {
    std::lock_guard lock(mu_);
    done = core_->leave_done(t);
  }
  if (!done || !send_queue_.empty()) return;  // the departure must be on the wire
  for (auto& w : leave_waiters_)
    w->promise.set_value(t < w->deadline ? std::error_code{}
                                         : std::make_error_code(std::errc::timed_out));
  leave_waiters_.clear();
  leave_timer_.cancel();
}

}  // namespace shoal::io
