// shoal::core: SWIM + Lifeguard as a pure state machine.
//
// The core owns no socket, reads no clock and starts no thread. The caller
// passes the current time and one input (bytes from an address, a timer tick,
// join, leave, ...) and drains the outbox it filled: UDP packets to send,
// stream exchanges to start, membership events, user messages. It then calls
// tick() no later than next_deadline(). Same inputs, same outputs.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include <shoal/address.hpp>
#include <shoal/config.hpp>
#include <shoal/errc.hpp>
#include <shoal/events.hpp>
#include <shoal/member.hpp>
#include <shoal/message_type.hpp>

namespace shoal {

/// The core's notion of time: any monotonic clock's time point. The core only
/// compares and adds durations; the runtime passes steady_clock::now(), the
/// simulator its virtual time.
using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;

using bytes = std::vector<std::uint8_t>;

struct outgoing_packet {
  address to;
  bytes data;  ///< at most config::udp_buffer_size bytes
};

/// What a stream exchange is for. The runtime treats all kinds alike: connect,
/// send `data`, read one reply, hand it to handle_stream_reply().
enum class stream_kind : std::uint8_t {
  push_pull,  ///< anti-entropy: full state both ways
  join,       ///< push-pull with a seed while joining
  ping,       ///< TCP fallback ping when UDP probes fail
};

struct stream_request {
  std::uint64_t id;  ///< pass back to handle_stream_reply / stream_failed
  address to;
  stream_kind kind;
  bytes data;
};

struct user_message {
  address from;
  bytes data;
};

/// Everything the core wants done. Append-only; the caller drains and clears.
struct outbox {
  std::vector<outgoing_packet> packets;
  std::vector<stream_request> streams;
  std::vector<event> events;
  std::vector<user_message> user_messages;  ///< user broadcasts received
  std::vector<bytes> user_states;           ///< peers' user state from push-pull

  void clear() {
    packets.clear();
    streams.clear();
    events.clear();
    user_messages.clear();
    user_states.clear();
  }
  bool empty() const {
    return packets.empty() && streams.empty() && events.empty() && user_messages.empty() &&
           user_states.empty();
  }
};

/// The counters of core_stats, each as X(name, help): the struct's fields,
/// its visitor visit_counters(), shoalctl stats, shoald's /metrics and
/// docs/metrics.md all come from this one list. Every counter only grows.
/// "Packets" and "bytes" are as the core built or received them, before the
/// runtime's label, compression and encryption.
#define SHOAL_CORE_COUNTERS(X)                                                                    \
  X(packets_in, "UDP packets handed to the core (valid or not)")                                  \
  X(packets_out, "UDP packets the core built")                                                    \
  X(bytes_in, "bytes of the UDP packets handed to the core")                                      \
  X(bytes_out, "bytes of the UDP packets the core built")                                         \
  X(messages_in, "messages in UDP packets that decoded")                                          \
  X(messages_out, "messages the core put in UDP packets")                                         \
  X(probes, "direct probes started (one per protocol period)")                                    \
  X(indirect_probes, "indirect ping requests sent to relays")                                     \
  X(probe_failures, "probes that ended without any ack")                                          \
  X(probes_silent,                                                                                \
    "probes that heard nothing over UDP: no ack, direct or relayed, and no relay's nack")         \
  X(acks_in, "acks received")                                                                     \
  X(nacks_in, "nacks received from relays")                                                       \
  X(suspicions, "members this node started suspecting (its own accusations and others')")         \
  X(refutations, "accusations about this node it refuted by raising its incarnation")             \
  X(deaths, "members this node saw go from alive or suspect to dead")                             \
  X(refutations_withheld, "accusations left standing while this node was benched")                \
  X(unreachable_reports, "datagrams the network refused (ICMP port unreachable), matched or not") \
  X(refusals, "refusals that matched our probe of a live member or a ping we relayed")            \
  X(refusal_deaths, "members declared dead once enough members had seen their port refused")      \
  X(self_benched, "times this node judged its own network broken and stopped refuting")           \
  X(stale_answers,                                                                                \
    "alives sent straight back to a peer that accused this node below its incarnation")           \
  X(streams_started, "stream exchanges asked of the runtime (push-pull, join, TCP ping)")         \
  X(streams_failed, "stream exchanges that failed (connect, write, read or deadline)")            \
  X(push_pulls, "push-pull exchanges served for peers")                                           \
  X(reconnects, "dead members that answered a ping and were synced with")                         \
  X(broadcasts_dropped, "membership updates dropped from a full queue")                           \
  X(user_broadcasts_dropped,                                                                      \
    "user broadcasts not queued because their queue was full (ours refused, others' not passed "  \
    "on)")                                                                                        \
  X(broadcasts_delivered, "user broadcasts of other members delivered here (each once)")          \
  X(members_rejected, "members ignored: over max_members or with invalid fields")                 \
  X(digest_mismatches, "acks carrying a view digest different from ours")                         \
  X(digest_syncs, "push-pulls started because digests differed")                                  \
  X(claims_out_of_reach,                                                                          \
    "claims ignored for raising an incarnation too far at once: forged (docs/security.md)")       \
  X(invalid_truncated, "packets dropped: shorter than their content says")                        \
  X(invalid_magic, "packets dropped: not a shoal packet (bad magic byte)")                        \
  X(invalid_version, "packets dropped: unsupported wire version")                                 \
  X(invalid_flags, "packets dropped: unsupported header flags")                                   \
  X(invalid_malformed, "packets or stream bodies dropped: not valid msgpack of our messages")     \
  X(invalid_too_large, "packets dropped: over the size bound")                                    \
  X(invalid_unknown_type, "messages skipped: a type number this build does not know")             \
  X(invalid_field, "packets dropped: a field over its bound (name, tags, payload)")

/// Counters; see SHOAL_CORE_COUNTERS for what each counts.
struct core_stats {
#define SHOAL_FIELD_(name, help) std::uint64_t name = 0;
  SHOAL_CORE_COUNTERS(SHOAL_FIELD_)
#undef SHOAL_FIELD_
  /// Messages by type, indexed by static_cast<std::size_t>(message_type),
  /// over UDP and streams alike. In: every message of a packet or stream
  /// body that decoded ([0] counts unknown types, skipped). Out: every
  /// message this node put in a packet or stream body.
  std::array<std::uint64_t, message_type_count> messages_in_by_type{};
  std::array<std::uint64_t, message_type_count> messages_out_by_type{};

