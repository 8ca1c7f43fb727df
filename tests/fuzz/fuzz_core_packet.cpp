// Fuzz target: datagrams into a running shoal::core (handle_packet), so that
// bugs in how the protocol state handles hostile claims are found, not only
// decoder bugs.
//
// The input is a sequence of records, each a datagram from one peer:
//
//   +------+--------+--------+================+
//   |  op  | length (u16 BE) | length bytes   |   ... next record
//   +------+--------+--------+================+
//   op bits 0-2: the sender, n<k> at 10.0.0.<k+1>:7946 (0 is the node itself,
//                5..7 are strangers); bits 3-7: virtual time to run first, in
//                25 ms steps. A record cut short takes what is left.
//
// The core is n0 knowing n1..n4 (fuzz_common.hpp). After every datagram the
// view must be consistent and every packet it sends well formed; at the end
// 12 s more of virtual time run its timers (suspicions expire, the dead are
// gossiped) under the same checks.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace std::chrono_literals;
  fuzz::driver d;
  shoal::core& core = d.core();

  std::span<const std::uint8_t> in(data, size);
  while (!in.empty()) {
    const std::uint8_t op = in[0];
    const std::size_t len = in.size() >= 3 ? (std::size_t{in[1]} << 8) | in[2] : 0;
    const auto rest = in.subspan(std::min<std::size_t>(3, in.size()));
    const auto body = rest.first(std::min(len, rest.size()));
    d.advance((op >> 3) * 25ms);
    core.handle_packet(d.now(), fuzz::addr_of(op & 7u), body, d.out());
    d.drain();
    fuzz::check_view(core);
    in = rest.subspan(body.size());
  }
  d.advance(12s);
  fuzz::check_view(core);
  return 0;
}
