// Writes the seed corpus of the fuzz targets from real traffic:
//
//   shoal-fuzz-corpus tests/fuzz/corpus
//
// A five-node cluster runs on the simulator (local() timings) through a
// steady phase, a tag update and a user broadcast, a crash, a restart and a
// graceful leave; every datagram is recorded. From that:
//   wire_packet/   one datagram of each kind (sequence of message types),
//                  and two stream bodies;
//   core_packet/   the datagrams n0 received, as fuzz_core_packet records:
//                  one file per phase, and one per kind;
//   sealed_packet/ datagrams sealed under the fuzz key and label (and the
//                  secondary key, a label alone, none);
//   push_pull/     stream bodies: a join request with a full state and its
//                  reply, a periodic push-pull, a 40-member state with tags in
//                  every member state, a TCP ping and its ack.
// It replaces the files in those four directories only. Deterministic: the
// same build writes the same bytes except for sealed packets (random nonces).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <shoal/sim.hpp>

#include "fuzz_common.hpp"
#include "io/security.hpp"
#include "wire/codec.hpp"

namespace fs = std::filesystem;
namespace wire = shoal::wire;
using namespace std::chrono_literals;
using shoal::bytes;
using shoal::sim::node_id;

namespace {

struct recorded {
  shoal::time_point at;
  node_id from, to;
  bytes data;
  int phase;
};

/// "ping+alive+suspect": the message types of a packet, in order.
std::string kind_of(const bytes& data) {
  std::vector<wire::message> msgs;
  wire::decode_counters counters;
  wire::limits lim;
  lim.max_packet_bytes = 1u << 24;
  if (wire::decode_packet(data, lim, msgs, counters)) return "invalid";
  static const char* names[] = {"",      "ping", "indirect_ping", "ack",  "nack",     "suspect",
                                "alive", "dead", "left",          "user", "push_pull"};
  std::string s;
  for (const auto& m : msgs) {
    const char* n = names[static_cast<int>(wire::type_of(m))];
    if (s.empty() || s.size() < 48) s += (s.empty() ? "" : "+") + std::string(n);
  }
  return s;
}

class writer {
 public:
  explicit writer(fs::path root) : root_(std::move(root)) {}

  void reset(const std::string& target) {
    const fs::path dir = root_ / target;
    fs::create_directories(dir);
    // Regenerated files go; reproducers of past findings (regress-*) stay.
    for (const auto& f : fs::directory_iterator(dir))
      if (f.is_regular_file() && !f.path().filename().string().starts_with("regress-"))
        fs::remove(f.path());
  }
  void write(const std::string& target, const std::string& name, const bytes& data) {
    std::ofstream f(root_ / target / name, std::ios::binary);
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!f) throw std::runtime_error("cannot write " + (root_ / target / name).string());
    ++written_[target];
  }
  void report() const {
    for (const auto& [t, n] : written_) std::cout << t << ": " << n << " files\n";
  }

 private:
  fs::path root_;
  std::map<std::string, int> written_;
};

