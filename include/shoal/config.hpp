// shoal::config: every protocol parameter, with presets lan(), wan(), local().
//
// Each field documents its unit, default (the lan() value) and effect. Times
// are std::chrono durations. N below is the number of members a node knows
// alive (itself included).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <shoal/address.hpp>
#include <shoal/member.hpp>

namespace spdlog {
class logger;
}

namespace shoal {

using duration = std::chrono::nanoseconds;

struct config {
  // ---- identity ----
  /// Unique name of this member in the cluster. Required; 1..max_name_length bytes.
  std::string name;
  /// Address other members use to reach this node (UDP and TCP, same port).
  address advertise;
  /// Initial tags: at most max_tags, and max_tag_bytes as tag_bytes() counts.
  tag_map tags;
  /// Incarnation this life starts at. A restarted node overtakes its previous
  /// life either because peers tell it its old incarnation (it then refutes
  /// with one more) or, faster, because the runtime passes a persisted or
  /// clock-derived value here. Default 0. Peers ignore any claim that moves a
  /// member's incarnation 2^32 or more past what they hold (a forgery
  /// defence, docs/security.md), so a clock-derived value must count seconds
  /// or milliseconds, not anything finer.
  std::uint64_t initial_incarnation = 0;

  /// The protocol level this node advertises and speaks, 1..protocol_version
  /// (member.hpp). Default protocol_version. Lower it only to reproduce an
  /// older release's behaviour beside newer nodes (tests of a rolling
  /// upgrade); level 1 computes the view digest without tags.
  std::uint8_t protocol = protocol_version;

  // ---- failure detection (SWIM) ----
  /// Time between two probes of the round-robin failure detector, before the
  /// Lifeguard health multiplier stretches it. lan: 1 s. Lower detects faster
  /// and costs more packets.
  duration probe_interval = std::chrono::seconds(1);
  /// How long a direct ping waits for its ack before indirect probes start,
  /// scaled by the health multiplier like probe_interval. lan: 500 ms. Should
  /// exceed the network's 99th percentile round trip. Relays nack at 80% of
  /// what is left of the prober's period after it (the indirect ping carries
  /// the deadline), so a healthy relay's nack is back before the probe
  /// closes.
  duration probe_timeout = std::chrono::milliseconds(500);
  /// k: members asked to ping a target that missed its direct ack. lan: 3.
  /// More tolerates more loss on the prober's links; 0 disables indirect probes.
  int indirect_checks = 3;
  /// Ask the runtime for a TCP ping when UDP probes fail (catches UDP-only
  /// trouble). lan: true.
  bool stream_fallback_ping = true;

  // ---- suspicion (Lifeguard dynamic suspicion) ----
  /// The minimum suspicion timeout is
  ///   min = suspicion_mult * max(1, log10(N)) * probe_interval.
  /// lan: 4. Higher gives a suspect more time to refute (fewer false deaths).
  int suspicion_mult = 4;
  /// max = suspicion_max_timeout_mult * min: the timeout a suspicion starts at
  /// when nobody else confirms it. Each independent confirmation shrinks it
  /// logarithmically towards min once suspicion_mult - 2 members agreed. lan: 6.
  int suspicion_max_timeout_mult = 6;
  /// Fast path for a process that is gone from a host that is up. When a
  /// probe this node sent is answered by ICMP port unreachable (the runtime
  /// reports it; the simulator can model it), it asks its relays (the
  /// indirect probers) at once instead of at probe_timeout. A relay whose own
  /// ping is refused too says so in its nack; a relay accuses nobody. Any ack
  /// ends the probe. A probe period that ends without an ack suspects the
  /// target and says how many distinct paths (this node's own and its
  /// relays') were refused. A suspicion whose accusation reports two or more
  /// refused paths ends after this timeout instead of the Lifeguard one: a
  /// process that nothing listens for cannot refute anyway. One refused path,
  /// however often reported (a REJECT rule on one path, or forged ICMP),
  /// leaves the ordinary suspicion in force, and reports of different probers
  /// are not added up (they may name the same relay's path). The same in
  /// every preset: wan probes less often and waits 10 s here, so it removes
  /// a stopped process in about one wan probe round plus 10 s. A cluster of
  /// two has no relay, so no fast path. 0 disables (ICMP ignored). lan: 2 s;
  /// wan: 10 s; local: 1 s.
  /// ICMP is not authenticated: an attacker who forges port-unreachable
  /// messages to a prober and its relays while they probe a target, and also
  /// stops the target's answers from reaching them, can get it declared dead
  /// this much sooner than otherwise (it is still alive and refutes once it
  /// hears). Forged ICMP alone, against a member that answers, changes
  /// nothing. On such networks, and with encryption where that matters, set
  /// 0 (shoald does so when a keyring is configured and the field is not
  /// set; docs/security.md).
  duration refusal_suspicion_timeout = std::chrono::seconds(2);

