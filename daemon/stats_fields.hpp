// Names for every counter shoald exports (socket `stats`, Prometheus).
// One list per struct so the socket API and the metrics cannot drift apart.
#pragma once

#include <cstdint>

#include <shoal/node.hpp>

#include "server.hpp"

namespace shoal::daemon {

// core_stats and runtime_stats are listed once, in the public headers
// (SHOAL_CORE_COUNTERS, SHOAL_RUNTIME_COUNTERS); these only adapt their
// visitors to (name, value).
template <class F>
void for_each_counter(const core_stats& s, F&& f) {
  visit_counters(s, [&](const char* name, const char*, std::uint64_t v) { f(name, v); });
}

template <class F>
void for_each_counter(const runtime_stats& s, F&& f) {
  visit_counters(s, [&](const char* name, const char*, std::uint64_t v) { f(name, v); });
}

/// Messages by type and direction ("in"/"out"), for every wire type.
template <class F>
void for_each_message_type(const core_stats& s, F&& f) {
  for (std::size_t i = 0; i < message_type_count; ++i) {
    const char* name = to_string(static_cast<message_type>(i));
    f(name, "in", s.messages_in_by_type[i]);
    f(name, "out", s.messages_out_by_type[i]);
  }
}

template <class F>
void for_each_counter(const server_stats& s, F&& f) {
  f("connections", s.connections);
  f("connections_rejected", s.connections_rejected);
  f("frames_in", s.frames_in);
  f("frames_out", s.frames_out);
  f("bad_frames", s.bad_frames);
  f("bad_requests", s.bad_requests);
  f("frames_too_large", s.frames_too_large);
  f("frames_timed_out", s.frames_timed_out);
  f("unknown_commands", s.unknown_commands);
  f("streams_lagged", s.streams_lagged);
}

}  // namespace shoal::daemon
