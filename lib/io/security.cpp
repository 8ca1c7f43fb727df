#include "io/security.hpp"

#include <algorithm>
#include <stdexcept>

#include <sodium.h>

#include "io/compress.hpp"

namespace shoal::io {

namespace {

static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == key_size);
static_assert(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES == nonce_size);
static_assert(crypto_aead_xchacha20poly1305_ietf_ABYTES == tag_size);

void ensure_sodium() {
  static const int rc = sodium_init();  // thread-safe, idempotent
  if (rc < 0) throw std::runtime_error("shoal: libsodium failed to initialize");
}

std::size_t header_size(std::string_view label) {
  return 2 + (label.empty() ? 0 : 1 + label.size());
}

}  // namespace

keyring::keyring(const std::vector<key_bytes>& keys) {
  for (const auto& k : keys) install(k);
}

void keyring::install(const key_bytes& k) {
  if (std::find(keys_.begin(), keys_.end(), k) == keys_.end()) keys_.push_back(k);
}

bool keyring::use(const key_bytes& k) {
  const auto it = std::find(keys_.begin(), keys_.end(), k);
  if (it == keys_.end()) return false;
  std::rotate(keys_.begin(), it, it + 1);  // to the front; the others keep their order
  return true;
}

bool keyring::remove(const key_bytes& k) {
  const auto it = std::find(keys_.begin(), keys_.end(), k);
  if (it == keys_.end() || it == keys_.begin()) return false;
  keys_.erase(it);
  return true;
}

std::size_t seal_overhead(std::string_view label, const keyring& keys, bool compressed) {
  if (label.empty() && keys.empty() && !compressed) return 0;
  return header_size(label) + (keys.empty() ? 0 : nonce_size + tag_size);
}

bytes seal(std::span<const std::uint8_t> body, std::string_view label, const keyring& keys,
           bool compressed) {
  if (label.empty() && keys.empty() && !compressed) return bytes(body.begin(), body.end());
  if (label.size() > max_label_size) throw std::invalid_argument("shoal: label over 255 bytes");
  const std::uint8_t flags = static_cast<std::uint8_t>((keys.empty() ? 0 : flag_encrypted) |
                                                       (label.empty() ? 0 : flag_labeled) |
                                                       (compressed ? flag_compressed : 0));
  bytes out;
  out.reserve(body.size() + seal_overhead(label, keys, compressed));
  out.push_back(outer_version);
  out.push_back(flags);
  if (!label.empty()) {
    out.push_back(static_cast<std::uint8_t>(label.size()));
    out.insert(out.end(), label.begin(), label.end());
  }
  if (keys.empty()) {
    out.insert(out.end(), body.begin(), body.end());
    return out;
  }
  ensure_sodium();
  const std::size_t ad_size = out.size();
  out.resize(ad_size + nonce_size + body.size() + tag_size);
  std::uint8_t* nonce = out.data() + ad_size;
  randombytes_buf(nonce, nonce_size);
  unsigned long long written = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + ad_size + nonce_size, &written,
                                             body.data(), body.size(), out.data(), ad_size, nullptr,
                                             nonce, keys.primary()->data());
  out.resize(ad_size + nonce_size + static_cast<std::size_t>(written));
  return out;
}

const char* to_string(open_status s) {
  switch (s) {
    case open_status::ok:
      return "ok";
    case open_status::label_mismatch:
      return "label_mismatch";
    case open_status::decrypt_failed:
      return "decrypt_failed";
    case open_status::plaintext_rejected:
      return "plaintext_rejected";
    case open_status::decompress_failed:
      return "decompress_failed";
  }
  return "unknown";
}

namespace {

/// Inflates r.plain in place when the flags say it is compressed.
void inflate_body(open_result& r, std::uint8_t flags, std::size_t max_plain) {
  if ((flags & flag_compressed) == 0) return;
  r.compressed = true;
  auto inflated = inflate_bounded(r.plain, max_plain);
  if (!inflated) {
    r.status = open_status::decompress_failed;
    r.plain.clear();
    return;
  }
  r.plain = std::move(*inflated);
}

}  // namespace

open_result open_packet(std::span<const std::uint8_t> data, std::string_view label,
                        const keyring& keys, bool accept_plaintext, std::size_t max_plain) {
  open_result r;
  const bool plaintext_ok = keys.empty() || accept_plaintext;
  if (data.empty() || data[0] != outer_version) {  // a bare core packet
    if (!label.empty())
      r.status = open_status::label_mismatch;
    else if (!plaintext_ok)
      r.status = open_status::plaintext_rejected;
    else
      r.plain.assign(data.begin(), data.end());
    return r;
  }
  constexpr std::uint8_t known_flags = flag_encrypted | flag_labeled | flag_compressed;
  if (data.size() < 2 || (data[1] & ~known_flags) != 0) {
    r.status = open_status::decrypt_failed;  // malformed outer header
    return r;
  }
  const std::uint8_t flags = data[1];
  std::size_t pos = 2;
  std::string_view got;
  if ((flags & flag_labeled) != 0) {
    if (data.size() < 3 || data.size() < 3u + data[2]) {
      r.status = open_status::decrypt_failed;
      return r;
    }
    got = std::string_view(reinterpret_cast<const char*>(data.data() + 3), data[2]);
    pos = 3u + data[2];
  }
  if (got != label) {
    r.status = open_status::label_mismatch;
    return r;
  }
  const auto rest = data.subspan(pos);
  if ((flags & flag_encrypted) == 0) {
    if (!plaintext_ok) {
      r.status = open_status::plaintext_rejected;
      return r;
    }
    r.plain.assign(rest.begin(), rest.end());
    inflate_body(r, flags, max_plain);
    return r;
  }
  r.status = open_status::decrypt_failed;
  if (keys.empty() || rest.size() < nonce_size + tag_size) return r;
  ensure_sodium();
  const std::uint8_t* nonce = rest.data();
  const auto cipher = rest.subspan(nonce_size);
  r.plain.resize(cipher.size() - tag_size);
  for (const auto& k : keys.list()) {
    unsigned long long written = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(r.plain.data(), &written, nullptr, cipher.data(),
                                                   cipher.size(), data.data(), pos, nonce,
                                                   k.data()) == 0) {
      r.plain.resize(static_cast<std::size_t>(written));
      r.status = open_status::ok;
      inflate_body(r, flags, max_plain);
      return r;
    }
  }
  r.plain.clear();
  return r;
}

std::optional<bytes> open(std::span<const std::uint8_t> data, std::string_view label,
                          const keyring& keys, bool accept_plaintext, std::size_t max_plain) {
  auto r = open_packet(data, label, keys, accept_plaintext, max_plain);
  if (r.status != open_status::ok) return std::nullopt;
  return std::move(r.plain);
}

}  // namespace shoal::io
