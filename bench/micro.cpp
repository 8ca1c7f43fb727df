// shoal-micro: Google Benchmark micro-benchmarks of the wire codec and the core.
//
//   shoal-micro [--benchmark_filter=REGEX] [--benchmark_format=json] ...
//
// What each family measures (every loop feeds its result to
// benchmark::DoNotOptimize or keeps it in live state, so nothing is optimised
// away; counters: items_per_second = messages, members or packets per second
// as named, bytes_per_second = encoded bytes consumed or produced):
//   encode/<type>, decode/<type>  one message of each wire type
//                                 (wire::encode_message; decode_packet of a
//                                 packet holding just that message).
//   encode_packet/compound, decode_packet/compound
//                                 a full MTU packet: a ping and piggybacked
//                                 alive/suspect/dead updates up to 1400 bytes.
//   core_ping/N                   core::handle_packet of a ping addressed to a
//                                 core that knows N members (it answers with
//                                 an ack: decode, dispatch, encode, outbox).
//   core_gossip/N                 core::handle_packet of a compound packet of 8
//                                 alive updates with new incarnations about
//                                 known members (state changes, re-gossip).
//   digest_upkeep/N               one state change through handle_packet,
//                                 which updates the view digest incrementally,
//                                 then core::digest(): constant in N.
//   mtu_pack/Q                    broadcast_queue::fill of one 1400-byte packet
//                                 from a queue of Q encoded alive updates
//                                 (least-sent first; transmit limit never
//                                 reached, so the queue stays at Q).
//   push_pull_merge/same, /newer, /fresh
//                                 core::handle_stream of a 10,000-member
//                                 push-pull into a core that knows the same
//                                 10,000 (views agree), the same members at
//                                 older incarnations (every entry applies), or
//                                 nobody (learns all 10,000); includes the
//                                 reply (our own state, encoded).
#include <benchmark/benchmark.h>

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <shoal/core.hpp>
#include "core/broadcast_queue.hpp"
#include "wire/codec.hpp"

