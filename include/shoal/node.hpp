// shoal::node: a cluster member on real sockets, over the sans-IO core.
//
// A node owns one shoal::core on one Asio strand: UDP for probes and gossip,
// TCP (same port) for push-pull state exchange, one timer armed at the core's
// next deadline, DNS resolution of seeds. The header holds no Asio type: the
// runtime lives behind a pointer.
//
// Threads: every public method may be called from any thread. Queries
// (members(), stats(), ...) read the core under a mutex and never wait for the
// strand; changes (set_tags(), broadcast(), ...) apply to the core at once and
// hand its output to the strand. Only join(), leave() and stop() wait for the
// network, and join() and leave() refuse to run on the node's own strand.
//
// Callbacks (subscribe(), on_user_message(), on_user_state()) run on the
// node's strand, one at a time and in the order the core produced them. They
// may call any non-blocking method of the node; an exception thrown from one
// is caught, counted and logged.
//
//   shoal::node_config nc;
//   nc.protocol = shoal::config::lan();
//   nc.protocol.name = "web-1";
//   nc.bind = *shoal::address::parse("0.0.0.0:7946");
//   nc.seeds = {"seed-1.internal:7946"};
//   shoal::node n(nc);
//   if (auto ec = n.start()) { ... }
//   auto id = n.subscribe([](const shoal::event& e) { ... });
//   ...
//   n.leave(std::chrono::seconds(5));
//   n.stop();
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <shoal/address.hpp>
#include <shoal/config.hpp>
#include <shoal/core.hpp>
#include <shoal/events.hpp>
#include <shoal/member.hpp>

namespace boost::asio {
class io_context;
}

namespace shoal {

namespace io {
class runtime;
}

/// A cluster encryption key (XChaCha20-Poly1305, 32 bytes). Generate it with
/// a CSPRNG and give every node the same one; its bytes are never logged.
using encryption_key = std::array<std::uint8_t, 32>;

/// Everything a node needs: the protocol parameters and the runtime's own.
///
/// Label, compression and encryption. The runtime wraps every UDP packet and
/// both frames of every TCP exchange; the protocol core only ever sees
/// plaintext. With no label, no key and no compression a packet is exactly
/// what older nodes send. Packets that cannot be opened are dropped and
/// counted (runtime_stats::label_mismatch, decrypt_failed, plaintext_rejected,
/// decompress_failed), with a warning at most every 10 s per reason through
/// protocol.logger.
///
/// Moving a running plain cluster to encryption without a partition, one
/// rolling restart per step (every node finishes a step before the next):
///   1. keys = {k}, accept_plaintext = true, encrypt_outgoing = false: each
///      node can read encrypted packets and still sends plaintext, which the
///      nodes not yet restarted read.
///   2. encrypt_outgoing = true (accept_plaintext still true): each node now
///      sends encrypted packets; every peer can read them (step 1) and it
///      still reads the plaintext of nodes not yet restarted.
///   3. accept_plaintext = false: plaintext is refused from now on.
/// Skipping step 1 (restarting straight into keys + accept_plaintext = true)
/// works only for packets towards nodes that already hold the key: a node
/// without it cannot read the encrypted node, so the two do not converge.
/// Leaving encryption is the same in reverse. Changing the label needs a
/// full-cluster restart (nodes with different labels never talk).
///
/// Rotating keys under traffic needs no restart (node::install_key and
/// friends): install the new key on every node, then use_key() it on every
/// node, then remove_key() the old one on every node.
struct node_config {
  /// The protocol (name, tags, timings, limits, logger). `protocol.advertise`
  /// may be left unset: an all-zero IP takes the bind IP (or, when binding the
  /// wildcard, the source address of the default route), a zero port takes the
  /// bound port.
  config protocol = config::lan();

  /// Where UDP and TCP listen (same port). Port 0 picks a free ephemeral port.
  /// "0.0.0.0" listens on every IPv4 address; "::" is dual-stack (IPv4 and
  /// IPv6). Default 0.0.0.0:7946.
  address bind = address::v4({0, 0, 0, 0}, 7946);

  /// Seeds joined by start() and retried every protocol.seed_retry_interval
  /// while this node knows no other live member: "host:port", "1.2.3.4:port"
  /// or "[v6]:port" ("host" alone uses the bound port). Host names are
  /// resolved (A and AAAA) again on every retry.
  std::vector<std::string> seeds;

