// Fuzz target: the runtime's envelope (lib/io/security) on a received
// datagram, under the node's known key and label, then the wire decoder.
//
// The input is a datagram as it arrives. It is opened the ways a node can be
// configured (label and keyring, plaintext accepted or not, plain); whatever
// opens is decoded. The seed corpus holds validly sealed packets
// (corpus/sealed_packet), so the fuzzer starts from real envelopes.
//
// Mutated ciphertext almost never authenticates, so the target also seals
// the input itself and checks the round trip: it opens under the same key and
// label to the same bytes, and fails under another key or label. That drives
// the decoder through a real envelope on every input.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "io/security.hpp"
#include "wire/codec.hpp"

namespace io = shoal::io;

namespace {

void decode(const shoal::bytes& plain) {
  std::vector<shoal::wire::message> msgs;
  shoal::wire::decode_counters counters;
  (void)shoal::wire::decode_packet(plain, shoal::wire::limits{}, msgs, counters);
}

void open_as(std::span<const std::uint8_t> in, std::string_view label, const io::keyring& keys,
             bool accept_plaintext) {
  auto r = io::open_packet(in, label, keys, accept_plaintext);
  if (r.status != io::open_status::ok) {
    fuzz::check(r.plain.empty(), "a refused packet left plaintext behind");
    return;
  }
  // Only a compressed body may come out larger than it went in, and then no
  // larger than the inflation bound.
  if (r.compressed)
    fuzz::check(r.plain.size() <= io::max_datagram_size, "inflation passed its bound");
  else
    fuzz::check(r.plain.size() <= in.size(), "opening grew the packet");
  decode(r.plain);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const io::keyring keys({fuzz::sealing_key(0), fuzz::sealing_key(1)});
  static const io::keyring other({fuzz::sealing_key(2)});
  static const io::keyring none;
  const std::string_view label = fuzz::sealing_label;
  const std::span<const std::uint8_t> in(data, size);

  open_as(in, label, keys, false);
  open_as(in, label, keys, true);
  open_as(in, "", keys, false);
  open_as(in, label, none, false);
  open_as(in, "", none, true);

  if (size > 65536) return 0;
  const auto sealed = io::seal(in, label, keys);
  fuzz::check(sealed.size() == size + io::seal_overhead(label, keys), "seal_overhead is wrong");
  const auto back = io::open_packet(sealed, label, keys, false);
  fuzz::check(back.status == io::open_status::ok, "a sealed packet does not open");
  fuzz::check(back.plain.size() == size && std::equal(back.plain.begin(), back.plain.end(), data),
              "open(seal(x)) != x");
  fuzz::check(
      io::open_packet(sealed, label, other, false).status == io::open_status::decrypt_failed,
      "another key opened the packet");
  fuzz::check(
      io::open_packet(sealed, "other", keys, false).status == io::open_status::label_mismatch,
      "another label opened the packet");
  decode(back.plain);
  return 0;
}
