// Names for every counter shoald exports (socket `stats`, Prometheus).
// One list per struct so the socket API and the metrics cannot drift apart.
#pragma once

#include <cstdint>

#include <shoal/node.hpp>

#include "handlers.hpp"
#include "server.hpp"

namespace shoal::daemon {

// Every stats struct is listed once (SHOAL_CORE_COUNTERS and
// SHOAL_RUNTIME_COUNTERS in the public headers, SHOAL_SERVER_COUNTERS in
// server.hpp); these only adapt their visitors to (name, value).
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
  visit_counters(s, [&](const char* name, const char*, std::uint64_t v) { f(name, v); });
}

template <class F>
void for_each_counter(const handler_stats& s, F&& f) {
  visit_counters(s, [&](const char* name, const char*, std::uint64_t v) { f(name, v); });
}

}  // namespace shoal::daemon