  /// Incoming TCP connections served at once; more are closed at accept
  /// (counted in runtime_stats::tcp_rejected). Outgoing streams have the same
  /// bound. Default 64.
  std::size_t max_tcp_sessions = 64;

  /// Incoming UDP packets accepted per second from one source address
  /// (IP and port); beyond it they are dropped before decoding and counted in
  /// runtime_stats::rate_limited, with a rate-limited warning. A member sends
  /// a few packets per second to each peer, so the default leaves ample room
  /// for join and push-pull bursts while bounding what one flooding peer
  /// costs. At most 4096 sources are tracked per second; further sources
  /// share one slot with the same limit. 0: no limit. Default 1000.
  std::uint32_t max_packets_per_source_per_second = 1000;

  /// Deadline of one TCP exchange (connect, request, reply), either side.
  /// Default 10 s.
  duration stream_deadline = std::chrono::seconds(10);

  /// Cluster label, at most 255 bytes (start() fails with
  /// errc::invalid_argument beyond). Packets carry it and nodes drop packets
  /// with another label, or without one. Empty: no label. It is not secret
  /// (sent in clear, but authenticated when encrypting).
  std::string label;

  /// Encryption keys; the first is primary (seals everything sent), all of
  /// them open. Empty: no encryption. Duplicates are ignored.
  std::vector<encryption_key> keys;

  /// With keys: also accept unencrypted packets (migration only; see above).
  bool accept_plaintext = false;

  /// With keys: seal outgoing packets with the primary key. false sends
  /// plaintext (migration step 1 only; see above). Default true.
  bool encrypt_outgoing = true;

  /// Compress outgoing UDP packets and TCP frames (raw deflate, before
  /// encryption) when that makes them smaller; packets under 96 bytes (pings,
  /// acks) are sent as they are. Gossip carrying member updates and push-pull
  /// state shrink several times (12 alive updates: 587 to 142 bytes; the
  /// state of 256 members: 12 KB to 1.2 KB); the cost is sender CPU (on a
  /// shared 2-core VM, about 13 us for that packet, 60 to 90 us for that
  /// state). Received compressed packets are always accepted,
  /// whatever this setting, so nodes with it on and off interoperate; a
  /// compressed packet inflates to at most 64 KiB (UDP) or
  /// protocol.max_push_pull_bytes (TCP), else it is dropped and counted
  /// (runtime_stats::decompress_failed). Compression before encryption lets
  /// an observer see how compressible a packet was: turn it off if your user
  /// messages mix secrets with bytes an attacker chooses. Default true.
  bool compression = true;

  /// Seed of the core's random generator; empty: std::random_device.
  std::optional<std::uint64_t> rng_seed;