namespace {

namespace wire = shoal::wire;
using shoal::address;
using shoal::time_point;
using bytes = std::vector<std::uint8_t>;

std::string node_name(std::size_t i) {
  return "node-" + std::to_string(i);
}

address node_addr(std::size_t i) {
  return address::v4({10, static_cast<std::uint8_t>(i >> 16), static_cast<std::uint8_t>(i >> 8),
                      static_cast<std::uint8_t>(i)},
                     7946);
}

const shoal::tag_map& sample_tags() {
  static const shoal::tag_map t{{"dc", "eu-1"}, {"role", "web"}};
  return t;
}

shoal::member sample_member(std::size_t i, std::uint64_t inc) {
  return shoal::member{node_name(i),  node_addr(i),           inc, shoal::member_state::alive,
                       sample_tags(), shoal::protocol_version};
}

wire::push_pull sample_push_pull(std::size_t members, std::uint64_t inc) {
  wire::push_pull pp;
  pp.join = false;
  pp.source = node_name(0);
  pp.members.reserve(members);
  for (std::size_t i = 0; i < members; ++i) pp.members.push_back(sample_member(i, inc));
  return pp;
}

wire::message sample(wire::msg_type t) {
  switch (t) {
    case wire::msg_type::ping:
      return wire::ping{4242, node_name(1234), node_name(42), node_addr(42)};
    case wire::msg_type::indirect_ping:
      return wire::indirect_ping{4242,          node_name(1234), node_addr(1234),
                                 node_name(42), node_addr(42),   true};
    case wire::msg_type::ack:
      return wire::ack{4242, 0x0123456789abcdefULL};
    case wire::msg_type::nack:
      return wire::nack{4242};
    case wire::msg_type::suspect:
      return wire::suspect{17, node_name(1234), node_name(42)};
    case wire::msg_type::alive:
      return wire::alive{17, node_name(1234), node_addr(1234), sample_tags(),
                         shoal::protocol_version};
    case wire::msg_type::dead:
      return wire::dead{17, node_name(1234), node_name(42)};
    case wire::msg_type::left:
      return wire::left{17, node_name(1234)};
    case wire::msg_type::user:
      return wire::user{bytes(64, 0xab)};
    case wire::msg_type::push_pull:
      return sample_push_pull(100, 3);
    case wire::msg_type::broadcast:
      return wire::broadcast{0x0123456789abcdefULL, node_name(42), bytes(64, 0xab)};
    case wire::msg_type::unknown:
      break;
  }
  return wire::nack{};
}

/// Decode bounds large enough for a 10,000-member push-pull (as a core
/// configures them for streams).
wire::limits stream_limits() {
  wire::limits l;
  l.max_packet_bytes = 16u << 20;
  return l;
}

// ---------------------------------------------------------------- codec

void bm_encode(benchmark::State& st, wire::msg_type t) {
  const wire::message m = sample(t);
  bytes out;
  for (auto _ : st) {
    out.clear();
    wire::encode_message(m, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations());
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(out.size()));
  st.counters["msg_bytes"] = static_cast<double>(out.size());
}

/// Decodes `pkt` once per iteration; the benchmark fails unless each gives
/// `expected` messages.
void decode_loop(benchmark::State& st, const bytes& pkt, const wire::limits& lim,
                 std::size_t expected) {
  std::vector<wire::message> msgs;
  wire::decode_counters counters;
  for (auto _ : st) {
    auto ec = wire::decode_packet(pkt, lim, msgs, counters);
    benchmark::DoNotOptimize(ec);
    benchmark::DoNotOptimize(msgs.data());
    if (ec || msgs.size() != expected) {
      st.SkipWithError("decode failed");
      break;
    }
  }
}

void bm_decode(benchmark::State& st, wire::msg_type t) {
  const bytes pkt = wire::encode_packet(std::vector<wire::message>{sample(t)});
  decode_loop(st, pkt, stream_limits(), 1);
  st.SetItemsProcessed(st.iterations());
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(pkt.size()));
  st.counters["packet_bytes"] = static_cast<double>(pkt.size());
}

/// A ping followed by alive/suspect/dead updates, as many as fit in `mtu`.
std::vector<wire::message> compound_messages(std::size_t mtu) {
  std::vector<wire::message> msgs{sample(wire::msg_type::ping)};
  std::size_t size = wire::header_size;
  bytes enc;
  wire::encode_message(msgs.front(), enc);
  size += enc.size();
  for (std::size_t i = 0;; ++i) {
    wire::message m;
    switch (i % 3) {
      case 0:
        m = wire::alive{i + 1, node_name(i), node_addr(i), sample_tags(), shoal::protocol_version};
        break;
      case 1:
        m = wire::suspect{i + 1, node_name(i), node_name(42)};
        break;
      default:
        m = wire::dead{i + 1, node_name(i), node_name(42)};
        break;
    }
    enc.clear();
    wire::encode_message(m, enc);
    if (size + enc.size() > mtu) break;
    size += enc.size();
    msgs.push_back(std::move(m));
  }
  return msgs;
}

void bm_encode_packet(benchmark::State& st) {
  const auto msgs = compound_messages(1400);
  bytes out;
  for (auto _ : st) {
    wire::packet_builder b(out);
    for (const auto& m : msgs) b.add(m);
    b.finish();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(st.iterations() * static_cast<std::int64_t>(msgs.size()));
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(out.size()));
  st.counters["msgs_per_packet"] = static_cast<double>(msgs.size());
  st.counters["packet_bytes"] = static_cast<double>(out.size());
  st.counters["packets_per_second"] =
      benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}

