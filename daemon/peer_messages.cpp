// Encoding and bounded decoding of the daemon-to-daemon messages
// (peer_messages.hpp).
#include "peer_messages.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>

#include <msgpack.hpp>

#include "frame.hpp"

namespace shoal::daemon::peer {

namespace {

using writer = msgpack::packer<msgpack::sbuffer>;

constexpr std::string_view event_kind = "shoal.event";
constexpr std::string_view key_request_kind = "shoal.keys";
constexpr std::string_view key_reply_kind = "shoal.keys.reply";

void put_str(writer& w, std::string_view s) {
  w.pack_str(static_cast<std::uint32_t>(s.size()));
  w.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void put_bin(writer& w, const std::uint8_t* p, std::size_t n) {
  w.pack_bin(static_cast<std::uint32_t>(n));
  w.pack_bin_body(reinterpret_cast<const char*>(p), static_cast<std::uint32_t>(n));
}

void put_key(writer& w, const std::optional<encryption_key>& k) {
  if (k)
    put_bin(w, k->data(), k->size());
  else
    w.pack_nil();
}

/// Reads the elements of one array, each check returning false when the
/// element is missing or out of bounds.
class fields {
 public:
  explicit fields(const msgpack::object& a) : a_(a) {}
  std::uint32_t size() const { return a_.via.array.size; }
  bool str(std::uint32_t i, std::size_t min, std::size_t max, std::string& out) const {
    const auto* e = at(i);
    if (!e || e->type != msgpack::type::STR || e->via.str.size < min || e->via.str.size > max)
      return false;
    out.assign(e->via.str.ptr, e->via.str.size);
    return true;
  }
  bool uint(std::uint32_t i, std::uint64_t& out) const {
    const auto* e = at(i);
    if (!e || e->type != msgpack::type::POSITIVE_INTEGER) return false;
    out = e->via.u64;
    return true;
  }
  bool bin(std::uint32_t i, bytes& out) const {
    const auto* e = at(i);
    if (!e || e->type != msgpack::type::BIN) return false;
    const auto* p = reinterpret_cast<const std::uint8_t*>(e->via.bin.ptr);
    out.assign(p, p + e->via.bin.size);
    return true;
  }
  /// A key (bin of 32) or, when nil_ok, nil.
  bool key(const msgpack::object* e, bool nil_ok, std::optional<encryption_key>& out) const {
    if (!e) return false;
    if (e->type == msgpack::type::NIL && nil_ok) {
      out.reset();
      return true;
    }
    if (e->type != msgpack::type::BIN || e->via.bin.size != 32) return false;
    encryption_key k{};
    std::memcpy(k.data(), e->via.bin.ptr, k.size());
    out = k;
    return true;
  }
  const msgpack::object* at(std::uint32_t i) const {
    return i < a_.via.array.size ? &a_.via.array.ptr[i] : nullptr;
  }

 private:
  const msgpack::object& a_;
};

bool valid_op(const std::string& op) {
  return op == "list" || op == "install" || op == "use" || op == "remove";
}

}  // namespace

bytes encode(const message& m) {
  msgpack::sbuffer b;
  writer w(b);
  if (const auto* e = std::get_if<user_event>(&m)) {
    w.pack_array(7);
    put_str(w, event_kind);
    w.pack_uint64(e->id);
    put_str(w, e->origin);
    w.pack_uint64(e->ltime);
    put_str(w, e->name);
    put_bin(w, e->payload.data(), e->payload.size());
    w.pack_uint64(e->flags);
  } else if (const auto* q = std::get_if<key_request>(&m)) {
    w.pack_array(5);
    put_str(w, key_request_kind);
    w.pack_uint64(q->qid);
    put_str(w, q->origin);
    put_str(w, q->op);
    put_key(w, q->key);
  } else {
    const auto& r = std::get<key_reply>(m);
    w.pack_array(6);
    put_str(w, key_reply_kind);
    w.pack_uint64(r.qid);
    put_str(w, r.name);
    put_str(w, r.error);
    const std::size_t n = std::min(r.keys.size(), max_reply_keys);
    w.pack_array(static_cast<std::uint32_t>(n));
    for (std::size_t i = 0; i < n; ++i) put_bin(w, r.keys[i].data(), r.keys[i].size());
    put_key(w, r.primary);
  }
  const auto* p = reinterpret_cast<const std::uint8_t*>(b.data());
  return bytes(p, p + b.size());
}

decode_status decode(std::span<const std::uint8_t> data, message& out, std::size_t max_bytes,
                     std::string* kind_out) {
  if (kind_out) kind_out->clear();
  if (data.empty() || data.size() > max_bytes) return decode_status::malformed;
  msgpack::object_handle oh;
  try {
    std::size_t off = 0;
    oh = msgpack::unpack(reinterpret_cast<const char*>(data.data()), data.size(), off, nullptr,
                         nullptr, frame_unpack_limit(data.size()));
    if (off != data.size()) return decode_status::malformed;  // trailing bytes
  } catch (const std::exception&) {
    return decode_status::malformed;
  }
  const msgpack::object& o = oh.get();
  if (o.type != msgpack::type::ARRAY) return decode_status::malformed;
  const fields f(o);
  std::string kind;
  std::uint64_t id = 0;
  if (!f.str(0, 1, 64, kind)) return decode_status::malformed;
  if (kind_out) *kind_out = kind;
  if (!f.uint(1, id)) return decode_status::malformed;
  if (kind == event_kind) {
    user_event e;
    e.id = id;
    if (f.size() != 7 || !f.str(2, 1, max_name_bytes, e.origin) || !f.uint(3, e.ltime) ||
        !f.str(4, 1, max_event_name_bytes, e.name) || !f.bin(5, e.payload) || !f.uint(6, e.flags))
      return decode_status::malformed;
    out = std::move(e);
    return decode_status::ok;
  }
  if (kind == key_request_kind) {
    key_request q;
    q.qid = id;
    if (f.size() != 5 || !f.str(2, 1, max_name_bytes, q.origin) || !f.str(3, 1, 16, q.op) ||
        !valid_op(q.op) || !f.key(f.at(4), q.op == "list", q.key))
      return decode_status::malformed;
    out = std::move(q);
    return decode_status::ok;
  }
  if (kind == key_reply_kind) {
    key_reply r;
    r.qid = id;
    const auto* keys = f.at(4);
    if (f.size() != 6 || !f.str(2, 1, max_name_bytes, r.name) ||
        !f.str(3, 0, max_error_bytes, r.error) || !keys || keys->type != msgpack::type::ARRAY ||
        keys->via.array.size > max_reply_keys || !f.key(f.at(5), true, r.primary))
      return decode_status::malformed;
    for (std::uint32_t i = 0; i < keys->via.array.size; ++i) {
      std::optional<encryption_key> k;
      if (!f.key(&keys->via.array.ptr[i], false, k)) return decode_status::malformed;
      r.keys.push_back(*k);
    }
    out = std::move(r);
    return decode_status::ok;
  }
  return decode_status::unknown_kind;
}

}  // namespace shoal::daemon::peer