  // ---- local health (Lifeguard) ----
  /// Upper bound of the health multiplier (score 0..max-1, multiplier score+1)
  /// that stretches probe_interval and probe_timeout when this node itself
  /// misses acks, nacks or has to refute (not while the cluster keeps
  /// accusing it: see unhealthy_refute_limit). lan: 8. 1 disables local
  /// health.
  int awareness_max_multiplier = 8;
  /// A member stops refuting (is "benched") when its own probes say its
  /// network is broken and the cluster keeps accusing it. A probe is silent
  /// when nothing at all came back over UDP (no ack, direct or relayed, and
  /// no relay's nack). It benches with, of its recent probes and refutations
  /// within unhealthy_refute_window: 5 of the last 8 silent and this many
  /// refutations; 5 of the last 16 and 6 refutations; 4 of the last 16 and
  /// 8; or 2 of the last 8 and 10. While it has refuted this many times
  /// within the window it probes at the base probe_interval, however high
  /// its health score, so that this evidence keeps coming. Benched, it lets
  /// the cluster declare it dead rather than flap between suspect and
  /// alive, and it accuses nobody; its own lone suspicions wait. It refutes
  /// again once its last 16 probes all heard back. Accusations alone,
  /// however many (a forger can send them), never bench a member whose
  /// probes are answered. Measured in the simulator (N=100 and 1,000, lan):
  /// uniform 20% loss leaves about one probe in 23 silent; a member losing
  /// 80% of what it sends, about one in three. An extension of Lifeguard;
  /// 0 disables. lan: 3.
  int unhealthy_refute_limit = 3;
  /// See unhealthy_refute_limit. lan: 60 s.
  duration unhealthy_refute_window = std::chrono::seconds(60);

  // ---- dissemination ----
  /// Each update is piggybacked retransmit_mult * ceil(log10(N + 1)) times
  /// before it is dropped from the queue. lan: 4.
  int retransmit_mult = 4;
  /// Time between gossip rounds. lan: 200 ms.
  duration gossip_interval = std::chrono::milliseconds(200);
  /// Random members a gossip round sends to. lan: 3.
  int gossip_nodes = 3;
  /// Dead members stay gossip targets this long after their death, so they
  /// learn it and refute if they are in fact alive. lan: 30 s.
  duration gossip_to_the_dead_time = std::chrono::seconds(30);
  /// Largest UDP packet the core builds, in bytes. lan: 1400 (fits a 1500
  /// Ethernet MTU with IP/UDP headers and room for encryption overhead).
  std::size_t udp_buffer_size = 1400;
  /// Share of each gossip packet reserved for user broadcasts when any are
  /// queued, in percent (system updates use the rest, then any space left).
  /// lan: 25.
  int user_broadcast_share_percent = 25;
  /// Bound on queued system updates; the oldest most-sent are dropped beyond
  /// it (counted). lan: 4096.
  std::size_t max_queued_broadcasts = 4096;
  /// Bound on queued user broadcasts; send() fails with queue_full beyond it.
  /// lan: 1024.
  std::size_t max_queued_user_broadcasts = 1024;
  /// Largest user broadcast payload, bytes. lan: 512.
  std::size_t max_user_broadcast_bytes = 512;
  /// A member first learned from another node's push-pull state (hearsay,
  /// maybe stale) is pinged and shown to the user only once it answers (no
  /// ghosts). At most this many such pings are in flight at once: each
  /// gossip round sends as many as the window has room for; the window
  /// starts here, halves once per round in which pings went unanswered for
  /// 2 * probe_interval and grows by one per answer back up to this, so a
  /// join wave that overloads the network or the hosts slows itself down. On
  /// a healthy network a node joining a cluster of N sees it whole after
  /// about N / (this / gossip_interval) seconds. lan: 32.
  int confirm_pings_per_gossip = 32;

  // ---- anti-entropy (push-pull over a stream) ----
  /// Base interval of the full state exchange with one random member. For
  /// N > 32 the mean interval grows to push_pull_interval * m with
  /// m = ceil(log2(N) - log2(32)) + 1 (the timer fires every
  /// push_pull_interval and syncs with probability 1/m), so the cluster-wide
  /// stream load stays bounded. 0 disables. lan: 30 s.
  duration push_pull_interval = std::chrono::seconds(30);