  /// Packets and stream bodies dropped by the decoder, all reasons.
  std::uint64_t invalid_total() const {
    return invalid_truncated + invalid_magic + invalid_version + invalid_flags + invalid_malformed +
           invalid_too_large + invalid_unknown_type + invalid_field;
  }
};

/// Calls f(name, help, value) for every counter of SHOAL_CORE_COUNTERS, in
/// its order (not the per-type arrays).
template <class F>
void visit_counters(const core_stats& s, F&& f) {
#define SHOAL_VISIT_(name, help) f(#name, help, s.name);
  SHOAL_CORE_COUNTERS(SHOAL_VISIT_)
#undef SHOAL_VISIT_
}

namespace detail {
class core_impl;
}

class core {
 public:
  /// Throws std::invalid_argument when cfg.validate() fails.
  core(config cfg, std::uint64_t seed);
  ~core();
  core(core&&) noexcept;
  core& operator=(core&&) noexcept;
  core(const core&) = delete;
  core& operator=(const core&) = delete;

  /// Starts the protocol: a push-pull join with each seed. With no seed (or
  /// none reachable) the node runs as a cluster of one and retries its seeds
  /// every seed_retry_interval while it knows no other live member.
  void join(time_point now, std::span<const address> seeds, outbox& out);

  /// Adds members the caller vouches for, as if each had been heard from
  /// first-hand: a snapshot of another node's members(), or a test fixture
  /// that starts a cluster already converged. Claims still go through the
  /// precedence rules; nothing is re-gossiped and no event is emitted (the
  /// caller already knows this view). Call after join().
  void adopt_view(time_point now, std::span<const member> view);

  /// A UDP datagram arrived. Bad bytes are counted and ignored.
  void handle_packet(time_point now, const address& from, std::span<const std::uint8_t> data,
                     outbox& out);

  /// A peer opened a stream and sent `data`; returns the reply to write back
  /// (empty: close without reply).
  bytes handle_stream(time_point now, const address& from, std::span<const std::uint8_t> data,
                      outbox& out);

  /// The reply to our stream request `id` arrived.
  void handle_stream_reply(time_point now, std::uint64_t id, std::span<const std::uint8_t> data,
                           outbox& out);

  /// Our stream request `id` failed (connect, write, read or deadline).
  void stream_failed(time_point now, std::uint64_t id, outbox& out);