  /// A node_config whose protocol is the named preset ("lan", "wan",
  /// "local"); nullopt for any other name.
  static std::optional<node_config> preset(std::string_view name);
};

/// The counters of runtime_stats, each as X(name, help), in the manner of
/// SHOAL_CORE_COUNTERS: the struct, its visitor, shoalctl stats, /metrics and
/// docs/metrics.md come from this list. Datagrams and bytes are counted as
/// they cross the socket (after the label, compression and encryption); TCP
/// bytes include frame headers, either side of an exchange. A datagram
/// received is counted even if it is then dropped.
#define SHOAL_RUNTIME_COUNTERS(X)                                                              \
  X(udp_packets_in, "datagrams received")                                                      \
  X(udp_packets_out, "datagrams sent")                                                         \
  X(udp_bytes_in, "bytes of the datagrams received")                                           \
  X(udp_bytes_out, "bytes of the datagrams sent")                                              \
  X(tcp_bytes_in, "TCP bytes read, either side of an exchange, frame headers included")        \
  X(tcp_bytes_out, "TCP bytes written, either side of an exchange, frame headers included")    \
  X(udp_send_errors, "datagrams the socket failed to send")                                    \
  X(udp_send_dropped, "datagrams dropped because the send queue was full")                     \
  X(udp_receive_errors, "receive errors on the UDP socket")                                    \
  X(tcp_accepted, "incoming TCP connections served")                                           \
  X(tcp_rejected, "incoming TCP connections closed at accept: max_tcp_sessions reached")       \
  X(tcp_session_errors, "incoming exchanges that failed or timed out")                         \
  X(streams_ok, "outgoing exchanges that got a reply")                                         \
  X(streams_failed, "outgoing exchanges that failed or timed out")                             \
  X(streams_rejected, "outgoing exchanges refused: over max_tcp_sessions")                     \
  X(stream_timeouts, "exchanges that timed out, either side (included in the failures)")       \
  X(frames_too_large, "TCP frames over protocol.max_push_pull_bytes")                          \
  X(resolve_failures, "seed names that did not resolve")                                       \
  X(callback_exceptions, "exceptions thrown by user callbacks (caught and logged)")            \
  X(label_mismatch, "packets or frames with another (or no) cluster label")                    \
  X(decrypt_failed, "packets or frames no installed key opened (or malformed)")                \
  X(plaintext_rejected, "unencrypted packets or frames refused while keys are set")            \
  X(compressed_out, "packets and frames sent compressed")                                      \
  X(compress_skipped, "packets and frames sent plain because compression did not shrink them") \
  X(compressed_in, "compressed packets and frames opened")                                     \
  X(decompress_failed,                                                                         \
    "compressed packets or frames that were corrupt or inflated past the bound")               \
  X(rate_limited, "datagrams dropped: over max_packets_per_source_per_second")                 \
  X(udp_too_large, "datagrams dropped: over udp_buffer_size + 512 + the envelope")             \
  X(icmp_unreachable_in,                                                                       \
    "ICMP port unreachable reports read from the error queue and handed to the core")          \
  X(icmp_other_in, "other entries of the socket's error queue (ignored)")

/// What the runtime counts (the core counts the protocol: core_stats). The
/// ICMP counters only move on Linux while protocol.refusal_suspicion_timeout
/// is above 0.
struct runtime_stats {
#define SHOAL_FIELD_(name, help) std::uint64_t name = 0;
  SHOAL_RUNTIME_COUNTERS(SHOAL_FIELD_)
#undef SHOAL_FIELD_
};

/// Calls f(name, help, value) for every counter of SHOAL_RUNTIME_COUNTERS.
template <class F>
void visit_counters(const runtime_stats& s, F&& f) {
#define SHOAL_VISIT_(name, help) f(#name, help, s.name);
  SHOAL_RUNTIME_COUNTERS(SHOAL_VISIT_)
#undef SHOAL_VISIT_
}

struct node_stats {
  core_stats core;
  runtime_stats runtime;
  std::size_t tcp_sessions = 0;  ///< incoming exchanges in progress (gauge)
  std::size_t streams = 0;       ///< outgoing exchanges in progress (gauge)
};

/// The outcome of join().
struct join_result {
  std::size_t resolved = 0;   ///< distinct addresses the seeds resolved to
  std::size_t contacted = 0;  ///< of which answered the join exchange
  /// Empty when at least one seed answered (or no seed was given); otherwise
  /// the last resolve or connection error, or errc::not_running.
  std::error_code error;
};

class node {
 public:
  using subscription = std::uint64_t;
  using event_handler = std::function<void(const event&)>;
  using user_message_handler = std::function<void(const user_message&)>;
  using user_state_handler = std::function<void(const bytes&)>;

  /// A node that runs its own I/O thread (started by start(), joined by
  /// stop() and the destructor). Throws std::invalid_argument when
  /// `cfg.protocol.validate()` (with a stand-in advertise port) fails.
  explicit node(node_config cfg);
  /// A node on the caller's io_context, which the caller runs (any number of
  /// threads). The io_context must outlive the node. Blocking calls (join,
  /// leave, stop) must not be made from a thread that is the only one running
  /// that io_context.
  node(node_config cfg, boost::asio::io_context& ctx);
  /// stop(): closes everything without a leave.
  ~node();
  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// Binds UDP and TCP, starts the protocol as a cluster of one, and starts
  /// joining node_config::seeds in the background. Errors: the bind error,
  /// errc::invalid_argument (no address to advertise, bad config),
  /// errc::not_running (already started or stopped).
  std::error_code start();

  /// Joins through `seeds` (same syntax as node_config::seeds), which are
  /// also retried like configured seeds. Waits until every exchange answered
  /// or failed, at most 2 * stream_deadline (then std::errc::timed_out).
  /// Not from the node's own strand (std::errc::resource_deadlock_would_occur).
  join_result join(const std::vector<std::string>& seeds);

  /// Announces a graceful departure and waits until it was sent to enough
  /// members or `timeout` passed (std::errc::timed_out). The node then stops
  /// taking part; call stop() next. Not from the node's own strand
  /// (std::errc::resource_deadlock_would_occur).
  std::error_code leave(duration timeout);

