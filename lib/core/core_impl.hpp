// The core's internals: one class (core_impl), one file per concept.
//
//   core.cpp             the facade; inputs decoded and dispatched; the timer
//                        heap (tick, stale timers dropped, not cancelled)
//   members.cpp          the member table and its state machine: every claim
//                        goes through judge() (rules.hpp), then set_state()
//   probe.cpp            failure detection: probes, indirect probes, nacks,
//                        refusals, acks and relayed pings
//   gossip.cpp           dissemination, anti-entropy, join, leave, healing
//   dialect.cpp          the decisions wire dialects differ in (wire::rules)
//   broadcast_queue.*    the transmit-limited dissemination queue
//   suspicion.hpp        one Lifeguard suspicion (accusers, refusals, deadline)
//   awareness.hpp        Lifeguard local health
//   formulas.hpp         the scaling formulas, pure functions
//   rules.hpp            SWIM's precedence rules (judge) and the reach bound
//   rate_limit.hpp       rate-limited warnings (shared with the runtime)
//   rng.hpp              the seeded generator (public <shoal/random.hpp>)
//
// The core reaches the wire only through wire::format (lib/wire/format.hpp).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <queue>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <shoal/core.hpp>
#include "core/awareness.hpp"
#include "core/broadcast_queue.hpp"
#include "core/rate_limit.hpp"
#include "core/rng.hpp"
#include "core/rules.hpp"
#include "core/suspicion.hpp"
#include "wire/format.hpp"

namespace shoal::detail {

/// Reaping the departed: how often, while there are any.
inline constexpr duration maintenance_interval = std::chrono::seconds(1);

/// A member's tags in one heap block (null when there are none): length-
/// prefixed keys and values. A std::map costs ~110 bytes per tag; this costs
/// the bytes themselves plus 8 per tag.
class packed_tags {
 public:
  packed_tags() = default;
  explicit packed_tags(const tag_map& t) { assign(t); }

  void assign(const tag_map& t) {
    if (t.empty()) {
      data_.reset();
      return;
    }
    std::uint32_t size = 4;
    for (const auto& [k, v] : t) size += 8 + static_cast<std::uint32_t>(k.size() + v.size());
    data_ = std::make_unique<char[]>(size);
    std::memcpy(data_.get(), &size, 4);
    char* p = data_.get() + 4;
    for (const auto& [k, v] : t) {
      p = put(p, k);
      p = put(p, v);
    }
  }
  tag_map unpack() const {
    tag_map t;
    if (!data_) return t;
    const char* p = data_.get() + 4;
    const char* end = data_.get() + size();
    while (p < end) {
      std::string k = get(p);
      t.emplace(std::move(k), get(p));
    }
    return t;
  }
  bool equals(const tag_map& t) const {
    if (!data_) return t.empty();
    const char* p = data_.get() + 4;
    const char* end = data_.get() + size();
    for (const auto& [k, v] : t) {
      if (p >= end || !same(p, k) || !same(p, v)) return false;
    }
    return p == end;
  }
  std::size_t heap_bytes() const noexcept { return data_ ? size() : 0; }
  /// Stable hash of the tags (the same on every machine: lengths are fed
  /// little-endian whatever the host's order), for the view digest.
  std::uint64_t hash() const noexcept {
    std::uint64_t h = fnv1a_offset;
    if (!data_) return mix64(h);
    const char* p = data_.get() + 4;
    const char* end = data_.get() + size();
    while (p < end) {
      std::uint32_t n;
      std::memcpy(&n, p, 4);
      for (int i = 0; i < 4; ++i) h = fnv1a(h, static_cast<std::uint8_t>(n >> (8 * i)));
      h = fnv1a(p + 4, n, h);
      p += 4 + n;
    }
    return mix64(h);
  }

