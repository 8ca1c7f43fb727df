// libFuzzer target: a daemon-to-daemon message (daemon/peer_messages.hpp), the
// bytes one shoald receives from another inside a user broadcast or a direct
// user message. Whatever decodes survives an encode/decode round trip
// unchanged; decoding never throws and stays within the documented bounds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>

#include "peer_messages.hpp"

namespace peer = shoal::daemon::peer;

namespace {

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  peer::message m;
  std::string kind;
  const auto st = peer::decode(std::span(data, size), m, 65536, &kind);
  if (st != peer::decode_status::ok) return 0;
  if (const auto* e = std::get_if<peer::user_event>(&m)) {
    check(!e->origin.empty() && e->origin.size() <= peer::max_name_bytes, "event origin bounds");
    check(!e->name.empty() && e->name.size() <= peer::max_event_name_bytes, "event name bounds");
    check(kind == "shoal.event", "kind of an event");
  } else if (const auto* q = std::get_if<peer::key_request>(&m)) {
    check(q->op == "list" || q->key.has_value(), "a key operation other than list has a key");
  } else {
    check(std::get<peer::key_reply>(m).keys.size() <= peer::max_reply_keys, "reply key bound");
  }
  const auto again = peer::encode(m);
  peer::message m2;
  check(peer::decode(again, m2) == peer::decode_status::ok, "a re-encoded message decodes");
  check(m == m2, "round trip changed the message");
  return 0;
}
