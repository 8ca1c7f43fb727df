#include "io/compress.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

#include <zlib.h>

namespace shoal::io {

namespace {

// Raw deflate (negative window bits), 32 KiB window: a receiver accepts
// any valid raw stream. memLevel 5 keeps the hash table at 8 KiB, which
// deflateReset() clears on every packet; on packets of a few hundred bytes
// the default (64 KiB) compresses no better.
constexpr int window_bits = 15;
constexpr int mem_level = 5;
constexpr int level = 1;
constexpr std::size_t max_idle_contexts = 8;

bool fits_uint(std::size_t n) {
  return n <= std::numeric_limits<uInt>::max();
}

struct deflater {
  deflater() {
    ok = deflateInit2(&s, level, Z_DEFLATED, -window_bits, mem_level, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~deflater() {
    if (ok) deflateEnd(&s);
  }
  deflater(const deflater&) = delete;
  deflater& operator=(const deflater&) = delete;
  bool reset() { return ok && deflateReset(&s) == Z_OK; }
  z_stream s{};
  bool ok = false;
};

struct inflater {
  inflater() { ok = inflateInit2(&s, -window_bits) == Z_OK; }
  ~inflater() {
    if (ok) inflateEnd(&s);
  }
  inflater(const inflater&) = delete;
  inflater& operator=(const inflater&) = delete;
  bool reset() { return ok && inflateReset(&s) == Z_OK; }
  z_stream s{};
  bool ok = false;
};

/// Idle contexts, lent out for one call. Never destroyed (a node thread may
/// still compress while static objects are torn down at exit).
template <class T>
class context_pool {
 public:
  static context_pool& get() {
    static auto* const p = new context_pool;
    return *p;
  }

  /// A context for the caller alone, handed back when the lease dies.
  class lease {
   public:
    explicit lease(context_pool& p) : pool_(p), ctx_(p.take()) {}
    ~lease() { pool_.give(std::move(ctx_)); }
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    T& operator*() const { return *ctx_; }
    T* operator->() const { return ctx_.get(); }

   private:
    context_pool& pool_;
    std::unique_ptr<T> ctx_;
  };

 private:
  std::unique_ptr<T> take() {
    {
      std::lock_guard lock(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    return std::make_unique<T>();
  }
  void give(std::unique_ptr<T> c) {
    std::lock_guard lock(mu_);
    if (idle_.size() < max_idle_contexts) idle_.push_back(std::move(c));
  }

  std::mutex mu_;
  std::vector<std::unique_ptr<T>> idle_;
};

}  // namespace

std::optional<bytes> deflate_below(std::span<const std::uint8_t> in, std::size_t below) {
  if (in.empty() || below <= 1 || !fits_uint(in.size()) || !fits_uint(below)) return std::nullopt;
  typename context_pool<deflater>::lease d(context_pool<deflater>::get());
  if (!d->reset()) return std::nullopt;
  // One byte of slack: deflate reports the end only when it had room to
  // spare, so a result of below - 1 bytes must fit with a byte left over.
  bytes out(below);
  z_stream& s = d->s;
  s.next_in = const_cast<Bytef*>(in.data());  // zlib's API is not const-correct
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  // Out of room before the end: Z_OK or Z_BUF_ERROR, and not worth sending.
  if (deflate(&s, Z_FINISH) != Z_STREAM_END || s.total_out >= below) return std::nullopt;
  out.resize(static_cast<std::size_t>(s.total_out));
  return out;
}

std::optional<bytes> inflate_bounded(std::span<const std::uint8_t> in, std::size_t max_out) {
  if (in.empty() || !fits_uint(in.size())) return std::nullopt;
  typename context_pool<inflater>::lease z(context_pool<inflater>::get());
  if (!z->reset()) return std::nullopt;
  z_stream& s = z->s;
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  // Start near the likely size and double up to the bound.
  bytes out(std::min(max_out, std::max<std::size_t>(4 * in.size(), 256)));
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  for (;;) {
    const int rc = inflate(&s, Z_NO_FLUSH);
    if (rc == Z_STREAM_END) {
      if (s.avail_in != 0) return std::nullopt;  // trailing bytes
      out.resize(static_cast<std::size_t>(s.total_out));
      return out;
    }
    if (rc != Z_OK && rc != Z_BUF_ERROR) return std::nullopt;  // corrupt
    if (s.avail_out != 0) return std::nullopt;  // input used up before the end: truncated
    const std::size_t used = out.size();
    if (used >= max_out) {
      // Full at the bound: the stream must end without one more byte.
      std::uint8_t extra = 0;
      s.next_out = &extra;
      s.avail_out = 1;
      if (inflate(&s, Z_NO_FLUSH) == Z_STREAM_END && s.avail_out == 1 && s.avail_in == 0)
        return out;
      return std::nullopt;  // a zip bomb, or over the bound
    }
    const std::size_t next = std::min(max_out, 2 * used);
    if (!fits_uint(next - used)) return std::nullopt;
    out.resize(next);
    s.next_out = out.data() + used;
    s.avail_out = static_cast<uInt>(next - used);
  }
}

}  // namespace shoal::io