 private:
  std::uint32_t size() const noexcept {
    std::uint32_t n;
    std::memcpy(&n, data_.get(), 4);
    return n;
  }
  static char* put(char* p, const std::string& s) {
    const auto n = static_cast<std::uint32_t>(s.size());
    std::memcpy(p, &n, 4);
    std::memcpy(p + 4, s.data(), n);
    return p + 4 + n;
  }
  static std::string get(const char*& p) {
    std::uint32_t n;
    std::memcpy(&n, p, 4);
    std::string s(p + 4, n);
    p += 4 + n;
    return s;
  }
  static bool same(const char*& p, const std::string& s) {
    std::uint32_t n;
    std::memcpy(&n, p, 4);
    const bool eq = n == s.size() && std::memcmp(p + 4, s.data(), n) == 0;
    p += 4 + n;
    return eq;
  }
  std::unique_ptr<char[]> data_;
};

struct member_entry {
  const std::string* name = nullptr;  // the map key
  address addr;
  std::uint64_t incarnation = 0;
  time_point since{};  // when the state last changed
  member_state state = member_state::alive;
  std::uint8_t protocol = protocol_version;
  bool confirmed = false;  // seen first-hand; only confirmed members reach the user
  bool in_gone = false;    // listed in core_impl::gone_
  // Back from dead in the protocol, still dead to the user (members.cpp,
  // "returns"): until it answered return_proof_pings pings in a row and, if
  // damped, stayed up flap_stable_time.
  bool held = false;
  bool damped = false;     // held because its flap penalty is high
  std::uint8_t proof = 0;  // pings answered in a row while held
  float penalty = 0;       // flap penalty as of penalty_at
  time_point penalty_at{};
  std::uint32_t probe_index = no_index;
  packed_tags tags;
  std::unique_ptr<suspicion> susp;

  static constexpr std::uint32_t no_index = 0xffffffffu;
  bool up() const noexcept {
    return state == member_state::alive || state == member_state::suspect;
  }
  /// The state the user sees: a held member is still dead.
  member_state shown() const noexcept { return held ? member_state::dead : state; }
};

enum class timer_kind : std::uint8_t {
  probe,          // finish the current probe, start the next
  probe_timeout,  // direct ack missing: start the indirect probes (token = probe seq)
  gossip,
  push_pull,
  suspicion,      // name's suspicion runs out (token = suspicion token)
  relay_timeout,  // a relayed ping went unanswered: nack (token = our seq of it)
  reconnect,
  seed_retry,
  maintenance,  // reaping, purging stale bookkeeping
};

/// A timer carries what makes it stale (foca's way): a probe that was acked,
/// a relay that was answered, a suspicion refuted or restarted no longer
/// matches its token, and the timer is dropped (core_impl::stale) instead of
/// cancelled.
struct timer {
  time_point at;
  std::uint64_t order;
  timer_kind kind;
  std::uint64_t token = 0;
  std::string name;  // the suspect, for suspicion timers
};

struct timer_later {
  bool operator()(const timer& x, const timer& y) const noexcept {
    if (x.at != y.at) return x.at > y.at;
    return x.order > y.order;
  }
};

/// Where an alive claim came from. Alive messages are only ever created by
/// the member itself, so one relayed by gossip is still the member's own word
/// (own_word). A push-pull entry is another node's opinion (hearsay): it may be
/// stale, so a member first learned that way is probed before the user sees
/// it (no ghosts).
enum class hand : std::uint8_t { own_word, hearsay };

class core_impl {
 public:
  core_impl(config cfg, std::uint64_t seed);

