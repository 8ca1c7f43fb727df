// The facade's queries and changes, which shoal::node forwards to (any
// thread). Each holds the core's mutex only for its one call into the core
// (the callbacks' mutex for subscriptions), and a change that leaves work in
// the outbox posts a drain to the strand (post_drain) rather than waiting for
// it. Elsewhere: start() and stop() in runtime.cpp; join() and leave(), which
// block, in membership.cpp; the key operations in envelope.cpp.
#include "io/runtime.hpp"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace shoal::io {

std::vector<member> runtime::members() const {
  std::lock_guard lock(mu_);
  return core_ ? core_->members() : std::vector<member>{};
}

std::size_t runtime::count(member_state s) const {
  std::lock_guard lock(mu_);
  return core_ ? core_->count(s) : 0;
}

member runtime::local_member() const {
  std::lock_guard lock(mu_);
  if (core_) return core_->local_member();
  const config& p = cfg_.protocol;
  return member{p.name, p.advertise,     p.initial_incarnation, member_state::alive,
                p.tags, protocol_version};
}

std::optional<member> runtime::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  if (!core_) return std::nullopt;
  return core_->find(name);
}

int runtime::health_score() const {
  std::lock_guard lock(mu_);
  return core_ ? core_->health_score() : 0;
}

std::uint64_t runtime::digest() const {
  std::lock_guard lock(mu_);
  return core_ ? core_->digest() : 0;
}

node_stats runtime::stats() const {
  node_stats s;
  {
    std::lock_guard lock(mu_);
    if (core_) s.core = core_->stats();
  }
  s.runtime = counters_.snapshot();
  s.tcp_sessions = session_count_.load();
  s.streams = stream_count_.load();
  return s;
}

std::error_code runtime::set_tags(tag_map tags) {
  std::error_code ec;
  {
    std::lock_guard lock(mu_);
    if (!core_) {  // before start(): the tags it starts with
      std::size_t n = 0;
      for (const auto& [k, v] : tags) n += k.size() + v.size();
      if (n > cfg_.protocol.max_tag_bytes) return errc::invalid_argument;
      cfg_.protocol.tags = std::move(tags);
      return {};
    }
    if (!running()) return errc::not_running;
    ec = core_->set_tags(now(), std::move(tags), pending_);
  }
  post_drain();
  return ec;
}

std::error_code runtime::broadcast(bytes payload) {
  if (!running()) return errc::not_running;
  std::lock_guard lock(mu_);
  return core_->broadcast(std::move(payload));  // leaves with the next gossip round
}

std::error_code runtime::send_to(const std::string& name, bytes payload) {
  if (!running()) return errc::not_running;
  std::error_code ec;
  {
    std::lock_guard lock(mu_);
    ec = core_->send_to(name, std::move(payload), pending_);
  }
  if (!ec) post_drain();
  return ec;
}

std::error_code runtime::prune(const std::string& name) {
  if (!running()) return errc::not_running;
  std::error_code ec;
  {
    std::lock_guard lock(mu_);
    ec = core_->prune(now(), name, pending_);
  }
  if (!ec) post_drain();
  log_.log(ec ? spdlog::level::debug : spdlog::level::info, "prune member={} result={}", name,
           ec ? ec.message() : "ok");
  return ec;
}

std::error_code runtime::force_leave(const std::string& name) {
  if (!running()) return errc::not_running;
  std::error_code ec;
  {
    std::lock_guard lock(mu_);
    ec = core_->force_leave(now(), name, pending_);
  }
  if (!ec) post_drain();
  log_.log(ec ? spdlog::level::debug : spdlog::level::info, "force-leave member={} result={}", name,
           ec ? ec.message() : "ok");
  return ec;
}

void runtime::set_user_state(bytes state) {
  std::lock_guard lock(mu_);
  if (core_)
    core_->set_user_state(std::move(state));
  else
    early_user_state_ = std::move(state);
}

node::subscription runtime::subscribe(node::event_handler handler) {
  if (!handler) return 0;
  std::lock_guard lock(cb_mu_);
  const node::subscription id = next_subscription_++;
  subscribers_.emplace(id, std::make_shared<node::event_handler>(std::move(handler)));
  return id;
}

void runtime::unsubscribe(node::subscription id) {
  std::lock_guard lock(cb_mu_);
  subscribers_.erase(id);
}

void runtime::on_user_message(node::user_message_handler handler) {
  std::lock_guard lock(cb_mu_);
  user_message_handler_ =
      handler ? std::make_shared<node::user_message_handler>(std::move(handler)) : nullptr;
}

void runtime::on_user_state(node::user_state_handler handler) {
  std::lock_guard lock(cb_mu_);
  user_state_handler_ =
      handler ? std::make_shared<node::user_state_handler>(std::move(handler)) : nullptr;
}

}  // namespace shoal::io
