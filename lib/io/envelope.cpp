// The envelope as the runtime uses it (its format and the keyring class are
// io/security.hpp): seal_out() compresses and seals what leaves, open_in()
// opens what arrives and counts and logs what it drops. The facade's key
// operations replace the keyring with a changed copy, so a packet is sealed
// or opened under one whole keyring while keys change.
#include "io/runtime.hpp"

#include <memory>
#include <string>
#include <utility>

#include "io/compress.hpp"

namespace shoal::io {

std::shared_ptr<const keyring> runtime::keyring_snapshot() const {
  std::lock_guard lock(keys_mu_);
  return keys_;
}

void runtime::seal_out(bytes& data) {
  static const keyring no_keys;
  const auto keys = keyring_snapshot();
  const keyring& sealing = cfg_.encrypt_outgoing ? *keys : no_keys;
  const bool bare = cfg_.label.empty() && sealing.empty();
  bool compressed = false;
  if (cfg_.compression && data.size() >= min_compress_size) {
    // Worth it only if the packet shrinks: a bare packet pays the outer
    // header's two bytes for the flag.
    const std::size_t header = bare ? seal_overhead({}, no_keys, true) : 0;
    if (auto z = deflate_below(data, data.size() - header)) {
      data = std::move(*z);
      compressed = true;
      bump(counters_.compressed_out);
    } else {
      bump(counters_.compress_skipped);
    }
  }
  if (bare && !compressed) return;
  data = seal(data, cfg_.label, sealing, compressed);
}

bool runtime::open_in(std::span<const std::uint8_t>& data, bytes& storage, const address& from,
                      const char* channel, std::size_t max_plain) {
  const auto keys = keyring_snapshot();
  // A plain cluster and a bare core packet: nothing to open, nothing to copy.
  if (cfg_.label.empty() && keys->empty() && (data.empty() || data[0] != outer_version))
    return true;
  open_result r = open_packet(data, cfg_.label, *keys, cfg_.accept_plaintext, max_plain);
  switch (r.status) {
    case open_status::ok:
      if (r.compressed) bump(counters_.compressed_in);
      storage = std::move(r.plain);
      data = storage;
      return true;
    case open_status::label_mismatch:
      bump(counters_.label_mismatch);
      break;
    case open_status::decrypt_failed:
      bump(counters_.decrypt_failed);
      break;
    case open_status::plaintext_rejected:
      bump(counters_.plaintext_rejected);
      break;
    case open_status::decompress_failed:
      bump(counters_.decompress_failed);
      break;
  }
  warn_limited(to_string(r.status),
               [&] { return std::string("dropped ") + channel + " from=" + from.to_string(); });
  return false;
}

std::error_code runtime::install_key(const encryption_key& key) {
  std::lock_guard lock(keys_mu_);
  auto next = std::make_shared<keyring>(*keys_);
  next->install(key);
  keys_ = std::move(next);
  log_.log(spdlog::level::info, "key installed keys={}", keys_->size());
  return {};
}

std::error_code runtime::use_key(const encryption_key& key) {
  std::lock_guard lock(keys_mu_);
  auto next = std::make_shared<keyring>(*keys_);
  if (!next->use(key)) return errc::invalid_argument;
  keys_ = std::move(next);
  log_.log(spdlog::level::info, "primary key changed keys={}", keys_->size());
  return {};
}

std::error_code runtime::remove_key(const encryption_key& key) {
  std::lock_guard lock(keys_mu_);
  auto next = std::make_shared<keyring>(*keys_);
  if (!next->remove(key)) return errc::invalid_argument;
  keys_ = std::move(next);
  log_.log(spdlog::level::info, "key removed keys={}", keys_->size());
  return {};
}

std::vector<encryption_key> runtime::list_keys() const {
  const auto keys = keyring_snapshot();
  return keys->list();
}

}  // namespace shoal::io