  // ---- inputs (core.cpp) ----
  void join(time_point now, std::span<const address> seeds, outbox& out);
  void adopt_view(time_point now, std::span<const member> view);
  void handle_packet(time_point now, const address& from, std::span<const std::uint8_t> data,
                     outbox& out);
  bytes handle_stream(time_point now, const address& from, std::span<const std::uint8_t> data,
                      outbox& out);
  void handle_stream_reply(time_point now, std::uint64_t id, std::span<const std::uint8_t> data,
                           outbox& out);
  void stream_failed(time_point now, std::uint64_t id, outbox& out);
  void on_unreachable(time_point now, const address& to, outbox& out);
  void tick(time_point now, outbox& out);
  time_point next_deadline() const;
  /// Every input with a time calls this first: the latest time the core saw,
  /// for inputs that have none (broadcast) and for re-arming idle timers.
  void saw(time_point now) noexcept {
    if (now > last_now_) last_now_ = now;
  }
  /// After every input: arms the timers that only run while they have work.
  void settle();
  void leave(time_point now, duration timeout, outbox& out);
  bool leave_done(time_point now) const;
  std::error_code set_tags(time_point now, tag_map tags, outbox& out);
  std::error_code broadcast(bytes payload);
  /// A user broadcast arrived: delivered once, then passed on.
  void on_broadcast(const address& from, const wire::broadcast& m, outbox& out);
  /// False when `id` was seen already (among the last
  /// max_remembered_broadcasts).
  bool remember_broadcast(std::uint64_t id);
  std::error_code send_to(const std::string& name, bytes payload, outbox& out);
  std::error_code force_leave(time_point now, const std::string& name, outbox& out);
  std::error_code prune(const std::string& name, outbox& out);
  void set_user_state(bytes state) { user_state_ = std::move(state); }

  // ---- queries ----
  std::vector<member> members() const;
  std::optional<member> find(const std::string& name) const;
  member local_member() const { return snapshot(*self_); }
  std::size_t count(member_state s) const;
  /// The digest at this node's own protocol level.
  std::uint64_t digest() const noexcept { return digest_at(cfg_.protocol); }
  int health_score() const noexcept { return awareness_.score(); }
  const core_stats& stats() const noexcept { return stats_; }
  const config& cfg() const noexcept { return cfg_; }
  std::size_t memory_estimate() const;

 private:
  // ---- members.cpp: the state machine ----
  member_entry* lookup(const std::string& name);
  const member_entry* lookup(const std::string& name) const;
  member snapshot(const member_entry& e) const;
  std::size_t live_count() const noexcept { return live_count_; }
  verdict judge_claim(const member_entry* e, claim c, std::uint64_t inc);
  void on_alive(time_point now, const wire::alive& m, hand h, outbox& out);
  void on_suspect(time_point now, const wire::suspect& m, outbox& out);
  void on_dead(time_point now, const wire::dead& m, outbox& out);
  void on_left(time_point now, const wire::left& m, outbox& out);
  void refute(time_point now, std::uint64_t claimed, outbox& out);
  void on_accused(time_point now, std::uint64_t claimed, outbox& out);
  /// An accusation about us below our incarnation: our alive, straight back.
  void answer_stale(time_point now, outbox& out);