  /// Anti-entropy on demand: acks carry the prober's peer's view digest.
  /// When two probes in a row come back with a digest different from ours
  /// while our own update queue is empty (gossip has nothing left to fix it),
  /// we push-pull with that peer, at most once per digest_sync_interval.
  /// Stragglers that gossip missed converge in seconds instead of waiting for
  /// the periodic push-pull. 0 disables. lan: 5 s.
  duration digest_sync_interval = std::chrono::seconds(5);

  // ---- joining, leaving, partitions ----
  /// Seeds are retried this often while no other live member is known.
  /// lan: 5 s.
  duration seed_retry_interval = std::chrono::seconds(5);
  /// Dead and left members are remembered (so a healed partition or a
  /// restart merges back) for this long, then reaped. lan: 24 h.
  duration reconnect_timeout = std::chrono::hours(24);
  /// Every reconnect_interval the node pings one random dead member and, if
  /// it answers, syncs state with it: this is how two halves that declared
  /// each other dead find each other again. lan: 30 s. 0 disables.
  duration reconnect_interval = std::chrono::seconds(30);
  /// At most this many dead/left members are remembered; the oldest are
  /// reaped first beyond it. lan: 65536, as max_members: a partition of any
  /// cluster the node can track is remembered whole, so both sides find each
  /// other again (reconnect_interval) when it heals; the bound that matters
  /// for memory is max_members. Lower it to forget departed members sooner
  /// than reconnect_timeout once there are many.
  std::size_t max_remembered_dead = 65536;
  /// A leaving node waits until its departure was sent to this many members
  /// (or all it knows), or until the leave timeout. lan: 3.
  int leave_min_transmits = 3;

  // ---- stable views (beyond the papers) ----
  /// A member the protocol brings back from dead (an alive at a newer
  /// incarnation) stays dead to the user until it answered this many pings
  /// of this node in a row, sent a gossip interval apart: it proves it is
  /// reachable, not only that one refutation got through (a member that
  /// loses most of what it sends would otherwise flap dead and alive in
  /// every view). A member that left and rejoins is not held. lan: 2; 0:
  /// back at once.
  int return_proof_pings = 2;
  /// Flap damping. Each failure (alive or suspect to dead) adds 1 to a
  /// member's flap penalty, which halves every flap_half_life. A member
  /// whose penalty reaches flap_damp_penalty when it fails is damped: when
  /// it comes back, the user keeps seeing it dead (member::damped) until it
  /// has proven reachable and stayed up without failing for flap_stable_time.
  /// A member that fails once returns at once (after the proof above); one
  /// that fails, returns and fails again within about a half-life is damped.
  /// The protocol's own view is not affected: the member is probed, gossiped
  /// and its incarnation followed as any other (wire unchanged); only what
  /// the user sees waits. lan, local: half-life 60 s, penalty 1.5, stable 30
  /// s; wan: 120 s and 60 s. flap_half_life 0 disables damping.
  duration flap_half_life = std::chrono::seconds(60);
  double flap_damp_penalty = 1.5;
  duration flap_stable_time = std::chrono::seconds(30);

  // ---- limits on what peers send ----
  /// Longest member name, bytes. lan: 128.
  std::size_t max_name_length = 128;
  /// Size of one member's tags, bytes, as tag_bytes() counts it (member.hpp):
  /// keys and values plus 16 per tag. lan: 512.
  std::size_t max_tag_bytes = 512;
  /// Most tags one member may carry. lan: 32. Tags over either bound are
  /// refused (set_tags) or make the message invalid (from peers).
  std::size_t max_tags = 32;
  /// Members a node will track; new ones beyond it are ignored (counted).
  /// lan: 65536.
  std::size_t max_members = 65536;
  /// Largest push-pull state accepted or sent, bytes. lan: 16 MiB.
  std::size_t max_push_pull_bytes = 16u << 20;

  /// Optional logger; the library never touches spdlog's default logger.
  std::shared_ptr<spdlog::logger> logger;

  /// LAN defaults (the values documented above).
  static config lan();
  /// WAN: longer timeouts, fewer packets (probe 5 s, timeout 3 s, suspicion
  /// mult 6, gossip 500 ms to 4 members, push-pull 60 s).
  static config wan();
  /// Loopback / one host: faster (probe 500 ms, timeout 200 ms, suspicion
  /// mult 3, gossip 100 ms, push-pull 15 s).
  static config local();

  /// Empty when valid, otherwise a message naming the first bad field.
  std::optional<std::string> validate() const;
};

}  // namespace shoal
