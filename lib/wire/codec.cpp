// Encoding goes through msgpack-cxx's packer. Decoding is a small hand-written
// msgpack reader: bounds-checked, non-throwing, and allocating nothing but the
// decoded fields themselves, each only after its length has been checked
// against both the remaining bytes and the configured limits.
#include "wire/codec.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <iterator>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <msgpack.hpp>

namespace shoal::wire {

namespace {

// ------------------------------------------------------------------ encoding

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
    pack_head(pk, msg_type::indirect_ping, 6);
    pk.pack_uint32(m.seq);
    pack_str(pk, m.target);
    pack_addr(pk, m.target_addr);
    pack_str(pk, m.source);
    pack_addr(pk, m.source_addr);
    pack_bool(pk, m.want_nack);
  }
  void operator()(const ack& m) const {
    pack_head(pk, msg_type::ack, 2);
    pk.pack_uint32(m.seq);
    pk.pack_uint64(m.digest);
  }
  void operator()(const nack& m) const {
    pack_head(pk, msg_type::nack, 1);
    pk.pack_uint32(m.seq);
  }
  void operator()(const suspect& m) const {
    pack_head(pk, msg_type::suspect, m.refused ? 4 : 3);
    pk.pack_uint64(m.incarnation);
    pack_str(pk, m.node);
    pack_str(pk, m.from);
    if (m.refused) pack_bool(pk, true);
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

constexpr std::uint8_t array16 = 0xdc;

// ------------------------------------------------------------------ decoding

#define SHOAL_WIRE_TRY(expr)                              \
  do {                                                    \
    if (const errc try_e_ = (expr); try_e_ != errc::ok) { \
      return try_e_;                                      \
    }                                                     \
  } while (false)

/// Nesting depth (the packet array is depth 0) past which skip() gives up.
constexpr std::size_t max_depth = 32;

/// Smallest possible encoding of a push_pull member entry: fixarray, empty
/// fixstr name, bin8 of an IPv4 address, fixint incarnation and state,
/// empty fixmap, fixint protocol. Used only to bound a reserve().
constexpr std::size_t min_member_bytes = 1 + 1 + 8 + 1 + 1 + 1 + 1;

/// A cursor over msgpack bytes. Every read checks the remaining length
/// first; a read that runs out gives truncated, a wrong type malformed.
class reader {
 public:
  explicit reader(std::span<const std::uint8_t> data) noexcept
      : p_{data.data()}, end_{data.data() + data.size()} {}

  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

  /// Any non-negative integer, in any msgpack integer encoding.
  errc read_uint(std::uint64_t& v) noexcept {
    std::uint8_t b = 0;
    SHOAL_WIRE_TRY(read_byte(b));
    if (b <= 0x7f) {
      v = b;
      return errc::ok;
    }
    switch (b) {
      case 0xcc:
        return read_be(1, v);
      case 0xcd:
        return read_be(2, v);
      case 0xce:
        return read_be(4, v);
      case 0xcf:
        return read_be(8, v);
      case 0xd0:
        return read_non_negative(1, v);
      case 0xd1:
        return read_non_negative(2, v);
      case 0xd2:
        return read_non_negative(4, v);
      case 0xd3:
        return read_non_negative(8, v);
      default:
        return errc::malformed;
    }
  }

  errc read_bool(bool& v) noexcept {
    std::uint8_t b = 0;
    SHOAL_WIRE_TRY(read_byte(b));
    if (b == 0xc2 || b == 0xc3) {
      v = b == 0xc3;
      return errc::ok;
    }
    return errc::malformed;
  }

  /// A str; the view points into the input.
  errc read_str(std::string_view& s) noexcept {
    std::uint8_t b = 0;
    SHOAL_WIRE_TRY(read_byte(b));
    std::uint64_t n = 0;
    if (b >= 0xa0 && b <= 0xbf) {
      n = b & 0x1fu;
    } else if (b == 0xd9) {
      SHOAL_WIRE_TRY(read_be(1, n));
    } else if (b == 0xda) {
      SHOAL_WIRE_TRY(read_be(2, n));
    } else if (b == 0xdb) {
      SHOAL_WIRE_TRY(read_be(4, n));
    } else {
      return errc::malformed;
    }
    const std::uint8_t* body = nullptr;
    SHOAL_WIRE_TRY(take(n, body));
    s = {reinterpret_cast<const char*>(body), static_cast<std::size_t>(n)};
    return errc::ok;
  }

  /// A bin; the span points into the input.
  errc read_bin(std::span<const std::uint8_t>& s) noexcept {
    std::uint8_t b = 0;
    SHOAL_WIRE_TRY(read_byte(b));
    std::uint64_t n = 0;
    switch (b) {
      case 0xc4:
        SHOAL_WIRE_TRY(read_be(1, n));
        break;
      case 0xc5:
        SHOAL_WIRE_TRY(read_be(2, n));
        break;
      case 0xc6:
        SHOAL_WIRE_TRY(read_be(4, n));
        break;
      default:
        return errc::malformed;
    }
    const std::uint8_t* body = nullptr;
    SHOAL_WIRE_TRY(take(n, body));
    s = {body, static_cast<std::size_t>(n)};
    return errc::ok;
  }

  /// An array header. `n` is at most remaining(): each element takes a byte.
  errc read_array(std::size_t& n) noexcept {
    std::uint8_t b = 0;
    SHOAL_WIRE_TRY(read_byte(b));
    std::uint64_t v = 0;
    if (b >= 0x90 && b <= 0x9f) {
      v = b & 0x0fu;
    } else if (b == 0xdc) {
      SHOAL_WIRE_TRY(read_be(2, v));
    } else if (b == 0xdd) {
      SHOAL_WIRE_TRY(read_be(4, v));
    } else {
      return errc::malformed;
    }
    if (v > remaining()) return errc::truncated;
    n = static_cast<std::size_t>(v);
    return errc::ok;
  }

  /// A map header. `n` is at most remaining() / 2.
  errc read_map(std::size_t& n) noexcept {
    std::uint8_t b = 0;
    SHOAL_WIRE_TRY(read_byte(b));
    std::uint64_t v = 0;
    if (b >= 0x80 && b <= 0x8f) {
      v = b & 0x0fu;
    } else if (b == 0xde) {
      SHOAL_WIRE_TRY(read_be(2, v));
    } else if (b == 0xdf) {
      SHOAL_WIRE_TRY(read_be(4, v));
    } else {
      return errc::malformed;
    }
    if (v > remaining() / 2) return errc::truncated;
    n = static_cast<std::size_t>(v);
    return errc::ok;
  }

  /// Skips one msgpack object of any type, nested ones included, at nesting
  /// `depth`.
  errc skip(std::size_t depth) noexcept {
    if (depth > max_depth) return errc::malformed;
    std::uint8_t b = 0;
    SHOAL_WIRE_TRY(read_byte(b));
    if (b <= 0x7f || b >= 0xe0) return errc::ok;  // positive / negative fixint
    if (b <= 0x8f) return skip_objects(2 * std::uint64_t{b & 0x0fu}, depth + 1);  // fixmap
    if (b <= 0x9f) return skip_objects(b & 0x0fu, depth + 1);                     // fixarray
    if (b <= 0xbf) return skip_bytes(b & 0x1fu);                                  // fixstr
    std::uint64_t n = 0;
    switch (b) {
      case 0xc0:  // nil
      case 0xc2:  // false
      case 0xc3:  // true
        return errc::ok;
      case 0xc4:  // bin8
      case 0xd9:  // str8
        SHOAL_WIRE_TRY(read_be(1, n));
        return skip_bytes(n);
      case 0xc5:  // bin16
      case 0xda:  // str16
        SHOAL_WIRE_TRY(read_be(2, n));
        return skip_bytes(n);
      case 0xc6:  // bin32
      case 0xdb:  // str32
        SHOAL_WIRE_TRY(read_be(4, n));
        return skip_bytes(n);
      case 0xc7:  // ext8: length, type, data
        SHOAL_WIRE_TRY(read_be(1, n));
        return skip_bytes(n + 1);
      case 0xc8:  // ext16
        SHOAL_WIRE_TRY(read_be(2, n));
        return skip_bytes(n + 1);
      case 0xc9:  // ext32
        SHOAL_WIRE_TRY(read_be(4, n));
        return skip_bytes(n + 1);
      case 0xca:
        return skip_bytes(4);  // float32
      case 0xcb:
        return skip_bytes(8);  // float64
      case 0xcc:
        return skip_bytes(1);  // uint8
      case 0xcd:
        return skip_bytes(2);  // uint16
      case 0xce:
        return skip_bytes(4);  // uint32
      case 0xcf:
        return skip_bytes(8);  // uint64
      case 0xd0:
        return skip_bytes(1);  // int8
      case 0xd1:
        return skip_bytes(2);  // int16
      case 0xd2:
        return skip_bytes(4);  // int32
      case 0xd3:
        return skip_bytes(8);  // int64
      case 0xd4:
        return skip_bytes(2);  // fixext1: type, data
      case 0xd5:
        return skip_bytes(3);  // fixext2
      case 0xd6:
        return skip_bytes(5);  // fixext4
      case 0xd7:
        return skip_bytes(9);  // fixext8
      case 0xd8:
        return skip_bytes(17);  // fixext16
      case 0xdc:                // array16
        SHOAL_WIRE_TRY(read_be(2, n));
        return skip_objects(n, depth + 1);
      case 0xdd:  // array32
        SHOAL_WIRE_TRY(read_be(4, n));
        return skip_objects(n, depth + 1);
      case 0xde:  // map16
        SHOAL_WIRE_TRY(read_be(2, n));
        return skip_objects(2 * n, depth + 1);
      case 0xdf:  // map32
        SHOAL_WIRE_TRY(read_be(4, n));
        return skip_objects(2 * n, depth + 1);
      default:  // 0xc1: never used
        return errc::malformed;
    }
  }

  /// Skips `n` objects at nesting `depth`.
  errc skip_objects(std::uint64_t n, std::size_t depth) noexcept {
    if (n > remaining()) return errc::truncated;  // each object takes a byte
    for (std::uint64_t i = 0; i < n; ++i) SHOAL_WIRE_TRY(skip(depth));
    return errc::ok;
  }

 private:
  errc read_byte(std::uint8_t& b) noexcept {
    if (p_ == end_) return errc::truncated;
    b = *p_++;
    return errc::ok;
  }

  /// `n` (1, 2, 4 or 8) bytes as a big-endian unsigned integer.
  errc read_be(std::size_t n, std::uint64_t& v) noexcept {
    if (remaining() < n) return errc::truncated;
    std::uint64_t x = 0;
    for (std::size_t i = 0; i < n; ++i) x = (x << 8) | p_[i];
    p_ += n;
    v = x;
    return errc::ok;
  }

  /// A two's-complement signed integer of `n` bytes that must not be negative.
  errc read_non_negative(std::size_t n, std::uint64_t& v) noexcept {
    SHOAL_WIRE_TRY(read_be(n, v));
    const std::uint64_t sign = std::uint64_t{1} << (8 * n - 1);
    return (v & sign) != 0 ? errc::malformed : errc::ok;
  }

  errc take(std::uint64_t n, const std::uint8_t*& body) noexcept {
    if (n > remaining()) return errc::truncated;
    body = p_;
    p_ += n;
    return errc::ok;
  }

  errc skip_bytes(std::uint64_t n) noexcept {
    const std::uint8_t* ignored = nullptr;
    return take(n, ignored);
  }

  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

/// Number of fields after the type number each message must have.
template <class T>
inline constexpr std::uint32_t field_count = 0;
template <>
inline constexpr std::uint32_t field_count<ping> = 4;
template <>
inline constexpr std::uint32_t field_count<indirect_ping> = 6;
template <>
inline constexpr std::uint32_t field_count<ack> = 2;
template <>
inline constexpr std::uint32_t field_count<nack> = 1;
template <>
inline constexpr std::uint32_t field_count<suspect> = 3;
template <>
inline constexpr std::uint32_t field_count<alive> = 5;
template <>
inline constexpr std::uint32_t field_count<dead> = 3;
template <>
inline constexpr std::uint32_t field_count<left> = 2;
template <>
inline constexpr std::uint32_t field_count<user> = 1;
template <>
inline constexpr std::uint32_t field_count<push_pull> = 4;

constexpr std::size_t member_field_count = 6;

// Depths: the packet array is 0, a message array 1, its fields 2, a
// push_pull member array 3, its fields 4.
constexpr std::size_t field_depth = 2;
constexpr std::size_t member_field_depth = 4;

class decoder {
 public:
  decoder(std::span<const std::uint8_t> body, const limits& lim, decode_counters& counters)
      : r_{body}, lim_{lim}, counters_{counters} {}

  std::size_t remaining() const noexcept { return r_.remaining(); }

  /// Decodes one message and appends it to `out`, or skips it if its type is
  /// unknown. On error nothing is appended.
  errc next(std::vector<message>& out) {
    std::size_t n = 0;
    SHOAL_WIRE_TRY(r_.read_array(n));
    if (n == 0) return errc::malformed;
    std::uint64_t type = 0;
    SHOAL_WIRE_TRY(r_.read_uint(type));
    const std::size_t fields = n - 1;
    switch (type) {
      case static_cast<std::uint64_t>(msg_type::ping):
        return one<ping>(fields, out);
      case static_cast<std::uint64_t>(msg_type::indirect_ping):
        return one<indirect_ping>(fields, out);
      case static_cast<std::uint64_t>(msg_type::ack):
        return one<ack>(fields, out);
      case static_cast<std::uint64_t>(msg_type::nack):
        return one<nack>(fields, out);
      case static_cast<std::uint64_t>(msg_type::suspect):
        return one<suspect>(fields, out);
      case static_cast<std::uint64_t>(msg_type::alive):
        return one<alive>(fields, out);
      case static_cast<std::uint64_t>(msg_type::dead):
        return one<dead>(fields, out);
      case static_cast<std::uint64_t>(msg_type::left):
        return one<left>(fields, out);
      case static_cast<std::uint64_t>(msg_type::user):
        return one<user>(fields, out);
      case static_cast<std::uint64_t>(msg_type::push_pull):
        return one<push_pull>(fields, out);
      default:
        SHOAL_WIRE_TRY(r_.skip_objects(fields, field_depth));
        ++counters_.unknown_type;
        return errc::ok;
    }
  }

 private:
  template <class T>
  errc one(std::size_t fields, std::vector<message>& out) {
    if (fields < field_count<T>) return errc::malformed;
    auto& m = std::get<T>(out.emplace_back(std::in_place_type<T>));
    errc e = read(m);
    std::size_t optional = 0;
    if constexpr (std::is_same_v<T, suspect>) {
      if (e == errc::ok && fields > field_count<T>) {
        e = r_.read_bool(m.refused);
        optional = 1;
      }
    }
    if (e == errc::ok) e = r_.skip_objects(fields - field_count<T> - optional, field_depth);
    if (e != errc::ok) out.pop_back();
    return e;
  }

  // -- fields --

  template <class T>
  errc uint(T& v) noexcept {
    static_assert(std::is_unsigned_v<T>);
    std::uint64_t x = 0;
    SHOAL_WIRE_TRY(r_.read_uint(x));
    if (x > std::numeric_limits<T>::max()) return errc::malformed;
    v = static_cast<T>(x);
    return errc::ok;
  }

  errc name(std::string& s) {
    std::string_view v;
    SHOAL_WIRE_TRY(r_.read_str(v));
    if (v.size() > lim_.max_name_length) return errc::field_too_long;
    s.assign(v);
    return errc::ok;
  }

  errc payload(std::vector<std::uint8_t>& p) {
    std::span<const std::uint8_t> v;
    SHOAL_WIRE_TRY(r_.read_bin(v));
    if (v.size() > lim_.max_payload_bytes) return errc::field_too_long;
    p.assign(v.begin(), v.end());
    return errc::ok;
  }

  errc addr(address& a) noexcept {
    std::span<const std::uint8_t> v;
    SHOAL_WIRE_TRY(r_.read_bin(v));
    if (v.size() != 6 && v.size() != 18) return errc::malformed;
    const std::size_t ip_len = v.size() - 2;
    const auto port = static_cast<std::uint16_t>((v[ip_len] << 8) | v[ip_len + 1]);
    const auto parsed = address::from_bytes(v.first(ip_len), port);
    if (!parsed) return errc::malformed;
    a = *parsed;
    return errc::ok;
  }

  errc tags(tag_map& t) {
    std::size_t n = 0;
    SHOAL_WIRE_TRY(r_.read_map(n));
    std::size_t total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::string_view key;
      std::string_view value;
      SHOAL_WIRE_TRY(r_.read_str(key));
      SHOAL_WIRE_TRY(r_.read_str(value));
      total += key.size() + value.size();
      if (total > lim_.max_tag_bytes) return errc::field_too_long;
      // Encoders write keys in order, so the hint is usually right.
      if (t.empty() || std::string_view{std::prev(t.end())->first} < key) {
        t.emplace_hint(t.end(), key, value);
      } else if (!t.try_emplace(std::string{key}, value).second) {
        return errc::malformed;  // duplicate key
      }
    }
    return errc::ok;
  }

  errc state(member_state& s) noexcept {
    std::uint8_t v = 0;
    SHOAL_WIRE_TRY(uint(v));
    if (v > static_cast<std::uint8_t>(member_state::left)) return errc::malformed;
    s = static_cast<member_state>(v);
    return errc::ok;
  }

  // -- messages: the fields after the type number, in codec.hpp's order --

  errc read(ping& m) {
    SHOAL_WIRE_TRY(uint(m.seq));
    SHOAL_WIRE_TRY(name(m.target));
    SHOAL_WIRE_TRY(name(m.source));
    return addr(m.source_addr);
  }
  errc read(indirect_ping& m) {
    SHOAL_WIRE_TRY(uint(m.seq));
    SHOAL_WIRE_TRY(name(m.target));
    SHOAL_WIRE_TRY(addr(m.target_addr));
    SHOAL_WIRE_TRY(name(m.source));
    SHOAL_WIRE_TRY(addr(m.source_addr));
    return r_.read_bool(m.want_nack);
  }
  errc read(ack& m) {
    SHOAL_WIRE_TRY(uint(m.seq));
    return uint(m.digest);
  }
  errc read(nack& m) { return uint(m.seq); }
  errc read(suspect& m) {
    SHOAL_WIRE_TRY(uint(m.incarnation));
    SHOAL_WIRE_TRY(name(m.node));
    return name(m.from);
  }
  errc read(alive& m) {
    SHOAL_WIRE_TRY(uint(m.incarnation));
    SHOAL_WIRE_TRY(name(m.node));
    SHOAL_WIRE_TRY(addr(m.addr));
    SHOAL_WIRE_TRY(tags(m.tags));
    return uint(m.protocol);
  }
  errc read(dead& m) {
    SHOAL_WIRE_TRY(uint(m.incarnation));
    SHOAL_WIRE_TRY(name(m.node));
    return name(m.from);
  }
  errc read(left& m) {
    SHOAL_WIRE_TRY(uint(m.incarnation));
    return name(m.node);
  }
  errc read(user& m) { return payload(m.payload); }
  errc read(push_pull& m) {
    SHOAL_WIRE_TRY(r_.read_bool(m.join));
    SHOAL_WIRE_TRY(name(m.source));
    std::size_t n = 0;
    SHOAL_WIRE_TRY(r_.read_array(n));
    if (n > lim_.max_members) return errc::too_large;
    m.members.reserve(std::min(n, r_.remaining() / min_member_bytes));
    for (std::size_t i = 0; i < n; ++i) {
      SHOAL_WIRE_TRY(read(m.members.emplace_back()));
    }
    return payload(m.user_state);
  }
  errc read(member_state_entry& e) {
    std::size_t n = 0;
    SHOAL_WIRE_TRY(r_.read_array(n));
    if (n < member_field_count) return errc::malformed;
    SHOAL_WIRE_TRY(name(e.name));
    SHOAL_WIRE_TRY(addr(e.addr));
    SHOAL_WIRE_TRY(uint(e.incarnation));
    SHOAL_WIRE_TRY(state(e.state));
    SHOAL_WIRE_TRY(tags(e.tags));
    SHOAL_WIRE_TRY(uint(e.protocol));
    return r_.skip_objects(n - member_field_count, member_field_depth);
  }

  reader r_;
  const limits& lim_;
  decode_counters& counters_;
};

errc decode_all(std::span<const std::uint8_t> data, const limits& lim, std::vector<message>& out,
                decode_counters& counters) {
  if (data.size() > lim.max_packet_bytes) return errc::too_large;
  // The header is checked byte by byte so that any prefix of a good packet
  // reads as truncated, and junk is named by its first bad byte.
  if (data.empty()) return errc::truncated;
  if (data[0] != magic) return errc::bad_magic;
  if (data.size() < 2) return errc::truncated;
  if (data[1] != version) return errc::unsupported_version;
  if (data.size() < 3) return errc::truncated;
  if (data[2] != 0) return errc::unsupported_flags;
  if (data.size() < 4) return errc::truncated;
  if (data[3] != array16) return errc::malformed;
  if (data.size() < header_size) return errc::truncated;
  const std::size_t count = (static_cast<std::size_t>(data[4]) << 8) | data[5];
  if (count > lim.max_messages) return errc::too_many_messages;

  decoder d{data.subspan(header_size), lim, counters};
  if (count > d.remaining()) return errc::truncated;  // each message takes a byte
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) SHOAL_WIRE_TRY(d.next(out));
  if (d.remaining() != 0) return errc::malformed;
  return errc::ok;
}

void count_failure(errc e, decode_counters& c) noexcept {
  switch (e) {
    case errc::truncated:
      ++c.truncated;
      break;
    case errc::bad_magic:
      ++c.bad_magic;
      break;
    case errc::unsupported_version:
      ++c.unsupported_version;
      break;
    case errc::unsupported_flags:
      ++c.unsupported_flags;
      break;
    case errc::malformed:
      ++c.malformed;
      break;
    case errc::too_large:
      ++c.too_large;
      break;
    case errc::too_many_messages:
      ++c.too_many_messages;
      break;
    case errc::field_too_long:
      ++c.field_too_long;
      break;
    default:
      ++c.malformed;
      break;
  }
}

#undef SHOAL_WIRE_TRY

}  // namespace

