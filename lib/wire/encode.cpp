// Encoding of shoal's format (codec.hpp) through msgpack-cxx's packer.
#include <array>
#include <cassert>
#include <cstring>
#include <limits>
#include <string_view>

#include <msgpack.hpp>

#include "wire/codec.hpp"

namespace shoal::wire {

namespace {

/// The stream msgpack::packer writes to: appends to a byte vector.
struct vector_sink {
  std::vector<std::uint8_t>& out;

  void write(const char* data, std::size_t n) {
    if (n == 0) return;
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
    out.insert(out.end(), bytes, bytes + n);
  }
};

using packer = msgpack::packer<vector_sink>;

std::uint32_t len32(std::size_t n) noexcept {
  assert(n <= std::numeric_limits<std::uint32_t>::max());
  return static_cast<std::uint32_t>(n);
}

void pack_str(packer& pk, std::string_view s) {
  const auto n = len32(s.size());
  pk.pack_str(n);
  pk.pack_str_body(s.data(), n);
}

void pack_bin(packer& pk, std::span<const std::uint8_t> b) {
  const auto n = len32(b.size());
  pk.pack_bin(n);
  pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), n);
}

void pack_bool(packer& pk, bool b) {
  if (b) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
}

/// bin of ip bytes (4 or 16) followed by the port, big-endian.
void pack_addr(packer& pk, const address& a) {
  std::array<std::uint8_t, 18> buf{};
  const auto ip = a.ip();
  std::memcpy(buf.data(), ip.data(), ip.size());
  buf[ip.size()] = static_cast<std::uint8_t>(a.port() >> 8);
  buf[ip.size() + 1] = static_cast<std::uint8_t>(a.port() & 0xffu);
  pack_bin(pk, {buf.data(), ip.size() + 2});
}

void pack_tags(packer& pk, const tag_map& tags) {
  pk.pack_map(len32(tags.size()));
  for (const auto& [key, value] : tags) {
    pack_str(pk, key);
    pack_str(pk, value);
  }
}

/// The array header and type number that open every message.
void pack_head(packer& pk, msg_type t, std::uint32_t fields) {
  pk.pack_array(fields + 1);
  pk.pack_uint8(static_cast<std::uint8_t>(t));
}

struct encoder {
  packer& pk;

  void operator()(const ping& m) const {
    pack_head(pk, msg_type::ping, 4);
    pk.pack_uint32(m.seq);
    pack_str(pk, m.target);
    pack_str(pk, m.source);
    pack_addr(pk, m.source_addr);
  }
  void operator()(const indirect_ping& m) const {
    pack_head(pk, msg_type::indirect_ping, m.nack_timeout_ms > 0 ? 7 : 6);
    pk.pack_uint32(m.seq);
    pack_str(pk, m.target);
    pack_addr(pk, m.target_addr);
    pack_str(pk, m.source);
    pack_addr(pk, m.source_addr);
    pack_bool(pk, m.want_nack);
    if (m.nack_timeout_ms > 0) pk.pack_uint32(m.nack_timeout_ms);
  }
  void operator()(const ack& m) const {
    pack_head(pk, msg_type::ack, 2);
    pk.pack_uint32(m.seq);
    pk.pack_uint64(m.digest);
  }
  void operator()(const nack& m) const {
    pack_head(pk, msg_type::nack, m.refused ? 2 : 1);
    pk.pack_uint32(m.seq);
    if (m.refused) pack_bool(pk, true);
  }
  void operator()(const suspect& m) const {
    pack_head(pk, msg_type::suspect, m.refused ? 5 : 3);
    pk.pack_uint64(m.incarnation);
    pack_str(pk, m.node);
    pack_str(pk, m.from);
    if (m.refused) {
      pack_bool(pk, true);
      pk.pack_uint32(m.refused_paths);
    }
  }
  void operator()(const alive& m) const {
    pack_head(pk, msg_type::alive, 5);
    pk.pack_uint64(m.incarnation);
    pack_str(pk, m.node);
    pack_addr(pk, m.addr);
    pack_tags(pk, m.tags);
    pk.pack_uint8(m.protocol);
  }
  void operator()(const dead& m) const {
    pack_head(pk, msg_type::dead, 3);
    pk.pack_uint64(m.incarnation);
    pack_str(pk, m.node);
    pack_str(pk, m.from);
  }
  void operator()(const left& m) const {
    pack_head(pk, msg_type::left, 2);
    pk.pack_uint64(m.incarnation);
    pack_str(pk, m.node);
  }
  void operator()(const user& m) const {
    pack_head(pk, msg_type::user, 1);
    pack_bin(pk, m.payload);
  }
  void operator()(const broadcast& m) const {
    pack_head(pk, msg_type::broadcast, 3);
    pk.pack_uint64(m.id);
    pack_str(pk, m.origin);
    pack_bin(pk, m.payload);
  }
  void operator()(const push_pull& m) const {
    pack_head(pk, msg_type::push_pull, 4);
    pack_bool(pk, m.join);
    pack_str(pk, m.source);
    pk.pack_array(len32(m.members.size()));
    for (const auto& e : m.members) {
      pk.pack_array(6);
      pack_str(pk, e.name);
      pack_addr(pk, e.addr);
      pk.pack_uint64(e.incarnation);
      pk.pack_uint8(static_cast<std::uint8_t>(e.state));
      pack_tags(pk, e.tags);
      pk.pack_uint8(e.protocol);
    }
    pack_bin(pk, m.user_state);
  }
};

}  // namespace

void encode_message(const message& m, std::vector<std::uint8_t>& out) {
  vector_sink sink{out};
  packer pk{sink};
  std::visit(encoder{pk}, m);
}

std::uint8_t encoded_type(std::span<const std::uint8_t> encoded) noexcept {
  if (encoded.size() < 2 || (encoded[0] & 0xf0u) != 0x90u || encoded[1] > 0x7fu) return 0;
  return encoded[1];
}

std::uint8_t first_type(std::span<const std::uint8_t> packet) noexcept {
  if (packet.size() < header_size + 2) return 0;
  return encoded_type(packet.subspan(header_size));
}

std::vector<std::uint8_t> encode_packet(std::span<const message> msgs) {
  std::vector<std::uint8_t> out;
  out.reserve(header_size + 64 * msgs.size());
  packet_builder b{out};
  for (const auto& m : msgs) b.add(m);
  b.finish();
  return out;
}

}  // namespace shoal::wire
