// The runtime's label and encryption envelope: seal/open and the keyring on
// their own, then nodes on loopback with keys and labels.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "io/security.hpp"
#include "io_test_util.hpp"

using namespace std::chrono_literals;
using iotest::wait_until;
using shoal::member_state;
using shoal::io::keyring;
using shoal::io::open_packet;
using shoal::io::open_status;

namespace {

shoal::encryption_key make_key(std::uint8_t seed) {
  shoal::encryption_key k{};
  for (std::size_t i = 0; i < k.size(); ++i) k[i] = static_cast<std::uint8_t>(seed * 31 + i);
  return k;
}

/// Looks like a core packet: starts with 'S'.
shoal::bytes sample_packet(std::size_t n = 100) {
  shoal::bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
  b[0] = 0x53;
  return b;
}

}  // namespace

// ---- seal / open ----

TEST_CASE("a plain unlabeled packet is sent unchanged", "[io]") {
  const keyring none;
  const auto p = sample_packet();
  CHECK(shoal::io::seal(p, "", none) == p);
  CHECK(shoal::io::seal_overhead("", none) == 0);
  const auto r = open_packet(p, "", none, false);
  CHECK(r.status == open_status::ok);
  CHECK(r.plain == p);
}

TEST_CASE("seal and open round trip", "[io]") {
  const keyring keys({make_key(1)});
  const keyring none;
  const auto p = sample_packet(1400);
  struct variant {
    std::string label;
    const keyring* ring;
  };
  for (const auto& v : {variant{"", &keys}, variant{"prod", &none}, variant{"prod", &keys},
                        variant{std::string(255, 'x'), &keys}}) {
    INFO("label=" << v.label.size() << " encrypted=" << !v.ring->empty());
    const auto sealed = shoal::io::seal(p, v.label, *v.ring);
    CHECK(sealed[0] == shoal::io::outer_version);
    CHECK(sealed.size() == p.size() + shoal::io::seal_overhead(v.label, *v.ring));
    const auto opened = shoal::io::open(sealed, v.label, *v.ring);
    REQUIRE(opened);
    CHECK(*opened == p);
    if (!v.ring->empty()) {  // the plaintext does not show through
      CHECK(std::search(sealed.begin(), sealed.end(), p.begin() + 1, p.begin() + 17) ==
            sealed.end());
    }
  }
  // An empty payload seals and opens too.
  const auto sealed = shoal::io::seal({}, "l", keys);
  const auto opened = shoal::io::open(sealed, "l", keys);
  REQUIRE(opened);
  CHECK(opened->empty());
}

TEST_CASE("every seal draws a fresh nonce", "[io]") {
  const keyring keys({make_key(1)});
  const auto p = sample_packet();
  CHECK(shoal::io::seal(p, "", keys) != shoal::io::seal(p, "", keys));
}

TEST_CASE("a packet sealed with another key does not open", "[io]") {
  const keyring a({make_key(1)});
  const keyring b({make_key(2)});
  const auto sealed = shoal::io::seal(sample_packet(), "", a);
  CHECK(open_packet(sealed, "", b, false).status == open_status::decrypt_failed);
  CHECK(open_packet(sealed, "", b, true).status == open_status::decrypt_failed);
  // Nor on a node without keys.
  CHECK(open_packet(sealed, "", keyring{}, false).status == open_status::decrypt_failed);
}

TEST_CASE("a change to any byte of a sealed packet is detected", "[io]") {
  const keyring keys({make_key(1)});
  const auto p = sample_packet(64);
  for (const std::string label : {"", "cluster-a"}) {
    const auto sealed = shoal::io::seal(p, label, keys);
    for (std::size_t i = 0; i < sealed.size(); ++i) {
      for (const std::uint8_t flip : {std::uint8_t{0x01}, std::uint8_t{0x80}}) {
        auto bad = sealed;
        bad[i] = static_cast<std::uint8_t>(bad[i] ^ flip);
        INFO("label=" << label << " position=" << i << " flip=" << int{flip});
        CHECK_FALSE(shoal::io::open(bad, label, keys, false));
        // Accepting plaintext, a changed version or flag byte reads as a
        // plaintext packet (garbage for the core), never as the sealed one.
        CHECK(shoal::io::open(bad, label, keys, true) != std::optional<shoal::bytes>(p));
      }
    }
    // Truncated anywhere, or extended: rejected as well.
    for (std::size_t n = 0; n < sealed.size(); ++n) {
      const std::span<const std::uint8_t> cut(sealed.data(), n);
      CHECK_FALSE(shoal::io::open(cut, label, keys, false));
    }
    auto longer = sealed;
    longer.push_back(0);
    CHECK_FALSE(shoal::io::open(longer, label, keys, false));
  }
}