/// One fuzz_core_packet record: op (sender, wait), u16 length, bytes.
void append_record(bytes& out, node_id from, shoal::duration wait, const bytes& data) {
  const auto steps = std::min<long long>(31, wait / 25ms);
  out.push_back(static_cast<std::uint8_t>((from & 7u) | (static_cast<unsigned>(steps) << 3)));
  out.push_back(static_cast<std::uint8_t>(data.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(data.size()));
  out.insert(out.end(), data.begin(), data.end());
}

bytes encode(const wire::message& m) {
  return wire::encode_packet({&m, 1});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: shoal-fuzz-corpus <tests/fuzz/corpus>\n";
    return 2;
  }
  writer out{fs::path(argv[1])};

  // ---- record a cluster's life ----
  shoal::sim::options o;
  o.seed = 7;
  o.base = shoal::config::local();
  o.net = shoal::sim::network_config::local();
  shoal::sim::simulator sim(o);
  std::vector<recorded> log;
  int phase = 0;
  sim.on_packet([&](node_id from, node_id to, std::span<const std::uint8_t> data) {
    log.push_back({sim.now(), from, to, bytes(data.begin(), data.end()), phase});
  });
  sim.start_converged(fuzz::peers + 1);
  sim.run_for(3s);

  phase = 1;  // a tag update and a user broadcast
  shoal::outbox ignored;
  (void)sim.node_core(2).set_tags(sim.now(), {{"role", "db"}, {"zone", "eu-1"}}, ignored);
  (void)sim.node_core(1).broadcast(bytes{'h', 'e', 'l', 'l', 'o'});
  sim.run_for(3s);

  phase = 2;  // a crash: indirect probes, nacks, suspect, dead
  sim.crash(3);
  if (!sim.wait_status_everywhere("n3", shoal::member_state::dead, 60s)) {
    std::cerr << "n3 was not declared dead\n";
    return 1;
  }

  phase = 3;  // the same node restarts and refutes
  sim.restart(3);
  sim.run_for(5s);

  phase = 4;  // a graceful leave
  sim.leave(4);
  sim.run_for(5s);

  // ---- wire_packet: one datagram of each kind ----
  out.reset("wire_packet");
  std::map<std::string, const recorded*> kinds;
  for (const auto& r : log) kinds.try_emplace(kind_of(r.data), &r);
  for (const auto& [kind, r] : kinds) out.write("wire_packet", kind, r->data);

  // ---- core_packet: what n0 received, as records ----
  out.reset("core_packet");
  static const char* phase_names[] = {"steady", "tags-and-broadcast", "crash", "restart", "leave"};
  for (int p = 0; p <= 4; ++p) {
    bytes rec;
    shoal::time_point last = sim.start_time();
    int n = 0;
    for (const auto& r : log) {
      if (r.to != 0 || r.phase != p || n >= 32 || rec.size() + r.data.size() > 4096) continue;
      if (n == 0) last = r.at;
      append_record(rec, r.from, r.at - last, r.data);
      last = r.at;
      ++n;
    }
    if (!rec.empty()) out.write("core_packet", std::string("phase-") + phase_names[p], rec);
  }
  std::map<std::string, const recorded*> to_n0;
  for (const auto& r : log)
    if (r.to == 0) to_n0.try_emplace(kind_of(r.data), &r);
  for (const auto& [kind, r] : to_n0) {
    bytes rec;
    append_record(rec, r->from, 0s, r->data);
    out.write("core_packet", "one-" + kind, rec);
  }

  // ---- sealed_packet: envelopes under the fuzz key and label ----
  out.reset("sealed_packet");
  const shoal::io::keyring keys({fuzz::sealing_key(0), fuzz::sealing_key(1)});
  const shoal::io::keyring secondary({fuzz::sealing_key(1)});
  const shoal::io::keyring none;
  for (const auto& [kind, r] : kinds) {
    out.write("sealed_packet", "sealed-" + kind,
              shoal::io::seal(r->data, fuzz::sealing_label, keys));
  }
  const bytes& some = kinds.begin()->second->data;
  out.write("sealed_packet", "secondary-key",
            shoal::io::seal(some, fuzz::sealing_label, secondary));
  out.write("sealed_packet", "unlabeled", shoal::io::seal(some, "", keys));
  out.write("sealed_packet", "label-only", shoal::io::seal(some, fuzz::sealing_label, none));
  out.write("sealed_packet", "plain", some);

  // ---- push_pull: stream bodies ----
  out.reset("push_pull");
  shoal::outbox ob;
  const shoal::address n1 = sim.addr(1);
  sim.node_core(0).join(sim.now(), {&n1, 1}, ob);
  if (ob.streams.empty()) {
    std::cerr << "no join stream\n";
    return 1;
  }
  const bytes join_request = ob.streams.front().data;
  out.write("push_pull", "join-request", join_request);
  out.write("push_pull", "join-reply",
            sim.node_core(1).handle_stream(sim.now(), sim.addr(0), join_request, ob));
  wire::push_pull pp;
  pp.source = "n2";
  pp.members = sim.node_core(2).members();
  pp.user_state = bytes{'s', 't', 'a', 't', 'e'};
  out.write("push_pull", "push-pull", encode(pp));
  const bytes ping = encode(wire::ping{7, "n0", "n1", sim.addr(1)});
  out.write("push_pull", "tcp-ping", ping);
  out.write("push_pull", "tcp-ping-ack",
            sim.node_core(0).handle_stream(sim.now(), sim.addr(1), ping, ob));
  wire::push_pull big;  // a larger cluster's state: every member state, tags
  big.source = "n1";
  for (std::uint8_t i = 0; i < 40; ++i)
    big.members.push_back(
        shoal::member{"member-" + std::to_string(i),
                      shoal::address::v4({10, 0, 1, i}, 7946),
                      i % 7u,
                      static_cast<shoal::member_state>(i % 4),
                      {{"role", i % 2 ? "web" : "db"}, {"zone", "z" + std::to_string(i % 3)}},
                      shoal::protocol_version});
  big.user_state = bytes(64, 0x5a);
  out.write("push_pull", "big-state", encode(big));
  // The wire decoder reads stream bodies too.
  out.write("wire_packet", "stream-join-request", join_request);
  wire::suspect refused{3, "n3", "n1"};
  refused.refused = true;  // the optional fourth field (a ping answered by port unreachable)
  out.write("wire_packet", "suspect-refused", encode(refused));
  out.write("wire_packet", "stream-push-pull", encode(pp));
  out.write("wire_packet", "stream-big-state", encode(big));

  out.report();
  return 0;
}
