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

/// What the runtime counts (the core counts the protocol: core_stats).
struct runtime_stats {
  /// Datagrams and their bytes as they cross the socket (after the label,
  /// compression and encryption were applied), and the TCP bytes read and
  /// written by either side of the exchanges, frame headers included. A
  /// datagram received is counted even if it is then dropped.
  std::uint64_t udp_packets_in = 0, udp_packets_out = 0;
  std::uint64_t udp_bytes_in = 0, udp_bytes_out = 0;
  std::uint64_t tcp_bytes_in = 0, tcp_bytes_out = 0;
  std::uint64_t udp_send_errors = 0;
  std::uint64_t udp_send_dropped = 0;  ///< send queue full
  std::uint64_t udp_receive_errors = 0;
  std::uint64_t tcp_accepted = 0;        ///< incoming connections served
  std::uint64_t tcp_rejected = 0;        ///< closed at accept: max_tcp_sessions reached
  std::uint64_t tcp_session_errors = 0;  ///< incoming exchanges that failed or timed out
  std::uint64_t streams_ok = 0;          ///< outgoing exchanges that got a reply
  std::uint64_t streams_failed = 0;      ///< outgoing exchanges that failed or timed out
  std::uint64_t streams_rejected = 0;    ///< outgoing exchanges over max_tcp_sessions
  std::uint64_t stream_timeouts = 0;     ///< either side, included in the failures above
  std::uint64_t frames_too_large = 0;    ///< TCP frames over protocol.max_push_pull_bytes
  std::uint64_t resolve_failures = 0;    ///< seed names that did not resolve
  std::uint64_t callback_exceptions = 0;
  std::uint64_t label_mismatch = 0;      ///< packets or frames with another (or no) label
  std::uint64_t decrypt_failed = 0;      ///< no installed key opened them (or malformed)
  std::uint64_t plaintext_rejected = 0;  ///< unencrypted while keys are set, not accepted
  std::uint64_t compressed_out = 0;      ///< packets and frames sent compressed
  std::uint64_t compress_skipped = 0;    ///< tried, sent plain: compression did not shrink them
  std::uint64_t compressed_in = 0;       ///< compressed packets and frames opened
  std::uint64_t rate_limited = 0;  ///< dropped: over max_packets_per_source_per_second
  std::uint64_t decompress_failed = 0;   ///< compressed, but corrupt or inflating past the bound
  std::uint64_t udp_too_large = 0;  ///< datagrams over udp_buffer_size + 512 + envelope, dropped
  /// ICMP errors about datagrams this node sent, read from the socket's error
  /// queue (Linux, only while protocol.refusal_suspicion_timeout > 0): port
  /// unreachable reports handed to the core (core_stats::unreachable_reports),
  /// and every other entry (other ICMP types, local errors), ignored.
  std::uint64_t icmp_unreachable_in = 0;
  std::uint64_t icmp_other_in = 0;
};

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
