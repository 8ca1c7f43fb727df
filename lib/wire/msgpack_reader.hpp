// A bounded, zero-copy msgpack reader: every read checks the remaining length
// first (a read that runs out gives errc::truncated, a wrong type
// errc::malformed), strings and byte arrays are views into the input, and
// nothing is allocated. Nesting is bounded (max_depth) so hostile input
// cannot recurse deeply. Used by shoal's decoder; a second dialect's decoder
// may use it too. Tested on its own in tests/unit/test_msgpack_reader.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <shoal/errc.hpp>

/// Returns the errc of `expr` from the enclosing function unless it is ok.
#define SHOAL_WIRE_TRY(expr)                                                \
  do {                                                                      \
    if (const ::shoal::errc try_e_ = (expr); try_e_ != ::shoal::errc::ok) { \
      return try_e_;                                                        \
    }                                                                       \
  } while (false)

namespace shoal::wire {

/// Nesting depth (the packet array is depth 0) past which skip() gives up.
constexpr std::size_t max_depth = 32;

/// A cursor over msgpack bytes. Every read checks the remaining length
/// first; a read that runs out gives truncated, a wrong type malformed.
class msgpack_reader {
 public:
  explicit msgpack_reader(std::span<const std::uint8_t> data) noexcept
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

}  // namespace shoal::wire