TEST_CASE("labels must match exactly", "[io]") {
  const keyring none;
  const keyring keys({make_key(1)});
  const auto p = sample_packet();
  for (const keyring* ring : {&none, &keys}) {
    const auto labeled = shoal::io::seal(p, "blue", *ring);
    CHECK(open_packet(labeled, "blue", *ring, false).status == open_status::ok);
    CHECK(open_packet(labeled, "green", *ring, false).status == open_status::label_mismatch);
    CHECK(open_packet(labeled, "blu", *ring, false).status == open_status::label_mismatch);
    CHECK(open_packet(labeled, "", *ring, true).status == open_status::label_mismatch);
    const auto unlabeled = shoal::io::seal(p, "", *ring);
    CHECK(open_packet(unlabeled, "blue", *ring, true).status == open_status::label_mismatch);
  }
  // A bare core packet carries no label.
  CHECK(open_packet(p, "blue", none, false).status == open_status::label_mismatch);
}

TEST_CASE("plaintext is refused by a keyed node unless accepted", "[io]") {
  const keyring keys({make_key(1)});
  const keyring none;
  const auto p = sample_packet();
  CHECK(open_packet(p, "", keys, false).status == open_status::plaintext_rejected);
  const auto r = open_packet(p, "", keys, true);
  CHECK(r.status == open_status::ok);
  CHECK(r.plain == p);
  const auto labeled = shoal::io::seal(p, "l", none);  // labeled, not encrypted
  CHECK(open_packet(labeled, "l", keys, false).status == open_status::plaintext_rejected);
  CHECK(shoal::io::open(labeled, "l", keys, true) == p);
  // Unknown flag bits are refused.
  auto odd = shoal::io::seal(p, "", keys);
  odd[1] = static_cast<std::uint8_t>(odd[1] | 0x08);
  CHECK(open_packet(odd, "", keys, true).status == open_status::decrypt_failed);
}

TEST_CASE("keyring rules", "[io]") {
  const auto a = make_key(1), b = make_key(2), c = make_key(3);
  keyring ring;
  CHECK(ring.empty());
  CHECK(ring.primary() == nullptr);
  CHECK_FALSE(ring.use(a));
  ring.install(a);  // the first key becomes primary
  REQUIRE(ring.primary());
  CHECK(*ring.primary() == a);
  ring.install(b);
  ring.install(b);  // once only
  ring.install(c);
  CHECK(ring.list() == std::vector<shoal::io::key_bytes>{a, b, c});
  CHECK_FALSE(ring.remove(a));  // the primary stays
  CHECK_FALSE(ring.remove(make_key(9)));
  CHECK(ring.use(c));
  CHECK(ring.list() == std::vector<shoal::io::key_bytes>{c, a, b});
  CHECK(ring.remove(a));
  CHECK(ring.list() == std::vector<shoal::io::key_bytes>{c, b});
  CHECK(keyring({a, a, b}).list() == std::vector<shoal::io::key_bytes>{a, b});

  // Every installed key opens, the primary seals.
  const auto p = sample_packet();
  const auto by_c = shoal::io::seal(p, "", ring);
  CHECK(shoal::io::open(by_c, "", keyring({b, c})) == p);
  CHECK_FALSE(shoal::io::open(by_c, "", keyring({b})));
  const auto by_b = shoal::io::seal(p, "", keyring({b}));
  CHECK(shoal::io::open(by_b, "", ring) == p);
}

// ---- nodes on loopback ----