void bm_decode_packet(benchmark::State& st) {
  const auto msgs = compound_messages(1400);
  const bytes pkt = wire::encode_packet(msgs);
  decode_loop(st, pkt, wire::limits{}, msgs.size());
  st.SetItemsProcessed(st.iterations() * static_cast<std::int64_t>(msgs.size()));
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(pkt.size()));
  st.counters["msgs_per_packet"] = static_cast<double>(msgs.size());
  st.counters["packet_bytes"] = static_cast<double>(pkt.size());
  st.counters["packets_per_second"] =
      benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}

void bm_push_pull_codec(benchmark::State& st, bool decode) {
  const auto n = static_cast<std::size_t>(st.range(0));
  const std::vector<wire::message> msgs{sample_push_pull(n, 3)};
  const bytes pkt = wire::encode_packet(msgs);
  if (decode) {
    decode_loop(st, pkt, stream_limits(), 1);
  } else {
    for (auto _ : st) {
      bytes enc = wire::encode_packet(msgs);
      benchmark::DoNotOptimize(enc.data());
    }
  }
  st.SetItemsProcessed(st.iterations() * static_cast<std::int64_t>(n));  // members
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(pkt.size()));
  st.counters["packet_bytes"] = static_cast<double>(pkt.size());
}

// ---------------------------------------------------------------- core

const time_point t0 = time_point{} + std::chrono::hours(1);

/// A running core ("observer") that knows `n` alive members node-0 .. node-n-1
/// at incarnation `inc`.
shoal::core make_core(std::size_t n, std::uint64_t inc = 1) {
  auto cfg = shoal::config::lan();
  cfg.name = "observer";
  cfg.advertise = *address::parse("10.255.255.254:7946");
  shoal::core c(cfg, 1);
  shoal::outbox out;
  c.join(t0, {}, out);
  std::vector<shoal::member> view;
  view.reserve(n);
  for (std::size_t i = 0; i < n; ++i) view.push_back(sample_member(i, inc));
  c.adopt_view(t0, view);
  return c;
}

void bm_core_ping(benchmark::State& st) {
  const auto n = static_cast<std::size_t>(st.range(0));
  shoal::core c = make_core(n);
  const bytes pkt = wire::encode_packet(
      std::vector<wire::message>{wire::ping{7, "observer", node_name(n / 2), node_addr(n / 2)}});
  const address from = node_addr(n / 2);
  shoal::outbox out;
  for (auto _ : st) {
    out.clear();
    c.handle_packet(t0, from, pkt, out);
    benchmark::DoNotOptimize(out.packets.data());
  }
  if (out.packets.size() != 1) st.SkipWithError("the core did not answer the ping");
  st.SetItemsProcessed(st.iterations());  // packets
  st.SetBytesProcessed(st.iterations() * static_cast<std::int64_t>(pkt.size()));
  st.counters["members"] = static_cast<double>(c.count(shoal::member_state::alive));
}

/// Pre-encoded packets of `per_packet` alive updates covering members 0..n-1
/// round-robin, at incarnation `inc`.
std::vector<bytes> alive_packets(std::size_t n, std::size_t per_packet, std::uint64_t inc) {
  std::vector<bytes> pkts;
  for (std::size_t first = 0; first < n; first += per_packet) {
    std::vector<wire::message> msgs;
    for (std::size_t i = first; i < std::min(n, first + per_packet); ++i)
      msgs.push_back(
          wire::alive{inc, node_name(i), node_addr(i), sample_tags(), shoal::protocol_version});
    pkts.push_back(wire::encode_packet(msgs));
  }
  return pkts;
}

