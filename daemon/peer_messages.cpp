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
constexpr std::string_view query_kind = "shoal.query";
constexpr std::string_view query_reply_kind = "shoal.query.reply";
constexpr std::string_view prune_kind = "shoal.prune";

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
  } else if (const auto* q = std::get_if<query>(&m)) {
    w.pack_array(10);
    put_str(w, query_kind);
    w.pack_uint64(q->qid);
    put_str(w, q->origin);
    w.pack_uint64(q->ltime);
    put_str(w, q->name);
    put_bin(w, q->payload.data(), q->payload.size());
    w.pack_uint64(q->flags);
    w.pack_uint64(q->timeout_ms);
    put_str(w, q->node_pattern);
    w.pack_array(static_cast<std::uint32_t>(q->tag_patterns.size()));
    for (const auto& [tag, pattern] : q->tag_patterns) {
      w.pack_array(2);
      put_str(w, tag);
      put_str(w, pattern);
    }
  } else if (const auto* pr = std::get_if<prune>(&m)) {
    w.pack_array(4);
    put_str(w, prune_kind);
    w.pack_uint64(pr->id);
    put_str(w, pr->origin);
    put_str(w, pr->member);
  } else {
    const auto& r = std::get<query_reply>(m);
    w.pack_array(5);
    put_str(w, query_reply_kind);
    w.pack_uint64(r.qid);
    put_str(w, r.from);
    w.pack_uint64(static_cast<std::uint64_t>(r.kind));
    put_bin(w, r.payload.data(), r.payload.size());
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
  if (kind == query_kind) {
    query q;
    q.qid = id;
    const auto* tags = f.at(9);
    if (f.size() != 10 || !f.str(2, 1, max_name_bytes, q.origin) || !f.uint(3, q.ltime) ||
        !f.str(4, 1, max_event_name_bytes, q.name) || !f.bin(5, q.payload) || !f.uint(6, q.flags) ||
        !f.uint(7, q.timeout_ms) || !f.str(8, 0, max_pattern_bytes, q.node_pattern) || !tags ||
        tags->type != msgpack::type::ARRAY || tags->via.array.size > max_tag_filters)
      return decode_status::malformed;
    for (std::uint32_t i = 0; i < tags->via.array.size; ++i) {
      const auto& pair = tags->via.array.ptr[i];
      if (pair.type != msgpack::type::ARRAY) return decode_status::malformed;
      const fields t(pair);
      std::string tag, pattern;
      if (t.size() != 2 || !t.str(0, 1, max_tag_key_bytes, tag) ||
          !t.str(1, 0, max_pattern_bytes, pattern))
        return decode_status::malformed;
      q.tag_patterns.emplace_back(std::move(tag), std::move(pattern));
    }
    out = std::move(q);
    return decode_status::ok;
  }
  if (kind == query_reply_kind) {
    query_reply r;
    r.qid = id;
    std::uint64_t k = 0;
    if (f.size() != 5 || !f.str(2, 1, max_name_bytes, r.from) || !f.uint(3, k) || k > 1 ||
        !f.bin(4, r.payload))
      return decode_status::malformed;
    r.kind = static_cast<reply_kind>(k);
    out = std::move(r);
    return decode_status::ok;
  }
  if (kind == prune_kind) {
    prune pr;
    pr.id = id;
    if (f.size() != 4 || !f.str(2, 1, max_name_bytes, pr.origin) ||
        !f.str(3, 1, max_name_bytes, pr.member))
      return decode_status::malformed;
    out = std::move(pr);
    return decode_status::ok;
  }
  return decode_status::unknown_kind;
}

