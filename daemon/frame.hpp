// Framing of the shoald socket protocol (daemon/PROTOCOL.md): a 4-byte
// big-endian length (<shoal/framing.hpp>), then one msgpack map. Sans-IO:
// bytes in, frames out.
// Shared by shoald, the client library behind shoalctl, and tests.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <msgpack.hpp>

#include <shoal/framing.hpp>

namespace shoal::daemon {

inline constexpr std::uint32_t protocol_version = 1;
/// What a client should accept from the daemon at least (PROTOCOL.md).
inline constexpr std::size_t client_max_frame_bytes = 16u << 20;

/// Splits a byte stream into frames. feed() appends what arrived; next()
/// returns one complete frame at a time. A length over `max_frame` (or 0)
/// is reported once as too_large; the stream cannot be resynchronised after
/// that and the caller closes it.
class frame_reader {
 public:
  enum class status { need_more, frame, too_large };

  explicit frame_reader(std::size_t max_frame) : max_(max_frame) {}

  void feed(std::span<const std::uint8_t> bytes) {
    buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  }

  /// On `frame`, `out` holds the frame's payload (without the length).
  status next(std::vector<std::uint8_t>& out) {
    if (buf_.size() - pos_ < frame_header_size) return compact(), status::need_more;
    const std::uint8_t* p = buf_.data() + pos_;
    const std::uint32_t len =
        decode_frame_header(std::span<const std::uint8_t, frame_header_size>(p, frame_header_size));
    if (len == 0 || len > max_) return status::too_large;
    if (buf_.size() - pos_ - frame_header_size < len) return compact(), status::need_more;
    out.assign(p + frame_header_size, p + frame_header_size + len);
    pos_ += frame_header_size + len;
    return status::frame;
  }

  /// True while a frame has started but is not complete.
  bool mid_frame() const { return buf_.size() > pos_; }
  /// Bytes received and not yet returned as a frame.
  std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  void compact() {
    if (pos_ > 0) {
      buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
      pos_ = 0;
    }
  }
  std::size_t max_;
  std::vector<std::uint8_t> buf_;
  std::size_t pos_ = 0;
};

/// Prefixes a msgpack payload with its length.
inline std::vector<std::uint8_t> make_frame(const char* data, std::size_t size) {
  std::vector<std::uint8_t> f(frame_header_size + size);
  const frame_header h = encode_frame_header(static_cast<std::uint32_t>(size));
  std::copy(h.begin(), h.end(), f.begin());
  if (size > 0) std::memcpy(f.data() + frame_header_size, data, size);
  return f;
}
inline std::vector<std::uint8_t> make_frame(const msgpack::sbuffer& b) {
  return make_frame(b.data(), b.size());
}

/// Limits for unpacking an untrusted frame: nothing in it may be larger than
/// the frame itself, and nesting is shallow.
inline msgpack::unpack_limit frame_unpack_limit(std::size_t frame_size) {
  const auto n = frame_size;
  return msgpack::unpack_limit(n, n, n, n, n, 32);
}

/// Looks a string key up in a msgpack map; nullptr when `o` is no map or the
/// key is absent.
inline const msgpack::object* map_get(const msgpack::object& o, std::string_view key) {
  if (o.type != msgpack::type::MAP) return nullptr;
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    if (kv.key.type == msgpack::type::STR &&
        std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key)
      return &kv.val;
  }
  return nullptr;
}

/// The str `o` points to; nullopt when `o` is null or not a str.
inline std::optional<std::string_view> as_str(const msgpack::object* o) {
  if (!o || o->type != msgpack::type::STR) return std::nullopt;
  return std::string_view(o->via.str.ptr, o->via.str.size);
}

/// The string under `key` in the map `args`; nullopt when `args` is no map, or
/// the key is absent or not a str.
inline std::optional<std::string> get_str(const msgpack::object& args, std::string_view key) {
  const auto* o = map_get(args, key);
  if (!o || o->type != msgpack::type::STR) return std::nullopt;
  return std::string(o->via.str.ptr, o->via.str.size);
}

}  // namespace shoal::daemon