  // ---- dialect.cpp: the decisions wire dialects make differently ----
  /// May a claim raise an incarnation held at `held` to `claimed`?
  bool reachable_claim(std::uint64_t held, std::uint64_t claimed) const noexcept;
  /// The incarnation this node refutes a claim at `claimed` with.
  std::uint64_t refutation_incarnation(std::uint64_t claimed) const noexcept;
  /// May an alive claim move member `e` to address `claimed`?
  bool may_move(const member_entry& e, const address& claimed) const noexcept;
  /// Must this node refute an alive about itself?
  bool must_refute(const wire::alive& m) const noexcept;
  /// The message that announces this node's graceful departure.
  wire::message leave_message() const;
  /// The view digest an ack carries, if the format has one.
  std::optional<std::uint64_t> ack_digest(const wire::ack& m) const noexcept;
  /// One of our probes ended; `failed`: without an ack, and most relays'
  /// nacks missing too (our network, not the target). Re-judges the bench.
  void record_own_probe(time_point now, bool failed);
  /// Benched (not refuting, accusing nobody) while our own probes say our
  /// network is broken and the cluster keeps accusing us; see config.hpp.
  void update_bench(time_point now);
  /// At least n refutations within unhealthy_refute_window before now.
  bool refuted_recently(std::size_t n, time_point now) const;
  /// d stretched by our health score (Lifeguard), except while the cluster
  /// keeps accusing us: then at most accused_probe_halves / 2 times, so
  /// that our own probes (the only evidence that may bench us) keep coming.
  duration probe_scaled(duration d, time_point now) const;
  void confirm(member_entry& e, outbox& out);
  // Returns from dead (members.cpp): held until proven, damped when flapping.
  void count_shown(const member_entry& e, int delta) noexcept;
  double penalty_now(const member_entry& e, time_point now) const noexcept;
  void hold(time_point now, member_entry& e);
  void release(member_entry& e, outbox& out);
  /// A held member answered one of our pings (or a proof ping went
  /// unanswered: answered false).
  void proof_ping_done(time_point now, member_entry& e, bool answered, outbox& out);
  /// Releases held members whose proof is in and whose stable time passed.
  void release_stable(time_point now, outbox& out);
  void set_state(member_entry& e, member_state s, std::uint64_t inc, time_point now);
  void emit(event_type t, const member_entry& e, outbox& out);
  void mark_down(time_point now, member_entry& e, member_state s, std::uint64_t inc, outbox& out);
  void start_suspicion(time_point now, member_entry& e, std::uint64_t inc, const std::string& from,
                       std::uint32_t refused_paths);
  /// The refused paths a suspect message reports (1 for an older sender's
  /// bare refused flag).
  static std::uint32_t refused_paths(const wire::suspect& m) noexcept {
    return m.refused ? std::max<std::uint32_t>(m.refused_paths, 1) : 0;
  }
  bool valid_tags(const tag_map& tags) const;
  wire::alive alive_msg(const member_entry& e) const;
  void reap(time_point now, outbox& out);
  /// A member's share of the digest at protocol level 1 or 2 (member.hpp).
  std::uint64_t entry_hash(const member_entry& e, int level) const noexcept;
  std::uint64_t digest_at(int level) const noexcept { return level >= 2 ? digest_ : digest_v1_; }
  /// Level 2 between members that both speak it, else 1.
  int digest_level(std::uint8_t their_protocol) const noexcept {
    return std::min<int>(cfg_.protocol, their_protocol) >= 2 ? 2 : 1;
  }
  void digest_add(const member_entry& e) noexcept;
  void digest_remove(const member_entry& e) noexcept;
  /// Replaces a member's tags and protocol, keeping the digests in step.
  void set_metadata(member_entry& e, const tag_map& tags, std::uint8_t protocol);

  // probe order: alive and suspect members other than self, shuffled rounds
  void probe_list_add(member_entry& e);
  void probe_list_remove(member_entry& e);

  // ---- probe.cpp: failure detection ----
  void on_probe_timer(time_point now, outbox& out);
  void finish_probe(time_point now, outbox& out);
  /// The direct ack is late (or the ping was refused): ask k members to
  /// ping the target. The suspicion, if any, comes at finish_probe().
  void start_indirect_probes(time_point now, std::uint64_t seq, outbox& out);
  void on_ping(time_point now, const address& from, const wire::ping& m, outbox& out);
  void on_indirect_ping(time_point now, const address& from, const wire::indirect_ping& m,
                        outbox& out);
  void on_ack(time_point now, const address& from, const wire::ack& m, outbox& out);
  void check_digest(time_point now, const member_entry& peer, std::uint64_t theirs, outbox& out);
  void on_nack(const wire::nack& m);
  void on_relay_timeout(std::uint64_t seq, outbox& out);
  /// How long a relay waits for the target before it nacks, for a request
  /// that did not say (older requesters).
  duration default_nack_timeout() const noexcept;