  /// A datagram this node sent to `to` was refused: the host answered that
  /// nothing listens on that port (ICMP port unreachable, or the simulator's
  /// model of it). If it was our probe, the indirect probes start at once and
  /// a period that ends without an ack suspects the target with the refusal
  /// noted; if it was a ping we relay for a prober whose own ping failed, we
  /// accuse the target at once (refused) and nack (config::
  /// refusal_suspicion_timeout; ignored when that is 0). Unmatched reports
  /// are only counted.
  void handle_unreachable(time_point now, const address& to, outbox& out);

  /// Runs every timer due at `now`.
  void tick(time_point now, outbox& out);

  /// When tick() must be called next.
  time_point next_deadline() const;

  /// Announces a graceful departure. leave_done() becomes true when it was
  /// sent to leave_min_transmits members or `timeout` passed.
  void leave(time_point now, duration timeout, outbox& out);
  bool leave_done(time_point now) const;

  /// Replaces this node's tags and spreads them (the incarnation goes up).
  std::error_code set_tags(time_point now, tag_map tags, outbox& out);

  /// Broadcasts a user payload to every member (epidemic): it is
  /// piggybacked like membership updates; every member that receives it
  /// delivers it once (outbox::user_messages, `from` the origin's address)
  /// and passes it on with the same retransmit rule, so it reaches every live
  /// member, also those that never hear from this node directly. Members
  /// that predate it skip it (a new message type). A reserved share of each
  /// packet, never less than one broadcast of max_user_broadcast_bytes,
  /// keeps membership churn from starving it. Errors: errc::invalid_argument
  /// (empty or over max_user_broadcast_bytes), errc::queue_full.
  std::error_code broadcast(bytes payload);

  /// Sends one user message straight to the member `name` (this node
  /// included): a single packet in `out`, the payload first, then any queued
  /// updates that fit. Unlike broadcast() it is not retransmitted; UDP may
  /// lose it. The receiver gets it in outbox::user_messages with `from` set
  /// to the packet's source address. Errors (nothing is sent):
  /// errc::invalid_argument (empty or over max_user_broadcast_bytes),
  /// errc::unknown_member (not in the view), errc::member_down (dead or
  /// left), errc::not_running (leaving, or join() never called).
  std::error_code send_to(const std::string& name, bytes payload, outbox& out);

  /// Serf's force-leave: a member this node sees as failed (dead) is marked
  /// left here and the departure is gossiped at the member's incarnation, so
  /// every node that has it failed (or still alive at that incarnation)
  /// records it left. A left member is no longer pinged for reconnection and
  /// is reaped reconnect_timeout later, like one that left by itself. If the
  /// member is in fact alive (or restarts) it hears the claim, refutes it
  /// with a higher incarnation and is alive everywhere again.
  /// Errors (nothing changes): errc::unknown_member (not in the view),
  /// errc::member_not_failed (alive, suspect or already left; this node
  /// itself too), errc::not_running (leaving, or join() never called).
  std::error_code force_leave(time_point now, const std::string& name, outbox& out);

  /// Forgets a failed or left member now, as if reconnect_timeout had
  /// passed (a member_reaped event); Serf's `force-leave -prune`. Local only:
  /// other nodes keep it until they prune or reap it. A member that comes
  /// back (an alive claim) is learned again like any new member.
  /// Errors (nothing changes): errc::unknown_member (not in the view),
  /// errc::member_not_failed (alive or suspect; this node itself too),
  /// errc::not_running (leaving, or join() never called).
  std::error_code prune(time_point now, const std::string& name, outbox& out);

  /// Opaque user state sent with every push-pull; peers receive it in
  /// outbox::user_states.
  void set_user_state(bytes state);

  /// The view: every member the user may see (confirmed), self included.
  std::vector<member> members() const;
  std::optional<member> find(const std::string& name) const;
  member local_member() const;
  /// Members known in each state (confirmed ones only).
  std::size_t count(member_state s) const;

  /// Order-independent digest of the members this node holds alive or
  /// suspect (itself included; dead and left ones are not in it): each one's
  /// name, state and incarnation, and from protocol level 2 (member.hpp)
  /// also its tags and protocol; at this node's own level (config::protocol).
  /// Different digests: different views. Equal digests: the same view,
  /// barring a 64-bit hash collision; the dead and left may still differ.
  std::uint64_t digest() const;

  /// Lifeguard local health score, 0 (healthy) .. awareness_max_multiplier - 1.
  int health_score() const;

  const core_stats& stats() const;
  const config& cfg() const;

  /// Bytes of heap the member table, its suspicions and the timer heap use
  /// (for the per-member memory figure).
  std::size_t memory_estimate() const;

 private:
  std::unique_ptr<detail::core_impl> impl_;
};

}  // namespace shoal