namespace {

/// Unpacks one whole msgpack array of bounded size; nullopt otherwise.
std::optional<msgpack::object_handle> unpack_array(std::span<const std::uint8_t> data) {
  if (data.empty() || data.size() > 65536) return std::nullopt;
  try {
    std::size_t off = 0;
    auto oh = msgpack::unpack(reinterpret_cast<const char*>(data.data()), data.size(), off, nullptr,
                              nullptr, frame_unpack_limit(data.size()));
    if (off != data.size() || oh.get().type != msgpack::type::ARRAY) return std::nullopt;
    return oh;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bytes to_bytes(const msgpack::sbuffer& b) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(b.data());
  return bytes(p, p + b.size());
}

}  // namespace

bytes encode(const key_op& k) {
  msgpack::sbuffer b;
  writer w(b);
  w.pack_array(2);
  put_str(w, k.op);
  put_key(w, k.key);
  return to_bytes(b);
}

bytes encode(const key_result& r) {
  msgpack::sbuffer b;
  writer w(b);
  w.pack_array(3);
  put_str(w, r.error);
  const std::size_t n = std::min(r.keys.size(), max_reply_keys);
  w.pack_array(static_cast<std::uint32_t>(n));
  for (std::size_t i = 0; i < n; ++i) put_bin(w, r.keys[i].data(), r.keys[i].size());
  put_key(w, r.primary);
  return to_bytes(b);
}

bytes encode(const event_state& st) {
  // Newest last; drop from the front until both bounds hold.
  std::size_t first = st.events.size() > max_state_events ? st.events.size() - max_state_events : 0;
  for (;;) {
    msgpack::sbuffer b;
    writer w(b);
    w.pack_array(4);
    put_str(w, "shoal.state");
    w.pack_uint64(1);
    w.pack_uint64(st.ltime);
    w.pack_array(static_cast<std::uint32_t>(st.events.size() - first));
    for (std::size_t i = first; i < st.events.size(); ++i) {
      const auto& e = st.events[i];
      w.pack_array(6);
      w.pack_uint64(e.id);
      put_str(w, e.origin);
      w.pack_uint64(e.ltime);
      put_str(w, e.name);
      put_bin(w, e.payload.data(), e.payload.size());
      w.pack_uint64(e.flags);
    }
    if (b.size() <= max_state_bytes || first == st.events.size()) return to_bytes(b);
    ++first;
  }
}

bool decode(std::span<const std::uint8_t> data, event_state& out) {
  if (data.size() > max_state_bytes) return false;
  const auto oh = unpack_array(data);
  if (!oh) return false;
  const fields f(oh->get());
  std::string kind;
  std::uint64_t version = 0;
  event_state st;
  const auto* events = f.at(3);
  if (f.size() != 4 || !f.str(0, 1, 64, kind) || kind != "shoal.state" || !f.uint(1, version) ||
      version != 1 || !f.uint(2, st.ltime) || !events || events->type != msgpack::type::ARRAY ||
      events->via.array.size > max_state_events)
    return false;
  for (std::uint32_t i = 0; i < events->via.array.size; ++i) {
    const auto& a = events->via.array.ptr[i];
    if (a.type != msgpack::type::ARRAY) return false;
    const fields e(a);
    user_event ev;
    if (e.size() != 6 || !e.uint(0, ev.id) || !e.str(1, 1, max_name_bytes, ev.origin) ||
        !e.uint(2, ev.ltime) || !e.str(3, 1, max_event_name_bytes, ev.name) ||
        !e.bin(4, ev.payload) || !e.uint(5, ev.flags))
      return false;
    st.events.push_back(std::move(ev));
  }
  out = std::move(st);
  return true;
}

bool decode(std::span<const std::uint8_t> data, key_op& out) {
  const auto oh = unpack_array(data);
  if (!oh) return false;
  const fields f(oh->get());
  key_op k;
  if (f.size() != 2 || !f.str(0, 1, 16, k.op) || !valid_op(k.op) ||
      !f.key(f.at(1), k.op == "list", k.key))
    return false;
  out = std::move(k);
  return true;
}

bool decode(std::span<const std::uint8_t> data, key_result& out) {
  const auto oh = unpack_array(data);
  if (!oh) return false;
  const fields f(oh->get());
  key_result r;
  const auto* keys = f.at(1);
  if (f.size() != 3 || !f.str(0, 0, max_error_bytes, r.error) || !keys ||
      keys->type != msgpack::type::ARRAY || keys->via.array.size > max_reply_keys ||
      !f.key(f.at(2), true, r.primary))
    return false;
  for (std::uint32_t i = 0; i < keys->via.array.size; ++i) {
    std::optional<encryption_key> k;
    if (!f.key(&keys->via.array.ptr[i], false, k)) return false;
    r.keys.push_back(*k);
  }
  out = std::move(r);
  return true;
}

}  // namespace shoal::daemon::peer