  // ---- gossip.cpp: dissemination, anti-entropy, join, leave, healing ----
  void queue_broadcast(const std::string& key, const wire::message& m, bool marks_leave = false);
  void send(const address& to, const wire::message& primary, outbox& out,
            const wire::message* extra = nullptr);
  std::size_t fill_broadcasts(wire::packet_builder& b);
  void on_gossip_timer(time_point now, outbox& out);
  void gossip_round(time_point now, outbox& out);
  void send_confirm_pings(time_point now, outbox& out);
  void on_push_pull_timer(time_point now, outbox& out);
  void on_reconnect_timer(time_point now, outbox& out);
  void on_seed_retry(time_point now, outbox& out);
  void on_maintenance(time_point now, outbox& out);
  void start_stream(const address& to, stream_kind kind, bytes data, outbox& out,
                    std::uint32_t seq = 0);
  bytes encode_state(bool join) const;
  void merge_state(time_point now, const wire::push_pull& pp, bool regossip, outbox& out);
  void gossip_targets(time_point now, std::size_t k, std::vector<const member_entry*>& out);

  void warn_invalid(time_point now, const address& from, std::error_code ec);
  /// Counts a decode failure under its reason (core_stats::invalid_*).
  void count_invalid(std::error_code ec);
  /// Counts decoded messages by type; `unknown` skipped ones go to [0].
  void count_in(const std::vector<wire::message>& msgs, std::size_t unknown);
  /// Decodes a whole stream body into `msgs` (at least one message), or
  /// counts why it is invalid and returns false.
  bool decode_stream(std::span<const std::uint8_t> data, std::vector<wire::message>& msgs);
  void count_out(wire::msg_type t) { ++stats_.messages_out_by_type[static_cast<std::size_t>(t)]; }

  // ---- timers (core.cpp) ----
  void schedule(time_point at, timer_kind kind, std::uint64_t token = 0, std::string name = {});
  /// A periodic timer that stops while it has nothing to do, so an idle node
  /// wakes only for its probes. `next` is the earliest time it may run again
  /// (its last run plus its interval); re-armed, it runs then or, if that
  /// passed, at the last time the core saw.
  struct lazy_timer {
    time_point next{};
    bool armed = false;
  };
  void wake(lazy_timer& t, timer_kind kind);
  bool gossip_pending() const noexcept;
  bool stale(const timer& t) const;
  /// A suspicion timer fired: dead, unless refuted (stale) or moved later.
  void on_suspicion_timeout(time_point now, timer& t, outbox& out);
  void drop_stale_timers() const;
  /// Drops every stale timer from the heap (not only those at its top).
  void sweep_timers();

  config cfg_;
  rng rng_;
  awareness awareness_;
  const wire::format& fmt_;  // the wire dialect: the only way to bytes and back
  wire::limits limits_;
  core_stats stats_;

  std::unordered_map<std::string, member_entry> members_;
  member_entry* self_ = nullptr;
  std::size_t live_count_ = 0;  // alive + suspect, self included
  std::size_t confirmed_by_state_[4] = {0, 0, 0, 0};
  std::uint64_t digest_ = 0;     // level 2: name, state, incarnation, tags, protocol
  std::uint64_t digest_v1_ = 0;  // level 1: name, state, incarnation

  std::vector<member_entry*> probe_list_;
  std::size_t probe_pos_ = 0;

  struct probe_state {
    std::uint32_t seq = 0;
    std::string target;
    std::uint64_t incarnation = 0;
    bool active = false;
    bool acked = false;
    bool udp_answer = false;  // an ack or nack came back over UDP
    bool indirect_sent = false;
    bool refused = false;  // our ping drew ICMP port unreachable
    int indirect_expected = 0;
    int nacks = 0;
    int refused_nacks = 0;  // relays whose ping was refused too
    time_point ends{};      // when this probe period ends (the next probe)
  } probe_;
  std::uint32_t next_seq_ = 0;
  int digest_mismatch_streak_ = 0;
  std::vector<time_point> recent_refutations_;  // the last 2 * unhealthy_refute_limit
  bool benched_ = false;                        // persistently unhealthy: not refuting accusations
  // Our last 16 probes, newest in bit 0: 1 = heard nothing over UDP. Only
  // these may bench us (update_bench, bench_tiers).
  std::uint16_t own_probes_ = 0;
  // probe_scaled's cap while accused: our probes at most this many times
  // probe_interval apart.
  static constexpr int accused_probe_multiplier = 1;
  // We bench when `failures` of our last `window` probes were silent and we
  // refuted `accusations` times within unhealthy_refute_window (0: the
  // configured unhealthy_refute_limit). Weaker evidence of our own needs
  // more accusations; longer windows need a bigger share.
  struct bench_tier {
    int window;
    int failures;
    std::size_t accusations;
  };
  static constexpr bench_tier bench_tiers[] = {{8, 5, 0}, {16, 5, 6}, {16, 4, 8}, {8, 2, 10}};
  static constexpr std::size_t bench_accusations = 10;  // the most any tier needs
  time_point last_digest_sync_{};