/// Feeds packets of `per_packet` alive updates; every update carries a newer
/// incarnation than the core holds, so each one is applied.
void run_alive_updates(benchmark::State& st, std::size_t per_packet) {
  const auto n = static_cast<std::size_t>(st.range(0));
  shoal::core c = make_core(n, 1);
  std::uint64_t inc = 2;
  std::vector<bytes> pkts = alive_packets(n, per_packet, inc);
  std::size_t next = 0;
  std::int64_t bytes_in = 0;
  shoal::outbox out;
  std::uint64_t digest = 0;
  for (auto _ : st) {
    if (next == pkts.size()) {  // every member got this incarnation: next round
      st.PauseTiming();
      pkts = alive_packets(n, per_packet, ++inc);
      next = 0;
      st.ResumeTiming();
    }
    out.clear();
    c.handle_packet(t0, node_addr(0), pkts[next], out);
    bytes_in += static_cast<std::int64_t>(pkts[next].size());
    ++next;
    digest = c.digest();
    benchmark::DoNotOptimize(digest);
  }
  const auto probe = c.find(node_name(0));
  if (!probe || probe->incarnation < 2) st.SkipWithError("updates were not applied");
  st.SetItemsProcessed(st.iterations() * static_cast<std::int64_t>(per_packet));  // updates
  st.SetBytesProcessed(bytes_in);
  st.counters["members"] = static_cast<double>(n);
}

void bm_core_gossip(benchmark::State& st) {
  run_alive_updates(st, 8);
}

void bm_digest_upkeep(benchmark::State& st) {
  run_alive_updates(st, 1);
}

// ---------------------------------------------------------------- dissemination

void bm_mtu_pack(benchmark::State& st) {
  const auto q = static_cast<std::size_t>(st.range(0));
  shoal::detail::broadcast_queue queue(q + 1);
  for (std::size_t i = 0; i < q; ++i) {
    bytes enc;
    wire::encode_message(
        wire::alive{i + 1, node_name(i), node_addr(i), sample_tags(), shoal::protocol_version},
        enc);
    queue.push(node_name(i), std::move(enc));
  }
  const wire::message ping = sample(wire::msg_type::ping);
  bytes pkt;
  std::int64_t packed = 0, packed_bytes = 0;
  for (auto _ : st) {
    wire::packet_builder b(pkt);
    b.add(ping);
    const std::size_t before = b.size();
    const auto r = queue.fill(b, 1400, INT_MAX);
    b.finish();
    packed += static_cast<std::int64_t>(r.added);
    packed_bytes += static_cast<std::int64_t>(b.size() - before);
    benchmark::DoNotOptimize(pkt.data());
  }
  if (queue.size() != q) st.SkipWithError("the queue lost items");
  st.SetItemsProcessed(packed);  // updates packed
  st.SetBytesProcessed(packed_bytes);
  st.counters["updates_per_packet"] =
      static_cast<double>(packed) / static_cast<double>(std::max<std::int64_t>(st.iterations(), 1));
  st.counters["packets_per_second"] =
      benchmark::Counter(static_cast<double>(st.iterations()), benchmark::Counter::kIsRate);
}

// ---------------------------------------------------------------- push-pull merge

constexpr std::size_t merge_members = 10000;

bytes push_pull_packet(std::size_t n, std::uint64_t inc) {
  return wire::encode_packet(std::vector<wire::message>{sample_push_pull(n, inc)});
}

void finish_merge(benchmark::State& st, std::int64_t bytes_in, const shoal::core& c) {
  if (c.count(shoal::member_state::alive) < merge_members)
    st.SkipWithError("the state was not merged");
  st.SetItemsProcessed(st.iterations() * static_cast<std::int64_t>(merge_members));  // members
  st.SetBytesProcessed(bytes_in);
}

/// Views agree: every entry is looked up and ignored.
void bm_merge_same(benchmark::State& st) {
  shoal::core c = make_core(merge_members, 3);
  const bytes pkt = push_pull_packet(merge_members, 3);
  const address from = node_addr(0);
  shoal::outbox out;
  for (auto _ : st) {
    out.clear();
    bytes reply = c.handle_stream(t0, from, pkt, out);
    benchmark::DoNotOptimize(reply.data());
  }
  finish_merge(st, st.iterations() * static_cast<std::int64_t>(pkt.size()), c);
}

