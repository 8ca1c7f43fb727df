#include "key_text.hpp"

#include <sodium.h>

#include <algorithm>
#include <array>

namespace shoal::daemon {
namespace {

/// Characters of 32 bytes in base64 without padding: ceil(32 * 8 / 6).
constexpr std::size_t key_chars = 43;

bool sodium_ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

}  // namespace

std::string base64_encode(const encryption_key& key) {
  constexpr std::size_t size =
      sodium_base64_ENCODED_LEN(std::tuple_size_v<encryption_key>, sodium_base64_VARIANT_ORIGINAL);
  std::array<char, size> out{};  // with the terminating NUL
  if (!sodium_ready()) return {};
  sodium_bin2base64(out.data(), out.size(), key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  return std::string(out.data());
}

std::optional<encryption_key> base64_decode_key(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() != key_chars || !sodium_ready()) return std::nullopt;
  // 43 characters carry 258 bits: 32 bytes and 2 unused bits, which libsodium
  // requires to be zero and shoald never checked. One more character makes
  // 264 bits, 33 whole bytes with nothing unused; the 33rd is dropped.
  std::array<char, key_chars + 1> padded{};
  std::copy(text.begin(), text.end(), padded.begin());
  padded.back() = 'A';
  std::array<unsigned char, 33> bin{};
  std::size_t len = 0;
  if (sodium_base642bin(bin.data(), bin.size(), padded.data(), padded.size(), nullptr, &len,
                        nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != bin.size())
    return std::nullopt;
  encryption_key k{};
  std::copy_n(bin.begin(), k.size(), k.begin());
  return k;
}

std::optional<encryption_key> random_key() {
  if (!sodium_ready()) return std::nullopt;
  encryption_key k{};
  randombytes_buf(k.data(), k.size());
  return k;
}

}  // namespace shoal::daemon
