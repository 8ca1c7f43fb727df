// The simulator's public facade (include/shoal/sim.hpp): every simulator::
// call forwards to sim_impl (sim_impl.hpp maps which file does what), and the
// vocabulary that scenarios and tests speak: full_mesh, converged,
// status_everywhere, status_seen_by and their wait_* forms.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <utility>

#include "sim/sim_impl.hpp"

namespace shoal::sim {

using detail::sim_impl;

simulator::simulator(options opts) : impl_(std::make_unique<sim_impl>(std::move(opts))) {}
simulator::~simulator() = default;
simulator::simulator(simulator&&) noexcept = default;
simulator& simulator::operator=(simulator&&) noexcept = default;

const options& simulator::opts() const noexcept {
  return impl_->opts_;
}

time_point simulator::now() const noexcept {
  return impl_->now();
}
time_point simulator::start_time() const noexcept {
  return impl_->start();
}
duration simulator::elapsed() const noexcept {
  return duration(impl_->now_ - impl_->start_);
}

void simulator::run_for(duration d) {
  impl_->run_until(impl_->now_ + std::max<std::int64_t>(d.count(), 0));
}
void simulator::run_until(time_point t) {
  impl_->run_until(t.time_since_epoch().count());
}
bool simulator::step() {
  return impl_->step();
}

bool simulator::wait_until(const std::function<bool()>& pred, duration timeout, duration poll) {
  const std::int64_t deadline = impl_->now_ + std::max<std::int64_t>(timeout.count(), 0);
  const std::int64_t p = std::max<std::int64_t>(poll.count(), 1);
  for (;;) {
    if (pred()) return true;
    if (impl_->now_ >= deadline) return false;
    impl_->run_until(std::min(impl_->now_ + p, deadline));
  }
}

void simulator::at(time_point t, std::function<void()> fn) {
  impl_->at(t.time_since_epoch().count(), std::move(fn));
}
void simulator::after(duration d, std::function<void()> fn) {
  impl_->at(impl_->now_ + std::max<std::int64_t>(d.count(), 0), std::move(fn));
}

std::uint64_t simulator::events_processed() const noexcept {
  return impl_->processed_;
}
std::size_t simulator::pending_events() const noexcept {
  return impl_->queue_.size();
}
rng& simulator::scenario_rng() noexcept {
  return impl_->scenario_rng_;
}

node_id simulator::add_node() {
  return impl_->add_node(std::nullopt);
}
node_id simulator::add_node(config cfg) {
  return impl_->add_node(std::move(cfg));
}
std::vector<node_id> simulator::add_nodes(std::size_t n) {
  return impl_->add_nodes(n);
}
std::size_t simulator::size() const noexcept {
  return impl_->nodes_.size();
}

const std::string& simulator::name(node_id n) const {
  return impl_->node(n).name;
}
const address& simulator::addr(node_id n) const {
  return impl_->node(n).addr;
}
std::optional<node_id> simulator::find_node(std::string_view name) const {
  const node_id n = impl_->parse_name(name);
  if (n == no_node) return std::nullopt;
  return n;
}
node_id simulator::node_at(const address& a) const noexcept {
  return impl_->node_at(a);
}

node_status simulator::status(node_id n) const {
  return impl_->node(n).status;
}
bool simulator::is_live(node_id n) const {
  return impl_->node(n).status == node_status::running;
}
bool simulator::is_paused(node_id n) const {
  return impl_->node(n).paused;
}
std::vector<node_id> simulator::live_nodes() const {
  std::vector<node_id> v;
  v.reserve(impl_->running_);
  for (std::size_t i = 0; i < impl_->nodes_.size(); ++i)
    if (impl_->nodes_[i].status == node_status::running) v.push_back(static_cast<node_id>(i));
  return v;
}
std::size_t simulator::live_count() const noexcept {
  return impl_->running_;
}
std::uint32_t simulator::life(node_id n) const {
  return impl_->node(n).life;
}

core& simulator::node_core(node_id n) {
  auto& s = impl_->node(n);
  if (!s.c) throw std::logic_error("shoal::sim: node " + s.name + " has no core");
  return *s.c;
}
const core& simulator::node_core(node_id n) const {
  const auto& s = impl_->node(n);
  if (!s.c) throw std::logic_error("shoal::sim: node " + s.name + " has no core");
  return *s.c;
}
bool simulator::has_core(node_id n) const {
  return impl_->node(n).c.has_value();
}

void simulator::join(node_id n, std::span<const node_id> seeds) {
  impl_->join(n, seeds);
}

std::vector<node_id> simulator::bootstrap(std::size_t n, std::size_t seeds, duration stagger) {
  return impl_->bootstrap(n, seeds, stagger);
}

std::vector<node_id> simulator::start_converged(std::size_t n, std::size_t seeds) {
  return impl_->start_converged(n, seeds);
}

void simulator::crash(node_id n) {
  impl_->crash(n);
}
void simulator::crash(node_id n, bool host_up) {
  impl_->crash(n, host_up);
}
bool simulator::refuses(node_id n) const {
  impl_->node(n);
  return impl_->refuses(n);
}
void simulator::act(node_id n, const std::function<void(core&, outbox&)>& fn) {
  impl_->act(n, fn);
}

void simulator::set_config(node_id n, config cfg) {
  impl_->set_config(n, std::move(cfg));
}

void simulator::restart(node_id n, std::span<const node_id> seeds,
                        std::optional<std::uint64_t> incarnation) {
  impl_->restart(n, seeds, incarnation);
}
void simulator::leave(node_id n, duration timeout) {
  impl_->leave(n, timeout);
}
void simulator::pause(node_id n, duration d) {
  impl_->pause(n, d);
}
void simulator::pause(node_id n) {
  impl_->pause(n, std::nullopt);
}
void simulator::resume(node_id n) {
  impl_->resume(n);
}
void simulator::set_slow(node_id n, duration delay) {
  impl_->set_slow(n, delay);
}
void simulator::set_healthy(node_id n, bool healthy) {
  impl_->node(n).healthy = healthy;
}
bool simulator::is_healthy(node_id n) const {
  return impl_->node(n).healthy;
}

void simulator::set_loss(double p) {
  impl_->set_loss(p);
}
void simulator::set_ingress_loss(node_id n, double p) {
  impl_->set_ingress_loss(n, p);
}
void simulator::set_egress_loss(node_id n, double p) {
  impl_->set_egress_loss(n, p);
}
void simulator::set_link_loss(node_id from, node_id to, double p) {
  impl_->set_link_loss(from, to, p);
}
void simulator::block_io(node_id n) {
  set_ingress_loss(n, 1.0);
  set_egress_loss(n, 1.0);
}
void simulator::unblock_io(node_id n) {
  set_ingress_loss(n, 0.0);
  set_egress_loss(n, 0.0);
}

simulator::partition_id simulator::partition(std::span<const node_id> a, std::span<const node_id> b,
                                             bool two_way) {
  return impl_->partition(a, b, two_way);
}
void simulator::heal(partition_id p) {
  impl_->heal(p);
}
void simulator::heal_all() {
  impl_->heal_all();
}
bool simulator::link_blocked(node_id from, node_id to) const noexcept {
  if (from >= impl_->nodes_.size() || to >= impl_->nodes_.size()) return true;
  return impl_->net_.blocked(from, to);
}
void simulator::send_raw(node_id from, node_id to, bytes data) {
  impl_->node(from);
  impl_->node(to);
  impl_->send_packet(from, to, std::move(data));
}
void simulator::on_packet(
    std::function<void(node_id from, node_id to, std::span<const std::uint8_t>)> fn) {
  impl_->packet_hook_ = std::move(fn);
}

// ---- vocabulary ----

namespace detail {

bool sim_impl::self_in_counts() const {
  if (!self_in_counts_) {
    for (const auto& n : nodes_) {
      if (!n.c) continue;
      const auto v = n.c->members();
      std::size_t sum = 0;
      for (auto st :
           {member_state::alive, member_state::suspect, member_state::dead, member_state::left})
        sum += n.c->count(st);
      self_in_counts_ = sum == v.size();
      break;
    }
  }
  return self_in_counts_.value_or(true);
}

}  // namespace detail

bool simulator::full_mesh() const {
  // Exact without copying views: a node's alive members are live nodes and
  // "ghosts" (crashed or departed nodes it still sees alive); it sees every
  // live node alive iff count(alive) - ghosts == live nodes.
  const auto& nodes = impl_->nodes_;
  const std::size_t live = impl_->running_;
  if (live == 0) return true;
  const std::size_t self = impl_->self_in_counts() ? 0 : 1;
  std::vector<std::string> gone;
  for (const auto& n : nodes)
    if (n.status == node_status::crashed || n.status == node_status::left ||
        n.status == node_status::leaving)
      gone.push_back(n.name);
  // Start where the last check failed: that node is likely still behind.
  const std::size_t size = nodes.size();
  std::size_t& cursor = impl_->mesh_cursor_;
  for (std::size_t k = 0; k < size; ++k) {
    const std::size_t i = (cursor + k) % size;
    if (nodes[i].status != node_status::running) continue;
    const core& c = *nodes[i].c;
    const std::size_t alive = c.count(member_state::alive) + self;
    std::size_t ghosts = 0;
    if (alive >= live) {
      for (const auto& g : gone) {
        const auto m = c.find(g);
        if (m && m->state == member_state::alive) ++ghosts;
      }
    }
    if (alive < live || alive - ghosts != live) {
      cursor = i;
      return false;
    }
  }
  return true;
}

bool simulator::converged() const {
  const auto& nodes = impl_->nodes_;
  std::optional<std::uint64_t> digest;
  for (const auto& n : nodes) {
    if (n.status != node_status::running) continue;
    const std::uint64_t d = n.c->digest();
    if (!digest)
      digest = d;
    else if (*digest != d)
      return false;
  }
  return full_mesh();
}

bool simulator::status_everywhere(std::string_view name, member_state s) const {
  const std::string key(name);
  const node_id self = impl_->parse_name(name);
  const auto& nodes = impl_->nodes_;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (i == self || nodes[i].status != node_status::running) continue;
    const auto m = nodes[i].c->find(key);
    if (!m || m->state != s) return false;
  }
  return true;
}

