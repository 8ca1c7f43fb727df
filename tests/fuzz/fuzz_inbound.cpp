// libFuzzer target: a received datagram through the whole receive path of
// the runtime (label -> decrypt -> decompress -> wire decode), under a plain
// unlabeled node and under a labeled, encrypted node that also accepts
// plaintext. Compressed bodies are inflated to at most 64 KiB.
#include <cstddef>
#include <cstdint>
#include <span>

#include "io/inbound.hpp"

namespace {

const shoal::io::keyring& test_keys() {
  static const shoal::io::keyring k({[] {
    shoal::io::key_bytes b{};
    b.fill(0x42);
    return b;
  }()});
  return k;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  shoal::wire::limits lim;
  const shoal::io::keyring none;
  for (const bool keyed : {false, true}) {
    const auto r =
        shoal::io::decode_inbound(in, keyed ? "lab" : "", keyed ? test_keys() : none,
                                  /*accept_plaintext=*/true, shoal::io::max_datagram_size, lim);
    if (r.status != shoal::io::open_status::ok && !r.messages.empty()) __builtin_trap();
    if (r.decode_error && !r.messages.empty()) __builtin_trap();
  }
  return 0;
}
