// Fuzz target: the plain wire decoder (lib/wire), on a raw datagram.
//
// Beyond "no crash": whatever decodes must survive a round trip (encoding
// the messages and decoding them again gives the same messages), and a packet
// that passes tight limits must also pass the default ones.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_common.hpp"
#include "wire/codec.hpp"

namespace wire = shoal::wire;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  wire::decode_counters counters;

  wire::limits tight;
  tight.max_messages = 4;
  tight.max_name_length = 8;
  tight.max_tag_bytes = 16;
  tight.max_payload_bytes = 16;
  tight.max_members = 2;
  std::vector<wire::message> small;
  const bool tight_ok = !wire::decode_packet(in, tight, small, counters);

  const wire::limits lim;
  std::vector<wire::message> msgs;
  if (wire::decode_packet(in, lim, msgs, counters)) {
    fuzz::check(!tight_ok, "accepted under tight limits but not under the defaults");
    return 0;
  }
  if (tight_ok) fuzz::check(small == msgs, "tight and default limits decode differently");

  const auto again = wire::encode_packet(msgs);
  std::vector<wire::message> back;
  fuzz::check(!wire::decode_packet(again, lim, back, counters),
              "re-encoded packet does not decode");
  fuzz::check(back == msgs, "round trip changed the messages");
  return 0;
}
