// shoal::node: the thread-safe facade; everything happens in io::runtime.
#include <shoal/node.hpp>

#include <stdexcept>

#include <boost/asio/io_context.hpp>

#include "io/runtime.hpp"

namespace shoal {

namespace {

node_config checked(node_config cfg) {
  config probe = cfg.protocol;
  if (probe.advertise.port() == 0)  // the bound port is filled in by start()
    probe.advertise = address::v4({127, 0, 0, 1}, 1);
  if (auto err = probe.validate()) throw std::invalid_argument("shoal::node_config: " + *err);
  if (cfg.max_tcp_sessions == 0)
    throw std::invalid_argument("shoal::node_config: max_tcp_sessions must be >= 1");
  if (cfg.stream_deadline <= duration::zero())
    throw std::invalid_argument("shoal::node_config: stream_deadline must be > 0");
  return cfg;
}

}  // namespace

std::optional<node_config> node_config::preset(std::string_view name) {
  node_config nc;
  if (name == "lan")
    nc.protocol = config::lan();
  else if (name == "wan")
    nc.protocol = config::wan();
  else if (name == "local")
    nc.protocol = config::local();
  else
    return std::nullopt;
  return nc;
}

node::node(node_config cfg) {
  auto ctx = std::make_shared<boost::asio::io_context>(1);
  auto& ref = *ctx;
  rt_ = std::make_shared<io::runtime>(checked(std::move(cfg)), ref, std::move(ctx));
}

node::node(node_config cfg, boost::asio::io_context& ctx)
    : rt_(std::make_shared<io::runtime>(checked(std::move(cfg)), ctx, nullptr)) {}

node::~node() {
  rt_->stop();
}

std::error_code node::start() {
  return rt_->start();
}
join_result node::join(const std::vector<std::string>& seeds) {
  return rt_->join(seeds);
}
std::error_code node::leave(duration timeout) {
  return rt_->leave(timeout);
}
void node::stop() {
  rt_->stop();
}
bool node::running() const {
  return rt_->running();
}
std::uint16_t node::port() const {
  return rt_->port();
}
std::vector<member> node::members() const {
  return rt_->members();
}
std::size_t node::count(member_state s) const {
  return rt_->count(s);
}
member node::local_member() const {
  return rt_->local_member();
}
std::optional<member> node::find(const std::string& name) const {
  return rt_->find(name);
}
std::error_code node::set_tags(tag_map tags) {
  return rt_->set_tags(std::move(tags));
}
std::error_code node::broadcast(bytes payload) {
  return rt_->broadcast(std::move(payload));
}
std::error_code node::send_to(const std::string& name, bytes payload) {
  return rt_->send_to(name, std::move(payload));
}
std::error_code node::force_leave(const std::string& name) {
  return rt_->force_leave(name);
}
std::error_code node::prune(const std::string& name) {
  return rt_->prune(name);
}
void node::set_user_state(bytes state) {
  rt_->set_user_state(std::move(state));
}
node::subscription node::subscribe(event_handler handler) {
  return rt_->subscribe(std::move(handler));
}
void node::unsubscribe(subscription id) {
  rt_->unsubscribe(id);
}
void node::on_user_message(user_message_handler handler) {
  rt_->on_user_message(std::move(handler));
}
void node::on_user_state(user_state_handler handler) {
  rt_->on_user_state(std::move(handler));
}
int node::health_score() const {
  return rt_->health_score();
}
std::uint64_t node::digest() const {
  return rt_->digest();
}
node_stats node::stats() const {
  return rt_->stats();
}
std::error_code node::install_key(const encryption_key& key) {
  return rt_->install_key(key);
}
std::error_code node::use_key(const encryption_key& key) {
  return rt_->use_key(key);
}
std::error_code node::remove_key(const encryption_key& key) {
  return rt_->remove_key(key);
}
std::vector<encryption_key> node::list_keys() const {
  return rt_->list_keys();
}

}  // namespace shoal