// ------------------------------------------------------------------ public

void encode_message(const message& m, std::vector<std::uint8_t>& out) {
  vector_sink sink{out};
  packer pk{sink};
  std::visit(encoder{pk}, m);
}

std::uint8_t encoded_type(std::span<const std::uint8_t> encoded) noexcept {
  if (encoded.size() < 2 || (encoded[0] & 0xf0u) != 0x90u || encoded[1] > 0x7fu) return 0;
  return encoded[1];
}

packet_builder::packet_builder(std::vector<std::uint8_t>& out, std::span<std::uint64_t> type_counts)
    : out_{out}, type_counts_{type_counts} {
  out_.clear();
  out_.insert(out_.end(),
              {magic, version, std::uint8_t{0}, array16, std::uint8_t{0}, std::uint8_t{0}});
}

void packet_builder::add_encoded(std::span<const std::uint8_t> encoded) {
  assert(count_ < 0xffff);
  out_.insert(out_.end(), encoded.begin(), encoded.end());
  ++count_;
  count_type(encoded_type(encoded));
}

void packet_builder::add(const message& m) {
  assert(count_ < 0xffff);
  encode_message(m, out_);
  ++count_;
  count_type(static_cast<std::uint8_t>(type_of(m)));
}

void packet_builder::finish() {
  assert(count_ <= 0xffff);
  out_[4] = static_cast<std::uint8_t>(count_ >> 8);
  out_[5] = static_cast<std::uint8_t>(count_ & 0xffu);
}

std::vector<std::uint8_t> encode_packet(std::span<const message> msgs) {
  std::vector<std::uint8_t> out;
  out.reserve(header_size + 64 * msgs.size());
  packet_builder b{out};
  for (const auto& m : msgs) b.add(m);
  b.finish();
  return out;
}

std::error_code decode_packet(std::span<const std::uint8_t> data, const limits& lim,
                              std::vector<message>& out, decode_counters& counters) {
  errc e = errc::ok;
  try {
    out.clear();
    e = decode_all(data, lim, out, counters);
  } catch (const std::bad_alloc&) {
    e = errc::too_large;
  } catch (...) {
    e = errc::malformed;
  }
  if (e == errc::ok) return {};
  count_failure(e, counters);
  return e;
}

}  // namespace shoal::wire