  struct relay {
    address origin;
    std::uint32_t origin_seq;
    bool want_nack;
    address target_addr;
    std::string target;
  };
  std::unordered_map<std::uint32_t, relay> relays_;

  // Pings outside the probe cycle: confirming a member learned by hearsay, or
  // checking whether a dead member answers again (reconnect).
  struct side_ping {
    std::uint32_t seq;
    std::string name;
    time_point sent;
    bool reconnect;
  };
  std::vector<side_ping> side_pings_;
  std::vector<std::string> confirm_queue_;
  // Confirmation pings in flight may not exceed this window. It starts at
  // confirm_pings_per_gossip, grows by one per answer up to it and halves
  // (once per gossip round) when pings go unanswered, so a join wave that
  // overloads the network or the hosts slows itself down instead of
  // retrying into the overload (see send_confirm_pings).
  int confirm_window_ = 0;
  std::vector<std::string> held_;           // members held back from the user (may be stale)
  const address* packet_source_ = nullptr;  // while handle_packet dispatches
  time_point stale_window_{};
  int stale_in_window_ = 0;
  static constexpr int max_stale_answers_per_second = 16;

  struct pending_stream {
    stream_kind kind;
    std::uint32_t seq;  // for fallback pings
  };
  std::unordered_map<std::uint64_t, pending_stream> streams_;
  std::uint64_t next_stream_id_ = 1;

  std::vector<std::string> gone_;  // dead/left members, oldest first (may be stale)

  broadcast_queue system_queue_;
  broadcast_queue user_queue_;
  // The ids of the user broadcasts seen lately (delivered once each): a set
  // and the ring of its insertion order, oldest forgotten first. A broadcast
  // circulates for seconds; this many others would have to pass meanwhile
  // for it to be delivered twice.
  static constexpr std::size_t max_remembered_broadcasts = 8192;
  std::unordered_set<std::uint64_t> broadcasts_seen_;
  std::vector<std::uint64_t> broadcasts_order_;
  std::size_t broadcasts_next_ = 0;
  std::uint64_t packets_filled_ = 0;
  bytes user_state_;
  bool quiet_merge_ = false;            // merging a seed's state on join: do not re-gossip it
  bool quiet_events_ = false;           // adopting a view: the caller knows it already
  std::vector<wire::message> scratch_;  // decode buffer, reused

  // mutable: next_deadline() drops timers that became moot (an acked probe's
  // timeout, an answered relay) so the caller is not woken for nothing.
  mutable std::vector<timer> timers_;  // a binary heap by timer_later
  std::size_t swept_size_ = 0;         // live timers at the last sweep
  lazy_timer gossip_timer_;
  lazy_timer maintenance_timer_;
  time_point last_now_{};
  std::uint64_t timer_order_ = 0;
  std::uint64_t next_token_ = 1;

  rate_limit invalid_warnings_{std::chrono::seconds(10)};

  std::vector<address> seeds_;
  bool started_ = false;
  bool leaving_ = false;
  time_point leave_deadline_{};
  std::size_t leave_transmits_ = 0;
  std::size_t leave_needed_ = 0;
};

}  // namespace shoal::detail
