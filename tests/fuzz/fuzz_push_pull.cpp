// Fuzz target: push-pull stream decoding, the payload of one TCP frame (the
// runtime hands it to the core as is in a plain cluster), merged by a running
// core on both sides of an exchange:
//   - as a request a peer sent us: handle_stream(), whose reply must be a
//     well-formed packet within max_push_pull_bytes;
//   - as the reply to our own join: handle_stream_reply().
// Then 12 s of virtual time run the timers the merge armed (confirmation
// pings, suspicions), with the view and every sent packet checked.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_common.hpp"
#include "wire/codec.hpp"

namespace {

void serve(std::span<const std::uint8_t> in) {
  using namespace std::chrono_literals;
  fuzz::driver d;
  shoal::core& core = d.core();
  const auto reply = core.handle_stream(d.now(), fuzz::addr_of(1), in, d.out());
  if (!reply.empty()) {
    fuzz::check(reply.size() <= core.cfg().max_push_pull_bytes, "reply over max_push_pull_bytes");
    shoal::wire::limits lim;
    lim.max_packet_bytes = core.cfg().max_push_pull_bytes;
    std::vector<shoal::wire::message> msgs;
    shoal::wire::decode_counters counters;
    fuzz::check(!shoal::wire::decode_packet(reply, lim, msgs, counters), "reply does not decode");
    fuzz::check(msgs.size() == 1, "a reply holds one message");
  }
  d.drain();
  fuzz::check_view(core);
  d.advance(12s);
  fuzz::check_view(core);
}

void join_reply(std::span<const std::uint8_t> in) {
  using namespace std::chrono_literals;
  fuzz::driver d;
  shoal::core& core = d.core();
  const shoal::address seed = fuzz::addr_of(1);
  core.join(d.now(), {&seed, 1}, d.out());
  fuzz::check(d.out().streams.size() == 1, "join started no stream");
  const std::uint64_t id = d.out().streams.front().id;
  d.out().streams.clear();  // the exchange is answered below, not failed
  d.drain();
  core.handle_stream_reply(d.now(), id, in, d.out());
  d.drain();
  fuzz::check_view(core);
  d.advance(12s);
  fuzz::check_view(core);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> in(data, size);
  serve(in);
  join_reply(in);
  return 0;
}
