// libFuzzer target: a daemon-to-daemon message (daemon/peer_messages.hpp), the
// bytes one shoald receives from another inside a user broadcast or a direct
// user message, and the same bytes as the payloads of the built-in key query
// (a key operation, a key result). Whatever decodes survives an encode/decode
// round trip unchanged; decoding never throws and stays within the
// documented bounds.
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

void check_key_payloads(std::span<const std::uint8_t> data) {
  peer::key_op op;
  if (peer::decode(data, op)) {
    check(op.op == "list" || op.key.has_value(), "a key operation other than list has a key");
    peer::key_op back;
    check(peer::decode(peer::encode(op), back) && back == op, "key operation round trip");
  }
  peer::event_state st;
  if (peer::decode(data, st)) {
    check(st.events.size() <= peer::max_state_events, "event state bound");
    peer::event_state back;
    check(peer::decode(peer::encode(st), back) && back == st, "event state round trip");
  }
  peer::key_result r;
  if (peer::decode(data, r)) {
    check(r.keys.size() <= peer::max_reply_keys, "key result bound");
    peer::key_result back;
    check(peer::decode(peer::encode(r), back) && back == r, "key result round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_key_payloads(std::span(data, size));
  peer::message m;
  std::string kind;
  const auto st = peer::decode(std::span(data, size), m, 65536, &kind);
  if (st != peer::decode_status::ok) return 0;
  if (const auto* e = std::get_if<peer::user_event>(&m)) {
    check(!e->origin.empty() && e->origin.size() <= peer::max_name_bytes, "event origin bounds");
    check(!e->name.empty() && e->name.size() <= peer::max_event_name_bytes, "event name bounds");
    check(kind == "shoal.event", "kind of an event");
  } else if (const auto* q = std::get_if<peer::query>(&m)) {
    check(q->tag_patterns.size() <= peer::max_tag_filters, "query tag filter bound");
    check(q->node_pattern.size() <= peer::max_pattern_bytes, "query pattern bound");
    check(kind == "shoal.query", "kind of a query");
  } else if (const auto* p = std::get_if<peer::prune>(&m)) {
    check(!p->member.empty() && p->member.size() <= peer::max_name_bytes, "prune member bounds");
  } else {
    check(!std::get<peer::query_reply>(m).from.empty(), "a reply names its sender");
  }
  const auto again = peer::encode(m);
  peer::message m2;
  check(peer::decode(again, m2) == peer::decode_status::ok, "a re-encoded message decodes");
  check(m == m2, "round trip changed the message");
  return 0;
}