  /// Closes sockets, cancels timers, fails pending join() and leave() calls
  /// and joins the node's own thread. Peers will declare this node failed.
  /// Idempotent. On a caller's io_context that nobody runs any more, it waits
  /// at most stream_deadline + 2 s for the close to run.
  void stop();

  /// True between a successful start() and stop().
  bool running() const;

  /// The port UDP and TCP are bound to (0 before start()).
  std::uint16_t port() const;

  /// Snapshots of the view (self included), sorted by name.
  std::vector<member> members() const;
  /// How many members of the view (self included) are in state `s`: what
  /// members() would hold in that state, without copying the view.
  std::size_t count(member_state s) const;
  member local_member() const;
  std::optional<member> find(const std::string& name) const;

  /// Replaces this node's tags and spreads them (errc::invalid_argument over
  /// protocol.max_tag_bytes; errc::not_running after leave() or stop()).
  /// Before start(): the tags it starts with.
  std::error_code set_tags(tag_map tags);

  /// Queues a user broadcast, piggybacked on gossip (errc::invalid_argument
  /// over protocol.max_user_broadcast_bytes, errc::queue_full).
  std::error_code broadcast(bytes payload);
  /// Sends one user message straight to the member `name` over UDP: one
  /// packet, labelled and sealed like all traffic, delivered to that node's
  /// on_user_message() handler with `from` set to the packet's source
  /// address (this node's bound address; its route's when bound to a
  /// wildcard). Not
  /// retransmitted: like any datagram it may be lost. Errors (nothing is
  /// sent): errc::invalid_argument (empty or over
  /// protocol.max_user_broadcast_bytes), errc::unknown_member (not in the
  /// view), errc::member_down (dead or left), errc::not_running (before
  /// start(), after leave() or stop()).
  std::error_code send_to(const std::string& name, bytes payload);

  /// Serf's force-leave: a member this node sees as failed is marked left,
  /// and the departure spreads by gossip so every node marks it left; it is
  /// then no longer pinged for reconnection and is reaped after
  /// protocol.reconnect_timeout like any left member. A member that is in
  /// fact alive, or restarts, refutes with a higher incarnation and is alive
  /// again everywhere. Errors (nothing changes): errc::unknown_member (not
  /// in the view), errc::member_not_failed (alive, suspect, already left, or
  /// this node), errc::not_running (before start(), after leave() or stop()).
  std::error_code force_leave(const std::string& name);

  /// Forgets a failed or left member at once, as if protocol.reconnect_timeout
  /// had passed (a member_reaped event); with force_leave() first, Serf's
  /// `force-leave -prune`. Local to this node: shoald gossips a prune to the
  /// other daemons. A member that returns is learned again. Errors (nothing
  /// changes): errc::unknown_member, errc::member_not_failed (alive or
  /// suspect; this node itself), errc::not_running.
  std::error_code prune(const std::string& name);

  /// Opaque state sent with every push-pull exchange (may be set before
  /// start(), so that the first join carries it).
  void set_user_state(bytes state);

  /// Registers a callback for membership events; returns its id. A callback
  /// being run while unsubscribe() is called may still finish that call.
  subscription subscribe(event_handler handler);
  void unsubscribe(subscription id);
  /// Replaces the callback for user broadcasts (empty: none).
  void on_user_message(user_message_handler handler);
  /// Replaces the callback for peers' user state from push-pull (empty: none).
  void on_user_state(user_state_handler handler);

  /// Lifeguard local health, 0 (healthy) .. awareness_max_multiplier - 1.
  int health_score() const;
  /// Digest of the view; equal on two nodes means equal views.
  std::uint64_t digest() const;
  node_stats stats() const;

  /// The keyring, changed at runtime from any thread (before start() too);
  /// the next packet sent or received uses it. See node_config for rotation.
  /// install_key: adds a key that opens packets (the first key installed on a
  /// node without keys becomes primary and turns encryption on).
  std::error_code install_key(const encryption_key& key);
  /// Makes an installed key primary (errc::invalid_argument: not installed).
  std::error_code use_key(const encryption_key& key);
  /// Removes a key (errc::invalid_argument: the primary, or not installed).
  std::error_code remove_key(const encryption_key& key);
  /// The installed keys, primary first.
  std::vector<encryption_key> list_keys() const;

 private:
  std::shared_ptr<io::runtime> rt_;
};

}  // namespace shoal