/// Every entry is newer than what the core holds: 10,000 state changes.
void bm_merge_newer(benchmark::State& st) {
  shoal::core c = make_core(merge_members, 1);
  std::uint64_t inc = 2;
  bytes pkt = push_pull_packet(merge_members, inc);
  const address from = node_addr(0);
  shoal::outbox out;
  std::int64_t bytes_in = 0;
  for (auto _ : st) {
    out.clear();
    bytes reply = c.handle_stream(t0, from, pkt, out);
    benchmark::DoNotOptimize(reply.data());
    bytes_in += static_cast<std::int64_t>(pkt.size());
    st.PauseTiming();
    pkt = push_pull_packet(merge_members, ++inc);
    st.ResumeTiming();
  }
  finish_merge(st, bytes_in, c);
}

/// A core that knows nobody learns 10,000 members (hearsay: queued for
/// confirmation pings, not yet in the confirmed view).
void bm_merge_fresh(benchmark::State& st) {
  const bytes pkt = push_pull_packet(merge_members, 3);
  const address from = node_addr(0);
  shoal::outbox out;
  std::int64_t bytes_in = 0;
  std::optional<shoal::core> c;
  for (auto _ : st) {
    st.PauseTiming();
    c.reset();  // the previous core is destroyed outside the timed region
    c.emplace(make_core(0));
    out.clear();
    st.ResumeTiming();
    bytes reply = c->handle_stream(t0, from, pkt, out);
    benchmark::DoNotOptimize(reply.data());
    bytes_in += static_cast<std::int64_t>(pkt.size());
  }
  // Hearsay members are held but unconfirmed: check the member table grew.
  if (!c || c->memory_estimate() < merge_members * 64) st.SkipWithError("nothing was learned");
  st.SetItemsProcessed(st.iterations() * static_cast<std::int64_t>(merge_members));
  st.SetBytesProcessed(bytes_in);
}

void register_all() {
  const std::pair<const char*, wire::msg_type> types[] = {
      {"ping", wire::msg_type::ping},
      {"indirect_ping", wire::msg_type::indirect_ping},
      {"ack", wire::msg_type::ack},
      {"nack", wire::msg_type::nack},
      {"suspect", wire::msg_type::suspect},
      {"alive", wire::msg_type::alive},
      {"dead", wire::msg_type::dead},
      {"left", wire::msg_type::left},
      {"user", wire::msg_type::user},
      {"push_pull_100", wire::msg_type::push_pull},
      {"broadcast", wire::msg_type::broadcast},
  };
  for (const auto& [name, t] : types)
    benchmark::RegisterBenchmark((std::string("encode/") + name).c_str(), bm_encode, t);
  for (const auto& [name, t] : types)
    benchmark::RegisterBenchmark((std::string("decode/") + name).c_str(), bm_decode, t);
  benchmark::RegisterBenchmark("encode_packet/compound", bm_encode_packet);
  benchmark::RegisterBenchmark("decode_packet/compound", bm_decode_packet);
  benchmark::RegisterBenchmark("encode_push_pull", bm_push_pull_codec, false)
      ->Arg(10000)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("decode_push_pull", bm_push_pull_codec, true)
      ->Arg(10000)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("core_ping", bm_core_ping)->Arg(100)->Arg(10000);
  benchmark::RegisterBenchmark("core_gossip", bm_core_gossip)->Arg(100)->Arg(10000);
  benchmark::RegisterBenchmark("digest_upkeep", bm_digest_upkeep)->Arg(100)->Arg(10000);
  benchmark::RegisterBenchmark("mtu_pack", bm_mtu_pack)->Arg(16)->Arg(256)->Arg(4096);
  benchmark::RegisterBenchmark("push_pull_merge/same", bm_merge_same)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("push_pull_merge/newer", bm_merge_newer)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("push_pull_merge/fresh", bm_merge_fresh)
      ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
