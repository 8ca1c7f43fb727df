// The wire codec: round trips, every rejection reason, and a mutation loop.
#include <catch2/catch.hpp>

#include <msgpack.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <shoal/core.hpp>
#include <shoal/errc.hpp>
#include "wire/codec.hpp"

namespace wire = shoal::wire;
using bytes = std::vector<std::uint8_t>;

namespace {

shoal::address v4(std::uint8_t last, std::uint16_t port) {
  return shoal::address::v4({10, 0, 0, last}, port);
}

shoal::address v6_addr(std::uint16_t port) {
  std::array<std::uint8_t, 16> ip{0x20, 0x01, 0x0d, 0xb8};
  ip[15] = 0x42;
  return shoal::address::v6(ip, port);
}

/// One message of every type, with values that exercise every integer width.
std::vector<wire::message> one_of_each() {
  std::vector<wire::message> m;
  m.emplace_back(wire::ping{7, "target-node", "source-node", v4(1, 7946)});
  m.emplace_back(wire::indirect_ping{0xffffffffu, "t", v6_addr(1), "s", v4(2, 65535), false});
  m.emplace_back(wire::ack{300, 0xfedcba9876543210ull});
  m.emplace_back(wire::nack{70000});
  m.emplace_back(wire::suspect{1ull << 40, "node-a", "node-b"});
  m.emplace_back(
      wire::alive{5, "node-a", v6_addr(7946), {{"dc", "eu-west"}, {"role", "db"}, {"", ""}}, 1});
  m.emplace_back(wire::dead{0, "node-c", "node-a"});
  m.emplace_back(wire::left{std::uint64_t{0xffffffffffffffffull}, "node-d"});
  m.emplace_back(wire::user{bytes{0, 1, 2, 0xc1, 0xff}});
  wire::push_pull pp;
  pp.join = true;
  pp.source = "node-a";
  pp.members.push_back({"node-a", v4(1, 1), 3, shoal::member_state::alive, {{"k", "v"}}, 1});
  pp.members.push_back({"node-b", v6_addr(2), 200, shoal::member_state::suspect, {}, 2});
  pp.members.push_back({"node-c", v4(3, 3), 70000, shoal::member_state::dead, {}, 255});
  pp.members.push_back({"node-d", v4(4, 4), 1ull << 33, shoal::member_state::left, {}, 0});
  pp.user_state = bytes(300, 0xab);
  m.emplace_back(std::move(pp));
  m.emplace_back(wire::broadcast{0xfedcba9876543210ull, "node-e", bytes{0xc1, 0, 7}});
  return m;
}

struct decoded {
  std::error_code ec;
  std::vector<wire::message> msgs;
  wire::decode_counters counters;
};

decoded decode(std::span<const std::uint8_t> data, const wire::limits& lim = {}) {
  decoded d;
  d.ec = wire::decode_packet(data, lim, d.msgs, d.counters);
  return d;
}

// ---- hand-built msgpack, for inputs our encoder would never produce ----

struct byte_sink {
  bytes* out;
  void write(const char* p, std::size_t n) {
    const auto* b = reinterpret_cast<const std::uint8_t*>(p);
    out->insert(out->end(), b, b + n);
  }
};
using raw_packer = msgpack::packer<byte_sink>;

/// Runs `f(packer)` and returns what it packed.
template <class F>
bytes packed(F&& f) {
  bytes out;
  byte_sink sink{&out};
  raw_packer pk{sink};
  f(pk);
  return out;
}

void str(raw_packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void bin(raw_packer& pk, const bytes& b) {
  pk.pack_bin(static_cast<std::uint32_t>(b.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
}

void addr6(raw_packer& pk) {
  bin(pk, {127, 0, 0, 1, 0x1f, 0x0a});
}

/// A packet header for `count` messages followed by `body`.
bytes packet(std::uint16_t count, const bytes& body) {
  bytes out{wire::magic,
            wire::version,
            0,
            0xdc,
            static_cast<std::uint8_t>(count >> 8),
            static_cast<std::uint8_t>(count & 0xff)};
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

/// A one-message packet whose message is built by `f`.
template <class F>
bytes packet_of(F&& f) {
  return packet(1, packed(std::forward<F>(f)));
}

/// A push_pull with a single member whose state is `state`.
bytes push_pull_with_state(std::uint64_t state) {
  return packet_of([&](raw_packer& pk) {
    pk.pack_array(5);
    pk.pack_uint8(10);
    pk.pack_false();
    str(pk, "src");
    pk.pack_array(1);
    pk.pack_array(6);
    str(pk, "m");
    addr6(pk);
    pk.pack_uint8(1);
    pk.pack_uint64(state);
    pk.pack_map(0);
    pk.pack_uint8(1);
    bin(pk, {});
  });
}

bool is_decode_error(std::error_code ec) {
  return ec.category() == shoal::shoal_category() &&
         ec.value() >= static_cast<int>(shoal::errc::truncated) &&
         ec.value() <= static_cast<int>(shoal::errc::field_too_long);
}

}  // namespace

TEST_CASE("wire: type_of follows the type numbers", "[unit]") {
  const auto msgs = one_of_each();
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    CHECK(static_cast<std::size_t>(wire::type_of(msgs[i])) == i + 1);
  }
  CHECK(wire::type_of(wire::message{wire::push_pull{}}) == wire::msg_type::push_pull);
}

TEST_CASE("wire: every message type round-trips alone", "[unit]") {
  for (const auto& m : one_of_each()) {
    CAPTURE(static_cast<int>(wire::type_of(m)));
    const auto pkt = wire::encode_packet({&m, 1});
    const auto d = decode(pkt);
    REQUIRE_FALSE(d.ec);
    REQUIRE(d.msgs.size() == 1);
    CHECK(d.msgs[0] == m);
    CHECK(d.counters.unknown_type == 0);
  }
}

TEST_CASE("wire: default-constructed messages round-trip", "[unit]") {
  const std::vector<wire::message> msgs{
      wire::ping{},  wire::indirect_ping{}, wire::ack{},  wire::nack{}, wire::suspect{},
      wire::alive{}, wire::dead{},          wire::left{}, wire::user{}, wire::push_pull{}};
  const auto pkt = wire::encode_packet(msgs);
  const auto d = decode(pkt);
  REQUIRE_FALSE(d.ec);
  CHECK(d.msgs == msgs);
}

TEST_CASE("wire: a compound packet with many messages round-trips", "[unit]") {
  std::vector<wire::message> msgs;
  for (int round = 0; round < 40; ++round) {
    for (auto& m : one_of_each()) msgs.push_back(std::move(m));
  }
  REQUIRE(msgs.size() == 40 * one_of_each().size());
  const auto pkt = wire::encode_packet(msgs);
  CHECK(pkt[4] == msgs.size() >> 8);
  CHECK(pkt[5] == (msgs.size() & 0xff));
  const auto d = decode(pkt);
  REQUIRE_FALSE(d.ec);
  CHECK(d.msgs == msgs);
}

TEST_CASE("wire: packet_builder writes the header and patches the count", "[unit]") {
  const auto msgs = one_of_each();
  bytes out{9, 9, 9};  // cleared by the builder
  wire::packet_builder b{out};
  CHECK(b.size() == wire::header_size);
  CHECK(b.count() == 0);
  bytes encoded;
  wire::encode_message(msgs[2], encoded);
  b.add_encoded(encoded);
  b.add(msgs[0]);
  b.add(msgs[9]);
  CHECK(b.count() == 3);
  CHECK(b.size() == out.size());
  b.finish();
  REQUIRE(out.size() > wire::header_size);
  CHECK(out[0] == 0x53);
  CHECK(out[1] == 0x01);
  CHECK(out[2] == 0x00);
  CHECK(out[3] == 0xdc);
  CHECK(out[4] == 0);
  CHECK(out[5] == 3);
  const auto d = decode(out);
  REQUIRE_FALSE(d.ec);
  REQUIRE(d.msgs.size() == 3);
  CHECK(d.msgs[0] == msgs[2]);
  CHECK(d.msgs[1] == msgs[0]);
  CHECK(d.msgs[2] == msgs[9]);

  wire::packet_builder empty{out};
  empty.finish();
  CHECK(out.size() == wire::header_size);
  const auto e = decode(out);
  CHECK_FALSE(e.ec);
  CHECK(e.msgs.empty());
}

TEST_CASE("wire: encode_message appends", "[unit]") {
  bytes out{1, 2, 3};
  wire::encode_message(wire::nack{5}, out);
  CHECK(out == bytes{1, 2, 3, 0x92, 4, 5});
}

TEST_CASE("wire: packets are msgpack, as msgpack-cxx reads them", "[unit]") {
  const auto msgs = one_of_each();
  const auto pkt = wire::encode_packet(msgs);
  const auto handle =
      msgpack::unpack(reinterpret_cast<const char*>(pkt.data()) + 3, pkt.size() - 3);
  const msgpack::object& obj = handle.get();
  REQUIRE(obj.type == msgpack::type::ARRAY);
  REQUIRE(obj.via.array.size == msgs.size());
  for (std::uint32_t i = 0; i < obj.via.array.size; ++i) {
    const auto& m = obj.via.array.ptr[i];
    REQUIRE(m.type == msgpack::type::ARRAY);
    REQUIRE(m.via.array.size >= 2);
    CHECK(m.via.array.ptr[0].as<unsigned>() == i + 1);
  }
  // Spot-check fields of an ack and an alive.
  const auto& a = obj.via.array.ptr[2].via.array;
  CHECK(a.ptr[1].as<std::uint32_t>() == 300);
  CHECK(a.ptr[2].as<std::uint64_t>() == 0xfedcba9876543210ull);
  const auto& al = obj.via.array.ptr[5].via.array;
  CHECK(al.ptr[2].as<std::string>() == "node-a");
  CHECK(al.ptr[3].type == msgpack::type::BIN);
  CHECK(al.ptr[3].via.bin.size == 18);
  const auto tags = al.ptr[4].as<std::map<std::string, std::string>>();
  CHECK(tags.at("dc") == "eu-west");
}

TEST_CASE("wire: messages packed by msgpack-cxx's own adaptors decode", "[unit]") {
  const auto body = packed([](raw_packer& pk) {
    pk.pack(std::make_tuple(3, 300, std::uint64_t{1} << 63));
    pk.pack(std::make_tuple(8, 12, std::string{"gone"}));
  });
  const auto d = decode(packet(2, body));
  REQUIRE_FALSE(d.ec);
  REQUIRE(d.msgs.size() == 2);
  CHECK(std::get<wire::ack>(d.msgs[0]) == wire::ack{300, std::uint64_t{1} << 63});
  CHECK(std::get<wire::left>(d.msgs[1]) == wire::left{12, "gone"});
}

TEST_CASE("wire: integers in any non-negative encoding are accepted", "[unit]") {
  // [4, seq] with seq 5 written as uint8, uint16, uint32, uint64, int8 .. int64.
  const std::vector<bytes> seqs{{0x05},
                                {0xcc, 0x05},
                                {0xcd, 0x00, 0x05},
                                {0xce, 0, 0, 0, 5},
                                {0xcf, 0, 0, 0, 0, 0, 0, 0, 5},
                                {0xd0, 0x05},
                                {0xd1, 0x00, 0x05},
                                {0xd2, 0, 0, 0, 5},
                                {0xd3, 0, 0, 0, 0, 0, 0, 0, 5}};
  for (const auto& seq : seqs) {
    bytes body{0x92, 0xcd, 0x00, 0x04};  // type 4 as uint16
    body.insert(body.end(), seq.begin(), seq.end());
    const auto d = decode(packet(1, body));
    REQUIRE_FALSE(d.ec);
    CHECK(std::get<wire::nack>(d.msgs.at(0)).seq == 5);
  }
}

TEST_CASE("wire: negative and oversize integers are malformed", "[unit]") {
  const std::vector<bytes> seqs{{0xff},                             // negative fixint
                                {0xd0, 0x80},                       // int8 -128
                                {0xd3, 0xff, 0, 0, 0, 0, 0, 0, 0},  // negative int64
                                {0xcf, 0, 0, 0, 1, 0, 0, 0, 0},     // uint64 2^32: over u32
                                {0xca, 0, 0, 0, 0},                 // float
                                {0xc0},                             // nil
                                {0xc3},                             // bool
                                {0xa1, '5'}};                       // str
  for (const auto& seq : seqs) {
    bytes body{0x92, 0x04};
    body.insert(body.end(), seq.begin(), seq.end());
    const auto d = decode(packet(1, body));
    CHECK(d.ec == shoal::errc::malformed);
  }
  // protocol 256 in an alive.
  const auto pkt = packet_of([](raw_packer& pk) {
    pk.pack_array(6);
    pk.pack_uint8(6);
    pk.pack_uint8(1);
    str(pk, "n");
    addr6(pk);
    pk.pack_map(0);
    pk.pack_uint16(256);
  });
  CHECK(decode(pkt).ec == shoal::errc::malformed);
}

TEST_CASE("wire: empty input is truncated", "[unit]") {
  const auto d = decode({});
  CHECK(d.ec == shoal::errc::truncated);
}

TEST_CASE("wire: every truncation of a valid packet is rejected as truncated", "[unit]") {
  const auto pkt = wire::encode_packet(one_of_each());
  wire::decode_counters counters;
  std::vector<wire::message> out;
  for (std::size_t n = 0; n < pkt.size(); ++n) {
    CAPTURE(n);
    const auto ec = wire::decode_packet({pkt.data(), n}, {}, out, counters);
    REQUIRE(ec == shoal::errc::truncated);
  }
  CHECK_FALSE(wire::decode_packet(pkt, {}, out, counters));
}

TEST_CASE("wire: header errors", "[unit]") {
  const auto good = wire::encode_packet(one_of_each());

  SECTION("bad magic") {
    auto p = good;
    p[0] = 'X';
    const auto d = decode(p);
    CHECK(d.ec == shoal::errc::bad_magic);
    CHECK(decode(bytes{0x00}).ec == shoal::errc::bad_magic);
  }
  SECTION("bad version") {
    for (const std::uint8_t v : std::array<std::uint8_t, 3>{0, 2, 255}) {
      auto p = good;
      p[1] = v;
      const auto d = decode(p);
      CHECK(d.ec == shoal::errc::unsupported_version);
    }
  }
  SECTION("nonzero flags") {
    for (const std::uint8_t f : std::array<std::uint8_t, 4>{1, 2, 4, 0x80}) {
      auto p = good;
      p[2] = f;
      const auto d = decode(p);
      CHECK(d.ec == shoal::errc::unsupported_flags);
    }
  }
  SECTION("not an array16 header") {
    // fixarray and array32 are msgpack arrays too, but not our header.
    CHECK(decode(bytes{0x53, 0x01, 0x00, 0x90}).ec == shoal::errc::malformed);
    CHECK(decode(bytes{0x53, 0x01, 0x00, 0xdd, 0, 0, 0, 0}).ec == shoal::errc::malformed);
    CHECK(decode(bytes{0x53, 0x01, 0x00, 0xc0, 0, 0}).ec == shoal::errc::malformed);
  }
  SECTION("trailing bytes") {
    auto p = good;
    p.push_back(0xc0);
    const auto d = decode(p);
    CHECK(d.ec == shoal::errc::malformed);
  }
  SECTION("count larger than the messages present") {
    auto p = good;
    p[5] = static_cast<std::uint8_t>(p[5] + 1);
    CHECK(decode(p).ec == shoal::errc::truncated);
    CHECK(decode(packet(0xffff, {})).ec == shoal::errc::too_many_messages);
    wire::limits lim;
    lim.max_messages = 0xffff;
    CHECK(decode(packet(0xffff, {0x91, 0x04}), lim).ec == shoal::errc::truncated);
  }
}

TEST_CASE("wire: size limits", "[unit]") {
  SECTION("oversized packet") {
    const auto pkt = wire::encode_packet(one_of_each());
    wire::limits lim;
    lim.max_packet_bytes = pkt.size();
    CHECK_FALSE(decode(pkt, lim).ec);
    lim.max_packet_bytes = pkt.size() - 1;
    const auto d = decode(pkt, lim);
    CHECK(d.ec == shoal::errc::too_large);
  }
  SECTION("too many messages") {
    const std::vector<wire::message> msgs(5, wire::nack{1});
    const auto pkt = wire::encode_packet(msgs);
    wire::limits lim;
    lim.max_messages = 5;
    CHECK_FALSE(decode(pkt, lim).ec);
    lim.max_messages = 4;
    const auto d = decode(pkt, lim);
    CHECK(d.ec == shoal::errc::too_many_messages);
  }
  SECTION("name too long") {
    wire::limits lim;
    const std::string ok_name(lim.max_name_length, 'n');
    const std::string long_name(lim.max_name_length + 1, 'n');
    const std::vector<wire::message> good{wire::suspect{1, ok_name, ok_name}};
    CHECK_FALSE(decode(wire::encode_packet(good), lim).ec);
    for (const auto& bad : std::vector<wire::message>{
             wire::ping{1, long_name, "s", {}}, wire::ping{1, "t", long_name, {}},
             wire::indirect_ping{1, long_name, {}, "s", {}, true}, wire::suspect{1, "a", long_name},
             wire::alive{1, long_name, {}, {}, 1}, wire::dead{1, long_name, "a"},
             wire::left{1, long_name}, wire::push_pull{false, long_name, {}, {}},
             wire::push_pull{false, "s", {{long_name, {}, 1, {}, {}, 1}}, {}}}) {
      const auto d = decode(wire::encode_packet({&bad, 1}), lim);
      CHECK(d.ec == shoal::errc::field_too_long);
    }
  }
  SECTION("tags too big") {
    // Keys and values count, and 16 bytes per tag (shoal::tag_bytes).
    wire::limits lim;
    lim.max_tag_bytes = 52;
    const wire::message ok_msg{
        wire::alive{1, "n", {}, {{"k1234", "v1234"}, {"k", "123456789"}}, 1}};
    CHECK_FALSE(decode(wire::encode_packet({&ok_msg, 1}), lim).ec);
    const wire::message big{wire::alive{1, "n", {}, {{"k1234", "v1234"}, {"k", "1234567890"}}, 1}};
    const auto d = decode(wire::encode_packet({&big, 1}), lim);
    CHECK(d.ec == shoal::errc::field_too_long);
    const wire::message member{
        wire::push_pull{true, "s", {{"m", {}, 1, {}, {{"", std::string(37, 'x')}}, 1}}, {}}};
    CHECK(decode(wire::encode_packet({&member, 1}), lim).ec == shoal::errc::field_too_long);
  }
  SECTION("too many tags, however small") {
    // The amplification the overhead and the count bound: hundreds of tiny
    // tags in 512 bytes cost kilobytes each member once decoded.
    wire::limits lim;  // 32 tags, 512 bytes
    shoal::tag_map many;
    for (int i = 0; i < 256; ++i) many[std::string(1, static_cast<char>(i))] = "";
    const wire::message flood{wire::alive{1, "n", {}, many, 1}};
    CHECK(decode(wire::encode_packet({&flood, 1}), lim).ec == shoal::errc::field_too_long);
    // The count on its own: 32 tags pass where the bytes allow them.
    lim.max_tag_bytes = 4096;
    shoal::tag_map at_limit;
    for (int i = 0; i < 32; ++i) at_limit["k" + std::to_string(i)] = "";
    const wire::message ok{wire::alive{1, "n", {}, at_limit, 1}};
    CHECK_FALSE(decode(wire::encode_packet({&ok, 1}), lim).ec);
    at_limit["k32"] = "";
    const wire::message over{wire::alive{1, "n", {}, at_limit, 1}};
    CHECK(decode(wire::encode_packet({&over, 1}), lim).ec == shoal::errc::field_too_long);
  }
  SECTION("payload and user state too big") {
    wire::limits lim;
    lim.max_payload_bytes = 100;
    const wire::message ok_msg{wire::user{bytes(100, 1)}};
    CHECK_FALSE(decode(wire::encode_packet({&ok_msg, 1}), lim).ec);
    const wire::message big{wire::user{bytes(101, 1)}};
    CHECK(decode(wire::encode_packet({&big, 1}), lim).ec == shoal::errc::field_too_long);
    const wire::message state{wire::push_pull{false, "s", {}, bytes(101, 1)}};
    CHECK(decode(wire::encode_packet({&state, 1}), lim).ec == shoal::errc::field_too_long);
  }
  SECTION("too many push_pull members") {
    wire::push_pull pp;
    pp.members.resize(10);
    const wire::message m{pp};
    wire::limits lim;
    lim.max_members = 10;
    CHECK_FALSE(decode(wire::encode_packet({&m, 1}), lim).ec);
    lim.max_members = 9;
    const auto d = decode(wire::encode_packet({&m, 1}), lim);
    CHECK(d.ec == shoal::errc::too_large);
  }
  SECTION("lengths claiming more than the packet holds") {
    // str32, bin32, array32 and map32 headers claiming ~4 GiB.
    const bytes huge{0xff, 0xff, 0xff, 0xff};
    for (const std::uint8_t h : std::array<std::uint8_t, 4>{0xdb, 0xc6, 0xdd, 0xdf}) {
      CAPTURE(h);
      bytes skipped{0x92, 0x0c, h};  // a field of an unknown type, skipped
      skipped.insert(skipped.end(), huge.begin(), huge.end());
      CHECK(decode(packet(1, skipped)).ec == shoal::errc::truncated);
    }
    for (const std::uint8_t h : std::array<std::uint8_t, 2>{0xdb, 0xda}) {
      bytes name{0x95, 0x01, 0x01, h};  // ping: seq, then the target's length
      name.insert(name.end(), huge.begin(), huge.end());
      CHECK(decode(packet(1, name)).ec == shoal::errc::truncated);
    }
    bytes members{0x95, 0x0a, 0xc2, 0xa1, 's', 0xdd};  // push_pull with ~4G members
    members.insert(members.end(), huge.begin(), huge.end());
    CHECK(decode(packet(1, members)).ec == shoal::errc::truncated);
  }
}

TEST_CASE("wire: malformed field types", "[unit]") {
  SECTION("a message that is not an array") {
    CHECK(decode(packet(1, {0x04})).ec == shoal::errc::malformed);
    CHECK(decode(packet(1, {0x81, 0x04, 0x01})).ec == shoal::errc::malformed);
  }
  SECTION("an empty message array") {
    CHECK(decode(packet(1, {0x90})).ec == shoal::errc::malformed);
  }
  SECTION("a type number that is not an unsigned integer") {
    CHECK(decode(packet(1, {0x92, 0xa1, '4', 0x01})).ec == shoal::errc::malformed);
    CHECK(decode(packet(1, {0x92, 0xfc, 0x01})).ec == shoal::errc::malformed);
  }
  SECTION("missing fields") {
    const auto d = decode(packet_of([](raw_packer& pk) {
      pk.pack_array(4);  // ping needs 4 fields after its type
      pk.pack_uint8(1);
      pk.pack_uint8(1);
      str(pk, "t");
      str(pk, "s");
    }));
    CHECK(d.ec == shoal::errc::malformed);
    CHECK(decode(packet(1, {0x91, 0x04})).ec == shoal::errc::malformed);  // nack without seq
    CHECK(decode(packet(1, {0x91, 0x09})).ec == shoal::errc::malformed);  // user no payload
  }
  SECTION("name as bin") {
    CHECK(decode(packet_of([](raw_packer& pk) {
            pk.pack_array(3);
            pk.pack_uint8(8);
            pk.pack_uint8(1);
            bin(pk, {'a'});
          })).ec == shoal::errc::malformed);
  }
  SECTION("addr as str") {
    CHECK(decode(packet_of([](raw_packer& pk) {
            pk.pack_array(5);
            pk.pack_uint8(1);
            pk.pack_uint8(1);
            str(pk, "t");
            str(pk, "s");
            str(pk, "127.0.0.1:1");
          })).ec == shoal::errc::malformed);
  }
  SECTION("payload as str") {
    CHECK(decode(packet_of([](raw_packer& pk) {
            pk.pack_array(2);
            pk.pack_uint8(9);
            str(pk, "hi");
          })).ec == shoal::errc::malformed);
  }
  SECTION("bool as integer") {
    CHECK(decode(packet_of([](raw_packer& pk) {
            pk.pack_array(5);
            pk.pack_uint8(10);
            pk.pack_uint8(1);
            str(pk, "s");
            pk.pack_array(0);
            bin(pk, {});
          })).ec == shoal::errc::malformed);
  }
  SECTION("tags that are not a str map") {
    auto alive_with_tags = [](auto&& tags) {
      return packet_of([&](raw_packer& pk) {
        pk.pack_array(6);
        pk.pack_uint8(6);
        pk.pack_uint8(1);
        str(pk, "n");
        addr6(pk);
        tags(pk);
        pk.pack_uint8(1);
      });
    };
    CHECK(decode(alive_with_tags([](raw_packer& pk) { pk.pack_array(0); })).ec ==
          shoal::errc::malformed);
    CHECK(decode(alive_with_tags([](raw_packer& pk) {
            pk.pack_map(1);
            str(pk, "k");
            pk.pack_uint8(1);
          })).ec == shoal::errc::malformed);
    CHECK(decode(alive_with_tags([](raw_packer& pk) {
            pk.pack_map(1);
            pk.pack_uint8(1);
            str(pk, "v");
          })).ec == shoal::errc::malformed);
    // Duplicate keys are ambiguous.
    CHECK(decode(alive_with_tags([](raw_packer& pk) {
            pk.pack_map(2);
            str(pk, "k");
            str(pk, "1");
            str(pk, "k");
            str(pk, "2");
          })).ec == shoal::errc::malformed);
    // Keys out of order are fine.
    const auto d = decode(alive_with_tags([](raw_packer& pk) {
      pk.pack_map(3);
      str(pk, "b");
      str(pk, "2");
      str(pk, "a");
      str(pk, "1");
      str(pk, "c");
      str(pk, "3");
    }));
    REQUIRE_FALSE(d.ec);
    CHECK(std::get<wire::alive>(d.msgs[0]).tags ==
          shoal::tag_map{{"a", "1"}, {"b", "2"}, {"c", "3"}});
  }
  SECTION("members that are not arrays, or short") {
    CHECK(decode(packet_of([](raw_packer& pk) {
            pk.pack_array(5);
            pk.pack_uint8(10);
            pk.pack_true();
            str(pk, "s");
            pk.pack_array(1);
            str(pk, "m");
            bin(pk, {});
          })).ec == shoal::errc::malformed);
    CHECK(decode(packet_of([](raw_packer& pk) {
            pk.pack_array(5);
            pk.pack_uint8(10);
            pk.pack_true();
            str(pk, "s");
            pk.pack_array(1);
            pk.pack_array(5);
            str(pk, "m");
            addr6(pk);
            pk.pack_uint8(1);
            pk.pack_uint8(0);
            pk.pack_map(0);
            bin(pk, {});
          })).ec == shoal::errc::malformed);
  }
}

TEST_CASE("wire: addresses must be 6 or 18 bytes", "[unit]") {
  for (const std::size_t n : std::array<std::size_t, 9>{0, 1, 4, 5, 7, 16, 17, 19, 32}) {
    CAPTURE(n);
    const auto d = decode(packet_of([&](raw_packer& pk) {
      pk.pack_array(5);
      pk.pack_uint8(1);
      pk.pack_uint8(1);
      str(pk, "t");
      str(pk, "s");
      bin(pk, bytes(n, 1));
    }));
    CHECK(d.ec == shoal::errc::malformed);
  }
  // The good sizes, decoded to the right family and port.
  const auto d = decode(packet_of([](raw_packer& pk) {
    pk.pack_array(7);
    pk.pack_uint8(2);
    pk.pack_uint8(1);
    str(pk, "t");
    bin(pk, {192, 168, 1, 2, 0x1f, 0x4a});
    str(pk, "s");
    bin(pk, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0x50});
    pk.pack_true();
  }));
  REQUIRE_FALSE(d.ec);
  const auto& ip = std::get<wire::indirect_ping>(d.msgs.at(0));
  CHECK(ip.target_addr == shoal::address::v4({192, 168, 1, 2}, 8010));
  CHECK(ip.source_addr.is_v6());
  CHECK(ip.source_addr.port() == 80);
  CHECK(ip.source_addr.to_string() == "[::1]:80");
}

TEST_CASE("wire: member state must be 0..3", "[unit]") {
  for (std::uint64_t s = 0; s <= 3; ++s) {
    const auto d = decode(push_pull_with_state(s));
    REQUIRE_FALSE(d.ec);
    CHECK(std::get<wire::push_pull>(d.msgs[0]).members.at(0).state ==
          static_cast<shoal::member_state>(s));
  }
  for (std::uint64_t s :
       {std::uint64_t{4}, std::uint64_t{255}, std::uint64_t{256}, std::uint64_t{1} << 40}) {
    const auto d = decode(push_pull_with_state(s));
    CHECK(d.ec == shoal::errc::malformed);
  }
}

TEST_CASE("wire: extra trailing fields are skipped", "[unit]") {
  const auto d = decode(packet(2, packed([](raw_packer& pk) {
                                 // nack, its optional refused flag, 8 future fields
                                 pk.pack_array(2 + 9);
                                 pk.pack_uint8(4);
                                 pk.pack_uint32(77);
                                 pk.pack_true();
                                 pk.pack_double(1.5);
                                 pk.pack_float(2.5f);
                                 pk.pack_int8(-3);
                                 pk.pack_ext(3, 7);
                                 pk.pack_ext_body("abc", 3);
                                 pk.pack_fix_int64(-1);
                                 pk.pack_array(2);
                                 pk.pack_map(1);
                                 str(pk, "k");
                                 pk.pack_array(1);
                                 bin(pk, {1, 2});
                                 pk.pack_true();
                                 str(pk, std::string(40, 's'));
                                 bin(pk, bytes(300, 0));
                                 // and a push_pull whose member has an extra field
                                 pk.pack_array(6);
                                 pk.pack_uint8(10);
                                 pk.pack_false();
                                 str(pk, "s");
                                 pk.pack_array(1);
                                 pk.pack_array(7);
                                 str(pk, "m");
                                 addr6(pk);
                                 pk.pack_uint8(2);
                                 pk.pack_uint8(3);
                                 pk.pack_map(0);
                                 pk.pack_uint8(1);
                                 pk.pack_map(1);
                                 pk.pack_uint8(1);
                                 pk.pack_uint8(2);
                                 bin(pk, {9});
                                 str(pk, "future");
                               })));
  REQUIRE_FALSE(d.ec);
  REQUIRE(d.msgs.size() == 2);
  CHECK(std::get<wire::nack>(d.msgs[0]).seq == 77);
  CHECK(std::get<wire::nack>(d.msgs[0]).refused);
  const auto& pp = std::get<wire::push_pull>(d.msgs[1]);
  CHECK(pp.members.size() == 1);
  CHECK(pp.members[0].state == shoal::member_state::left);
  CHECK(pp.user_state == bytes{9});
}

TEST_CASE("wire: unknown message types are skipped and counted", "[unit]") {
  const auto body = packed([](raw_packer& pk) {
    pk.pack_array(1);
    pk.pack_uint8(0);  // type 0 is not assigned
    pk.pack_array(2);
    pk.pack_uint8(4);
    pk.pack_uint8(1);
    pk.pack_array(4);
    pk.pack_uint8(12);  // a future type with nested fields
    pk.pack_map(1);
    str(pk, "x");
    pk.pack_array(2);
    pk.pack_nil();
    pk.pack_double(3.0);
    bin(pk, bytes(70000, 7));
    pk.pack_ext(1, 2);
    pk.pack_ext_body("z", 1);
    pk.pack_array(2);
    pk.pack_uint64(1ull << 50);  // a huge type number
    str(pk, "ignored");
    pk.pack_array(2);
    pk.pack_uint8(4);
    pk.pack_uint8(2);
  });
  wire::limits lim;
  lim.max_packet_bytes = 1 << 20;
  const auto d = decode(packet(5, body), lim);
  REQUIRE_FALSE(d.ec);
  CHECK(d.counters.unknown_type == 3);
  REQUIRE(d.msgs.size() == 2);
  CHECK(std::get<wire::nack>(d.msgs[0]).seq == 1);
  CHECK(std::get<wire::nack>(d.msgs[1]).seq == 2);

  SECTION("a bad byte inside an unknown message is still malformed") {
    CHECK(decode(packet(1, {0x92, 0x0b, 0xc1})).ec == shoal::errc::malformed);
  }
}

TEST_CASE("wire: skipping deep nesting stops at a depth limit", "[unit]") {
  auto nested = [](int depth) {
    bytes body{0x92, 0x0c};  // unknown type 12 with one field
    for (int i = 0; i < depth; ++i) body.push_back(0x91);
    body.push_back(0xc0);
    return packet(1, body);
  };
  CHECK_FALSE(decode(nested(20)).ec);
  CHECK(decode(nested(40)).ec == shoal::errc::malformed);
  CHECK(decode(nested(5000)).ec == shoal::errc::malformed);
  // Deep maps too.
  bytes body{0x92, 0x0c};
  for (int i = 0; i < 100; ++i) {
    body.push_back(0x81);
    body.push_back(0xc0);
  }
  body.push_back(0xc0);
  CHECK(decode(packet(1, body)).ec == shoal::errc::malformed);
}

TEST_CASE("core: each failed decode bumps exactly the counter of its reason", "[unit]") {
  // The one mapping from the wire's reasons to core_stats::invalid_*.
  auto cfg = shoal::config::lan();
  cfg.name = "a";
  cfg.advertise = v4(1, 7946);
  shoal::core c(cfg, 1);
  shoal::outbox out;
  const auto t = shoal::time_point{} + std::chrono::seconds(1000);
  using field = std::uint64_t shoal::core_stats::*;
  const std::vector<std::pair<bytes, field>> cases{
      {bytes{}, &shoal::core_stats::invalid_truncated},
      {bytes{1}, &shoal::core_stats::invalid_magic},
      {bytes{0x53, 9}, &shoal::core_stats::invalid_version},
      {bytes{0x53, 1, 1}, &shoal::core_stats::invalid_flags},
      {packet(1, {0x90}), &shoal::core_stats::invalid_malformed},
      {packet(0xffff, {}), &shoal::core_stats::invalid_malformed},  // too many messages
      {wire::encode_packet(std::vector<wire::message>{wire::left{1, std::string(200, 'n')}}),
       &shoal::core_stats::invalid_field},
      {packet(1, {0x91, 0x7f}),
       &shoal::core_stats::invalid_unknown_type},  // skipped, not a failure
  };
  for (const auto& [data, counter] : cases) {
    const shoal::core_stats before = c.stats();
    c.handle_packet(t, v4(2, 7946), data, out);
    const shoal::core_stats& after = c.stats();
    std::uint64_t moved = 0;
    shoal::visit_counters(after, [&](const char* name, const char*, std::uint64_t v) {
      if (std::string_view(name).rfind("invalid_", 0) != 0) return;
      std::uint64_t old = 0;
      shoal::visit_counters(before, [&](const char* n2, const char*, std::uint64_t v2) {
        if (std::string_view(n2) == name) old = v2;
      });
      moved += v - old;
    });
    CAPTURE(data.size());
    CHECK(after.*counter == before.*counter + 1);
    CHECK(moved == 1);
  }
}

TEST_CASE("wire: decode clears its output", "[unit]") {
  std::vector<wire::message> out{wire::nack{1}, wire::nack{2}};
  wire::decode_counters c;
  const std::vector<wire::message> one{wire::ack{1, 2}};
  REQUIRE_FALSE(wire::decode_packet(wire::encode_packet(one), {}, out, c));
  CHECK(out == one);
  CHECK(wire::decode_packet(bytes{}, {}, out, c) == shoal::errc::truncated);
  CHECK(out.empty());
}

TEST_CASE("wire: mutated packets never crash the decoder", "[unit]") {
  std::mt19937_64 rng{0x5eed5ea1};
  CAPTURE(0x5eed5ea1);
  std::vector<bytes> seeds;
  for (const auto& m : one_of_each()) seeds.push_back(wire::encode_packet({&m, 1}));
  seeds.push_back(wire::encode_packet(one_of_each()));

  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  wire::decode_counters counters;
  std::vector<wire::message> out;
  std::vector<wire::message> again;
  for (int iter = 0; iter < 20000; ++iter) {
    bytes p = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !p.empty(); ++e) {
      const std::size_t at = rng() % p.size();
      switch (rng() % 6) {
        case 0:
          p[at] = static_cast<std::uint8_t>(p[at] ^ (1u << (rng() % 8)));
          break;
        case 1:
          p[at] = static_cast<std::uint8_t>(rng());
          break;
        case 2:
          p.resize(at);
          break;
        case 3:
          p.insert(p.begin() + static_cast<std::ptrdiff_t>(at), static_cast<std::uint8_t>(rng()));
          break;
        case 4:
          p.erase(p.begin() + static_cast<std::ptrdiff_t>(at));
          break;
        default:  // an interesting msgpack byte
          constexpr std::array<std::uint8_t, 10> special{0xc1, 0xdb, 0xdd, 0xdf, 0xc6,
                                                         0xcf, 0xff, 0x00, 0x7f, 0xd3};
          p[at] = special[rng() % special.size()];
          break;
      }
    }
    // Keep the header mostly intact so the mutations reach the body.
    if (p.size() >= 4 && rng() % 4 != 0) {
      p[0] = wire::magic;
      p[1] = wire::version;
      p[2] = 0;
      p[3] = 0xdc;
    }
    const auto ec = wire::decode_packet(p, {}, out, counters);
    if (!ec) {
      ++ok;
      // Whatever decodes re-encodes to something that decodes the same.
      const auto re = wire::encode_packet(out);
      wire::decode_counters c2;
      REQUIRE_FALSE(wire::decode_packet(re, {}, again, c2));
      REQUIRE(again == out);
    } else {
      ++failed;
      REQUIRE(is_decode_error(ec));
    }
  }
  CHECK(ok > 0);
  CHECK(failed > 0);

  // Pure noise behind a valid header.
  for (int iter = 0; iter < 2000; ++iter) {
    bytes p{wire::magic, wire::version, 0, 0xdc, 0, static_cast<std::uint8_t>(rng() % 8)};
    const std::size_t n = rng() % 64;
    for (std::size_t i = 0; i < n; ++i) p.push_back(static_cast<std::uint8_t>(rng()));
    const auto ec = wire::decode_packet(p, {}, out, counters);
    REQUIRE((!ec || is_decode_error(ec)));
  }
}

TEST_CASE("errc: the shoal category names every code", "[unit]") {
  const auto& cat = shoal::shoal_category();
  CHECK(std::string{cat.name()} == "shoal");
  std::set<std::string> seen;
  for (auto e :
       {shoal::errc::ok, shoal::errc::truncated, shoal::errc::bad_magic,
        shoal::errc::unsupported_version, shoal::errc::unsupported_flags, shoal::errc::malformed,
        shoal::errc::too_large, shoal::errc::too_many_messages, shoal::errc::field_too_long,
        shoal::errc::invalid_argument, shoal::errc::not_running, shoal::errc::queue_full}) {
    const std::error_code ec = e;
    CHECK(&ec.category() == &cat);
    const auto msg = ec.message();
    CHECK_FALSE(msg.empty());
    CHECK(msg.find("unknown") == std::string::npos);
    seen.insert(msg);
  }
  CHECK(seen.size() == 12);
  CHECK_FALSE(std::error_code{shoal::errc::ok});
  CHECK(std::error_code{shoal::errc::malformed} == shoal::errc::malformed);
  CHECK(std::error_code{shoal::errc::malformed} != shoal::errc::truncated);
  CHECK_FALSE(cat.message(12345).empty());
}

TEST_CASE("wire: encoded messages tell their type, the builder counts by type", "[unit]") {
  std::array<std::uint64_t, shoal::message_type_count> counts{};
  bytes out;
  wire::packet_builder b(out, counts);
  for (const auto& m : one_of_each()) {
    bytes enc;
    wire::encode_message(m, enc);
    CHECK(wire::encoded_type(enc) == static_cast<std::uint8_t>(wire::type_of(m)));
    b.add_encoded(enc);  // counted from the bytes
    b.add(m);            // counted from the type
  }
  b.finish();
  CHECK(counts[0] == 0);
  for (std::size_t t = 1; t < shoal::message_type_count; ++t) {
    CAPTURE(t);
    CHECK(counts[t] == 2);
    CHECK(std::string(shoal::to_string(static_cast<shoal::message_type>(t))) != "unknown");
  }
  CHECK(std::string(shoal::to_string(shoal::message_type::push_pull)) == "push_pull");
  CHECK(std::string(shoal::to_string(shoal::message_type::unknown)) == "unknown");
  CHECK(wire::encoded_type({}) == 0);
  CHECK(wire::encoded_type(bytes{0x92}) == 0);
  CHECK(wire::encoded_type(bytes{0x80, 0x01}) == 0);  // a map, not an array
  CHECK(wire::encoded_type(bytes{0x92, 0xcc}) == 0);  // not a fixint
  // A type number past the counters' end is counted as unknown.
  bytes out2;
  wire::packet_builder b2(out2, counts);
  b2.add_encoded(bytes{0x91, 0x0d});
  b2.finish();
  CHECK(counts[0] == 1);
}

TEST_CASE("wire: a suspect carries the refused paths only when some were refused", "[unit]") {
  const wire::message plain = wire::suspect{9, "node-a", "node-b"};
  wire::suspect flagged{9, "node-a", "node-b"};
  flagged.refused = true;
  flagged.refused_paths = 2;
  const wire::message refused = flagged;
  const bytes p = wire::encode_packet({&plain, 1});
  const bytes r = wire::encode_packet({&refused, 1});
  // A plain suspicion keeps the three-field form older peers send; a refused
  // one adds a msgpack bool and the count (and the array header stays one
  // byte).
  CHECK(r.size() == p.size() + 2);
  const auto dp = decode(p);
  const auto dr = decode(r);
  REQUIRE_FALSE(dp.ec);
  REQUIRE_FALSE(dr.ec);
  REQUIRE(dp.msgs.size() == 1);
  REQUIRE(dr.msgs.size() == 1);
  CHECK_FALSE(std::get<wire::suspect>(dp.msgs[0]).refused);
  CHECK(std::get<wire::suspect>(dp.msgs[0]).refused_paths == 0);
  CHECK(std::get<wire::suspect>(dr.msgs[0]) == flagged);

  SECTION("an older sender's flag alone reads as one refused path") {
    const auto d = decode(packet(1, packed([](raw_packer& pk) {
                                   pk.pack_array(5);
                                   pk.pack_uint8(5);
                                   pk.pack_uint8(1);
                                   str(pk, "a");
                                   str(pk, "b");
                                   pk.pack_true();
                                 })));
    REQUIRE_FALSE(d.ec);
    CHECK(std::get<wire::suspect>(d.msgs[0]).refused);
    CHECK(std::get<wire::suspect>(d.msgs[0]).refused_paths == 1);
  }
  SECTION("a fourth field that is not a bool is malformed") {
    const auto d = decode(packet(1, packed([](raw_packer& pk) {
                                   pk.pack_array(5);
                                   pk.pack_uint8(5);
                                   pk.pack_uint8(1);
                                   str(pk, "a");
                                   str(pk, "b");
                                   pk.pack_uint8(1);
                                 })));
    CHECK(d.ec == shoal::errc::malformed);
  }
  SECTION("a path count without the flag reads as none (it would not survive re-encoding)") {
    // Found by fuzz_wire_packet: [false, 5] decoded as 5 paths, which the
    // encoder leaves out when nothing was refused.
    const auto d = decode(packet(1, packed([](raw_packer& pk) {
                                   pk.pack_array(6);
                                   pk.pack_uint8(5);
                                   pk.pack_uint8(1);
                                   str(pk, "a");
                                   str(pk, "b");
                                   pk.pack_false();
                                   pk.pack_uint8(5);
                                 })));
    REQUIRE_FALSE(d.ec);
    const auto& s = std::get<wire::suspect>(d.msgs[0]);
    CHECK_FALSE(s.refused);
    CHECK(s.refused_paths == 0);
    const wire::message again = s;
    CHECK(decode(wire::encode_packet({&again, 1})).msgs[0] == again);
  }
  SECTION("fields after the count are skipped") {
    const auto d = decode(packet(1, packed([](raw_packer& pk) {
                                   pk.pack_array(7);
                                   pk.pack_uint8(5);
                                   pk.pack_uint8(1);
                                   str(pk, "a");
                                   str(pk, "b");
                                   pk.pack_true();
                                   pk.pack_uint8(3);
                                   str(pk, "future");
                                 })));
    REQUIRE_FALSE(d.ec);
    REQUIRE(d.msgs.size() == 1);
    CHECK(std::get<wire::suspect>(d.msgs[0]).refused_paths == 3);
  }
}

TEST_CASE("wire: optional fields of indirect pings and nacks round-trip and stay optional",
          "[unit]") {
  wire::indirect_ping ip{5, "t", v4(3, 7946), "s", v4(4, 7946), true};
  const bytes old_form = wire::encode_packet(std::vector<wire::message>{ip});
  ip.nack_timeout_ms = 400;
  const bytes new_form = wire::encode_packet(std::vector<wire::message>{ip});
  CHECK(new_form.size() == old_form.size() + 3);  // uint16 400
  const auto d_old = decode(old_form);
  const auto d_new = decode(new_form);
  REQUIRE_FALSE(d_old.ec);
  REQUIRE_FALSE(d_new.ec);
  CHECK(std::get<wire::indirect_ping>(d_old.msgs[0]).nack_timeout_ms == 0);
  CHECK(std::get<wire::indirect_ping>(d_new.msgs[0]) == ip);
  const bytes plain = wire::encode_packet(std::vector<wire::message>{wire::nack{7}});
  const bytes refused = wire::encode_packet(std::vector<wire::message>{wire::nack{7, true}});
  CHECK(refused.size() == plain.size() + 1);
  CHECK_FALSE(std::get<wire::nack>(decode(plain).msgs[0]).refused);
  CHECK(std::get<wire::nack>(decode(refused).msgs[0]).refused);
}

TEST_CASE("wire format: a stream body decodes incrementally", "[unit]") {
  const wire::format& f = wire::shoal_format();
  wire::push_pull pp;
  pp.source = "a";
  pp.members.push_back({"b", v4(2, 7946), 3, shoal::member_state::alive, {{"k", "v"}}, 1});
  const bytes body = f.encode_stream(pp);
  std::vector<wire::message> out;
  std::size_t unknown = 0;
  for (std::size_t n = 0; n < body.size(); ++n) {
    CAPTURE(n);
    const auto r = f.decode_stream({body.data(), n}, {}, out, unknown);
    REQUIRE(r.status == wire::stream_status::need_more);
    CHECK(out.empty());
  }
  const auto r = f.decode_stream(body, {}, out, unknown);
  REQUIRE(r.status == wire::stream_status::complete);
  CHECK(r.consumed == body.size());
  REQUIRE(out.size() == 1);
  CHECK(std::get<wire::push_pull>(out[0]) == pp);
  const auto junk = f.decode_stream(bytes{'G', 'E', 'T'}, {}, out, unknown);
  CHECK(junk.status == wire::stream_status::invalid);
  CHECK(junk.error == shoal::errc::bad_magic);
}

TEST_CASE("wire format: the packet builder reports the finished size", "[unit]") {
  const wire::format& f = wire::shoal_format();
  bytes out;
  wire::packet_builder b(f, out);
  CHECK(b.size() == wire::header_size);
  bytes enc;
  f.encode_message(wire::nack{5}, enc);
  CHECK(b.size_with(enc.size()) == wire::header_size + enc.size());
  b.add_encoded(enc);
  b.add(wire::ack{1, 2});
  b.finish();
  CHECK(b.count() == 2);
  CHECK(out.size() == b.size());
  CHECK(f.first_type(out) == shoal::message_type::nack);
  std::vector<wire::message> msgs;
  std::size_t unknown = 0;
  REQUIRE_FALSE(f.decode_packet(out, {}, msgs, unknown));
  CHECK(msgs == std::vector<wire::message>{wire::nack{5}, wire::ack{1, 2}});
}