namespace {

using iotest::node_list;
using iotest::require_mesh;

shoal::node_config secure_config(const std::string& name, std::vector<std::string> seeds,
                                 std::vector<shoal::encryption_key> keys,
                                 const std::string& label = "") {
  auto nc = iotest::local_config(name, std::move(seeds));
  nc.keys = std::move(keys);
  nc.label = label;
  return nc;
}

/// n nodes named prefix0..; all but the first seed from the first.
node_list start_secure(const std::string& prefix, std::size_t n,
                       const std::vector<shoal::encryption_key>& keys,
                       const std::string& label = "") {
  return iotest::start_cluster(prefix, n, [&](shoal::node_config& nc) {
    nc.keys = keys;
    nc.label = label;
  });
}

std::uint64_t total(const node_list& nodes, std::uint64_t shoal::runtime_stats::*field) {
  std::uint64_t sum = 0;
  for (const auto& n : nodes) sum += n->stats().runtime.*field;
  return sum;
}

/// The outsider is kept out: for `span`, nobody in `nodes` sees it and it
/// sees only itself.
void require_kept_out(const node_list& nodes, const shoal::node& outsider,
                      std::chrono::milliseconds span) {
  const std::string name = outsider.local_member().name;
  const bool leaked = wait_until(
      [&] {
        if (outsider.members().size() != 1) return true;
        for (const auto& n : nodes)
          if (n->find(name)) return true;
        return false;
      },
      span);
  INFO(iotest::views(nodes));
  REQUIRE_FALSE(leaked);
  CHECK(outsider.members().size() == 1);
}

}  // namespace

TEST_CASE("an encrypted labeled cluster of four converges", "[io]") {
  auto nodes = start_secure("enc", 4, {make_key(1)}, "prod");
  require_mesh(nodes, 4);
  CHECK(wait_until([&] { return nodes[0]->stats().core.packets_in > 0; }, 10s));
  CHECK(total(nodes, &shoal::runtime_stats::decrypt_failed) == 0);
  CHECK(total(nodes, &shoal::runtime_stats::label_mismatch) == 0);
  CHECK(total(nodes, &shoal::runtime_stats::plaintext_rejected) == 0);
  CHECK(nodes[1]->list_keys() == std::vector<shoal::encryption_key>{make_key(1)});
  for (auto& n : nodes) n->stop();
}

TEST_CASE("a label over 255 bytes is refused by start()", "[io]") {
  auto nc = iotest::local_config("long-label");
  nc.label = std::string(256, 'l');
  shoal::node n(nc);
  CHECK(n.start() == shoal::errc::invalid_argument);
  CHECK_FALSE(n.running());
}

TEST_CASE("keys rotate under traffic without losing a member", "[io]") {
  const auto old_key = make_key(1), new_key = make_key(2);
  std::atomic<int> failures{0};  // outlives the nodes whose callbacks count
  auto nodes = start_secure("rot", 4, {old_key});
  require_mesh(nodes, 4);

  for (auto& n : nodes)
    n->subscribe([&](const shoal::event& e) {
      if (e.who.state == member_state::dead || e.who.state == member_state::suspect) ++failures;
    });
  // Membership stays full and nobody is suspected while each step settles.
  const auto steady = [&](std::chrono::milliseconds span) {
    const bool broke = wait_until(
        [&] {
          for (const auto& n : nodes)
            for (const auto& m : n->members())
              if (m.state != member_state::alive) return true;
          return !iotest::full_mesh(nodes, 4);
        },
        span);
    INFO(iotest::views(nodes));
    REQUIRE_FALSE(broke);
  };

  for (auto& n : nodes) REQUIRE_FALSE(n->install_key(new_key));
  steady(1000ms);
  for (auto& n : nodes) REQUIRE_FALSE(n->use_key(new_key));
  steady(1000ms);
  for (auto& n : nodes) CHECK(n->remove_key(new_key) == shoal::errc::invalid_argument);
  for (auto& n : nodes) REQUIRE_FALSE(n->remove_key(old_key));
  steady(2000ms);

  for (const auto& n : nodes) CHECK(n->list_keys() == std::vector<shoal::encryption_key>{new_key});
  CHECK(failures == 0);
  CHECK(total(nodes, &shoal::runtime_stats::decrypt_failed) == 0);
  CHECK(iotest::full_mesh(nodes, 4));
  for (auto& n : nodes) n->stop();
}

TEST_CASE("a node with the wrong key never joins", "[io]") {
  auto nodes = start_secure("wk", 3, {make_key(1)});
  require_mesh(nodes, 3);
  shoal::node outsider(secure_config("wk-out", {iotest::seed_of(*nodes[0])}, {make_key(2)}));
  REQUIRE_FALSE(outsider.start());
  require_kept_out(nodes, outsider, 5000ms);
  CHECK(nodes[0]->stats().runtime.decrypt_failed > 0);  // its join requests
  for (auto& n : nodes) n->stop();
  outsider.stop();
}

