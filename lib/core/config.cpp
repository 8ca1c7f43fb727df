#include <shoal/config.hpp>

#include <string>

namespace shoal {

config config::lan() {
  return config{};
}

config config::wan() {
  config c = lan();
  c.probe_interval = std::chrono::seconds(5);
  c.probe_timeout = std::chrono::seconds(3);
  c.suspicion_mult = 6;
  c.refusal_suspicion_timeout = std::chrono::seconds(10);
  c.gossip_interval = std::chrono::milliseconds(500);
  c.gossip_nodes = 4;
  c.gossip_to_the_dead_time = std::chrono::seconds(60);
  c.push_pull_interval = std::chrono::seconds(60);
  c.seed_retry_interval = std::chrono::seconds(10);
  c.flap_half_life = std::chrono::seconds(120);
  c.flap_stable_time = std::chrono::seconds(60);
  return c;
}

config config::local() {
  config c = lan();
  c.probe_interval = std::chrono::milliseconds(500);
  c.probe_timeout = std::chrono::milliseconds(200);
  c.suspicion_mult = 3;
  c.refusal_suspicion_timeout = std::chrono::seconds(1);
  c.gossip_interval = std::chrono::milliseconds(100);
  c.gossip_to_the_dead_time = std::chrono::seconds(15);
  c.push_pull_interval = std::chrono::seconds(15);
  c.seed_retry_interval = std::chrono::seconds(2);
  return c;
}

namespace {
std::string field(const char* name, const char* what) {
  return std::string(name) + ": " + what;
}
}  // namespace

std::optional<std::string> config::validate() const {
  using std::chrono::milliseconds;
  if (name.empty()) return field("name", "must not be empty");
  if (max_tags == 0 || max_tags > 1024) return field("max_tags", "must be in 1..1024");
  if (return_proof_pings < 0 || return_proof_pings > 16)
    return field("return_proof_pings", "must be in 0..16");
  if (flap_half_life < duration::zero() || flap_half_life > std::chrono::hours(24))
    return field("flap_half_life", "must be in 0..24h");
  if (!(flap_damp_penalty >= 1.0 && flap_damp_penalty <= 100.0))
    return field("flap_damp_penalty", "must be in 1..100");
  if (flap_stable_time < duration::zero() || flap_stable_time > std::chrono::hours(24))
    return field("flap_stable_time", "must be in 0..24h");
  if (tags.size() > max_tags) return field("tags", "more than max_tags");
  if (tag_bytes(tags) > max_tag_bytes) return field("tags", "over max_tag_bytes");
  if (protocol < 1 || protocol > protocol_version)
    return field("protocol", "must be in 1..protocol_version (member.hpp)");
  if (max_name_length == 0 || max_name_length > 1024)
    return field("max_name_length", "must be in 1..1024");
  if (name.size() > max_name_length) return field("name", "longer than max_name_length");
  if (advertise.port() == 0) return field("advertise", "needs a non-zero port");
  if (probe_interval < milliseconds(10)) return field("probe_interval", "must be >= 10ms");
  if (probe_timeout <= duration::zero()) return field("probe_timeout", "must be > 0");
  if (probe_timeout >= probe_interval)
    return field("probe_timeout", "must be shorter than probe_interval");
  if (indirect_checks < 0 || indirect_checks > 16)
    return field("indirect_checks", "must be in 0..16");
  if (suspicion_mult < 1 || suspicion_mult > 100)
    return field("suspicion_mult", "must be in 1..100");
  if (suspicion_max_timeout_mult < 1 || suspicion_max_timeout_mult > 100)
    return field("suspicion_max_timeout_mult", "must be in 1..100");
  if (refusal_suspicion_timeout < duration::zero() ||
      refusal_suspicion_timeout > std::chrono::hours(1))
    return field("refusal_suspicion_timeout", "must be in 0..1h");
  if (awareness_max_multiplier < 1 || awareness_max_multiplier > 64)
    return field("awareness_max_multiplier", "must be in 1..64");
  if (unhealthy_refute_limit < 0 || unhealthy_refute_limit > 100)
    return field("unhealthy_refute_limit", "must be in 0..100");
  if (unhealthy_refute_window < duration::zero())
    return field("unhealthy_refute_window", "must be >= 0");
  if (retransmit_mult < 1 || retransmit_mult > 100)
    return field("retransmit_mult", "must be in 1..100");
  if (gossip_interval < milliseconds(1)) return field("gossip_interval", "must be >= 1ms");
  if (gossip_nodes < 1 || gossip_nodes > 64) return field("gossip_nodes", "must be in 1..64");
  if (gossip_to_the_dead_time < duration::zero())
    return field("gossip_to_the_dead_time", "must be >= 0");
  if (udp_buffer_size < 512 || udp_buffer_size > 65000)
    return field("udp_buffer_size", "must be in 512..65000");
  if (user_broadcast_share_percent < 0 || user_broadcast_share_percent > 90)
    return field("user_broadcast_share_percent", "must be in 0..90");
  if (max_queued_broadcasts < 16) return field("max_queued_broadcasts", "must be >= 16");
  if (max_queued_user_broadcasts < 1) return field("max_queued_user_broadcasts", "must be >= 1");
  if (max_user_broadcast_bytes < 1 || max_user_broadcast_bytes + 64 > udp_buffer_size)
    return field("max_user_broadcast_bytes", "must be >= 1 and fit udp_buffer_size with headers");
  if (confirm_pings_per_gossip < 1) return field("confirm_pings_per_gossip", "must be >= 1");
  if (push_pull_interval < duration::zero()) return field("push_pull_interval", "must be >= 0");
  if (digest_sync_interval < duration::zero()) return field("digest_sync_interval", "must be >= 0");
  if (seed_retry_interval < milliseconds(100))
    return field("seed_retry_interval", "must be >= 100ms");
  if (reconnect_timeout < duration::zero()) return field("reconnect_timeout", "must be >= 0");
  if (reconnect_interval < duration::zero()) return field("reconnect_interval", "must be >= 0");
  if (leave_min_transmits < 1) return field("leave_min_transmits", "must be >= 1");
  if (max_tag_bytes > 65536) return field("max_tag_bytes", "must be <= 65536");
  std::size_t tag_bytes = 0;
  for (const auto& [k, v] : tags) tag_bytes += k.size() + v.size();
  if (tag_bytes > max_tag_bytes) return field("tags", "larger than max_tag_bytes");
  if (max_tag_bytes + max_name_length + 128 > udp_buffer_size)
    return field("max_tag_bytes", "an alive message must fit udp_buffer_size");
  if (max_members < 2) return field("max_members", "must be >= 2");
  if (max_push_pull_bytes < 4096) return field("max_push_pull_bytes", "must be >= 4096");
  return std::nullopt;
}

}  // namespace shoal
