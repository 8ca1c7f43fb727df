// Decoding of shoal's format (codec.hpp) with the bounded msgpack reader:
// non-throwing, allocating nothing but the decoded fields themselves, each
// only after its length was checked against the remaining bytes and the
// configured limits.
#include <algorithm>
#include <iterator>
#include <limits>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "wire/codec.hpp"
#include "wire/msgpack_reader.hpp"

namespace shoal::wire {

namespace {

/// Smallest possible encoding of a push_pull member entry: fixarray, empty
/// fixstr name, bin8 of an IPv4 address, fixint incarnation and state,
/// empty fixmap, fixint protocol. Used only to bound a reserve().
constexpr std::size_t min_member_bytes = 1 + 1 + 8 + 1 + 1 + 1 + 1;

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
template <>
inline constexpr std::uint32_t field_count<broadcast> = 3;

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
      case static_cast<std::uint64_t>(msg_type::broadcast):
        return one<broadcast>(fields, out);
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
    // Optional fields (codec.hpp) that are present, then any later ones this
    // build does not know, skipped.
    std::size_t optional = 0;
    if (e == errc::ok) e = read_optional(m, fields - field_count<T>, optional);
    if (e == errc::ok) e = r_.skip_objects(fields - field_count<T> - optional, field_depth);
    if (e != errc::ok) out.pop_back();
    return e;
  }

  // -- optional trailing fields: read those present (`extra` of them are),
  // counting them in `used` --

  template <class T>
  errc read_optional(T&, std::size_t, std::size_t&) noexcept {
    return errc::ok;
  }
  errc read_optional(indirect_ping& m, std::size_t extra, std::size_t& used) noexcept {
    if (extra < 1) return errc::ok;
    used = 1;
    return uint(m.nack_timeout_ms);
  }
  errc read_optional(nack& m, std::size_t extra, std::size_t& used) noexcept {
    if (extra < 1) return errc::ok;
    used = 1;
    return r_.read_bool(m.refused);
  }
  errc read_optional(suspect& m, std::size_t extra, std::size_t& used) noexcept {
    if (extra < 1) return errc::ok;
    used = 1;
    SHOAL_WIRE_TRY(r_.read_bool(m.refused));
    if (extra < 2) {
      m.refused_paths = m.refused ? 1 : 0;  // an older sender: one path, its own
      return errc::ok;
    }
    used = 2;
    SHOAL_WIRE_TRY(uint(m.refused_paths));
    if (!m.refused) m.refused_paths = 0;  // paths count only with a refusal (as encoded)
    return errc::ok;
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
    if (n > lim_.max_tags) return errc::field_too_long;
    std::size_t total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::string_view key;
      std::string_view value;
      SHOAL_WIRE_TRY(r_.read_str(key));
      SHOAL_WIRE_TRY(r_.read_str(value));
      total += key.size() + value.size() + tag_overhead_bytes;  // as shoal::tag_bytes()
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
  errc read(broadcast& m) {
    SHOAL_WIRE_TRY(uint(m.id));
    SHOAL_WIRE_TRY(name(m.origin));
    return payload(m.payload);
  }
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

  msgpack_reader r_;
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

}  // namespace

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
  return e;
}

}  // namespace shoal::wire