std::optional<member_state> simulator::status_seen_by(node_id observer,
                                                      std::string_view name) const {
  const auto& n = impl_->node(observer);
  if (!n.c) return std::nullopt;
  const auto m = n.c->find(std::string(name));
  if (!m) return std::nullopt;
  return m->state;
}

bool simulator::wait_full_mesh(duration timeout) {
  return wait_until([this] { return full_mesh(); }, timeout);
}
bool simulator::wait_converged(duration timeout) {
  return wait_until([this] { return converged(); }, timeout);
}
bool simulator::wait_status_everywhere(std::string_view name, member_state s, duration timeout) {
  const std::string key(name);
  return wait_until([this, &key, s] { return status_everywhere(key, s); }, timeout);
}

// ---- metrics ----

const node_metrics& simulator::metrics(node_id n) const {
  impl_->node(n);
  return impl_->metrics_[n];
}
traffic simulator::total_sent() const {
  traffic t;
  for (const auto& m : impl_->metrics_) t += m.sent;
  return t;
}
traffic simulator::total_received() const {
  traffic t;
  for (const auto& m : impl_->metrics_) t += m.received;
  return t;
}
const std::vector<crash_record>& simulator::crashes() const noexcept {
  return impl_->crashes_;
}
std::uint64_t simulator::false_suspicions() const noexcept {
  return impl_->false_suspicions_;
}
std::uint64_t simulator::false_deaths() const noexcept {
  return impl_->false_deaths_;
}
std::uint64_t simulator::false_suspicions_by_unhealthy() const noexcept {
  return impl_->false_suspicions_unhealthy_;
}
std::uint64_t simulator::false_deaths_by_unhealthy() const noexcept {
  return impl_->false_deaths_unhealthy_;
}
const std::vector<false_positive>& simulator::false_positives() const noexcept {
  return impl_->false_records_;
}
const std::vector<recorded_event>& simulator::recorded_events() const noexcept {
  return impl_->recorded_;
}
void simulator::on_event(std::function<void(node_id, const event&)> fn) {
  impl_->event_hook_ = std::move(fn);
}
void simulator::on_user_message(std::function<void(node_id, const user_message&)> fn) {
  impl_->user_message_hook_ = std::move(fn);
}
void simulator::on_progress(std::function<void(const progress&)> fn, std::uint64_t every_events) {
  impl_->progress_fn_ = std::move(fn);
  impl_->progress_every_ = std::max<std::uint64_t>(every_events, 1);
}
std::uint64_t simulator::tick_anomalies() const noexcept {
  return impl_->tick_anomalies_;
}

}  // namespace shoal::sim