TEST_CASE("a node with the wrong label never joins", "[io]") {
  SECTION("labels without encryption") {
    auto nodes = start_secure("wl", 3, {}, "blue");
    require_mesh(nodes, 3);
    shoal::node outsider(secure_config("wl-out", {iotest::seed_of(*nodes[0])}, {}, "green"));
    REQUIRE_FALSE(outsider.start());
    require_kept_out(nodes, outsider, 5000ms);
    CHECK(nodes[0]->stats().runtime.label_mismatch > 0);
    for (auto& n : nodes) n->stop();
  }
  SECTION("an unlabeled node and a labeled cluster, same key") {
    auto nodes = start_secure("wl2", 2, {make_key(1)}, "blue");
    require_mesh(nodes, 2);
    shoal::node outsider(secure_config("wl2-out", {iotest::seed_of(*nodes[0])}, {make_key(1)}));
    REQUIRE_FALSE(outsider.start());
    require_kept_out(nodes, outsider, 3000ms);
    CHECK(nodes[0]->stats().runtime.label_mismatch > 0);
    for (auto& n : nodes) n->stop();
  }
}

TEST_CASE("a plain cluster moves to encryption in three rolling steps", "[io]") {
  const auto key = make_key(7);
  // Step 1: keyed, accepting plaintext, still sending plaintext: mixes with plain nodes.
  auto plain = iotest::local_config("mig-plain");
  shoal::node p(plain);
  REQUIRE_FALSE(p.start());
  auto step1 = secure_config("mig-1", {iotest::seed_of(p)}, {key});
  step1.accept_plaintext = true;
  step1.encrypt_outgoing = false;
  shoal::node s1(step1);
  REQUIRE_FALSE(s1.start());
  CHECK(wait_until(
      [&] {
        return iotest::state_at(p, "mig-1") == member_state::alive &&
               iotest::state_at(s1, "mig-plain") == member_state::alive;
      },
      30s));
  // Every node is at step 1 before step 2 starts: the plain node goes.
  CHECK_FALSE(p.leave(2s));
  p.stop();

  // Step 2: sends encrypted, still accepts plaintext: mixes with step-1 nodes.
  auto step2 = secure_config("mig-2", {iotest::seed_of(s1)}, {key});
  step2.accept_plaintext = true;
  shoal::node s2(step2);
  REQUIRE_FALSE(s2.start());
  CHECK(wait_until(
      [&] {
        return iotest::state_at(s1, "mig-2") == member_state::alive &&
               iotest::state_at(s2, "mig-1") == member_state::alive;
      },
      30s));
  CHECK(s1.stats().runtime.plaintext_rejected == 0);
  CHECK(s2.stats().runtime.plaintext_rejected == 0);

  CHECK_FALSE(s1.leave(2s));
  s1.stop();

  // Step 3: encrypted only, with a step-2 node.
  auto step3 = secure_config("mig-3", {iotest::seed_of(s2)}, {key});
  shoal::node s3(step3);
  REQUIRE_FALSE(s3.start());
  CHECK(wait_until(
      [&] {
        return iotest::state_at(s2, "mig-3") == member_state::alive &&
               iotest::state_at(s3, "mig-2") == member_state::alive;
      },
      30s));
  CHECK(s3.stats().runtime.plaintext_rejected == 0);
  s3.stop();
  s2.stop();
}

TEST_CASE("a keyed node accepting plaintext but sending encrypted cannot reach a plain node",
          "[io]") {
  // Why migration needs step 1: the plain node cannot read it.
  shoal::node p(iotest::local_config("one-step-plain"));
  REQUIRE_FALSE(p.start());
  auto nc = secure_config("one-step-keyed", {iotest::seed_of(p)}, {make_key(3)});
  nc.accept_plaintext = true;
  shoal::node k(nc);
  REQUIRE_FALSE(k.start());
  CHECK(wait_until([&] { return p.stats().runtime.decrypt_failed > 0; }, 5s));
  CHECK_FALSE(p.find("one-step-keyed"));
  k.stop();
  p.stop();
}

TEST_CASE("a plain node never joins an encrypted cluster", "[io]") {
  auto nodes = start_secure("pt", 2, {make_key(1)});
  require_mesh(nodes, 2);
  shoal::node outsider(iotest::local_config("pt-out", {iotest::seed_of(*nodes[0])}));
  REQUIRE_FALSE(outsider.start());
  require_kept_out(nodes, outsider, 3000ms);
  CHECK(nodes[0]->stats().runtime.plaintext_rejected > 0);
  CHECK(outsider.stats().runtime.decrypt_failed == 0);  // it got no reply at all
  for (auto& n : nodes) n->stop();
}
