// Names for every counter shoald exports (socket `stats`, Prometheus).
// One list per struct so the socket API and the metrics cannot drift apart.
#pragma once

#include <cstdint>

#include <shoal/node.hpp>

#include "server.hpp"

namespace shoal::daemon {

template <class F>
void for_each_counter(const core_stats& s, F&& f) {
  f("packets_in", s.packets_in);
  f("packets_out", s.packets_out);
  f("bytes_in", s.bytes_in);
  f("bytes_out", s.bytes_out);
  f("messages_in", s.messages_in);
  f("messages_out", s.messages_out);
  f("probes", s.probes);
  f("indirect_probes", s.indirect_probes);
  f("probe_failures", s.probe_failures);
  f("acks_in", s.acks_in);
  f("nacks_in", s.nacks_in);
  f("suspicions", s.suspicions);
  f("refutations", s.refutations);
  f("deaths", s.deaths);
  f("unreachable_reports", s.unreachable_reports);
  f("refusals", s.refusals);
  f("refusal_deaths", s.refusal_deaths);
  f("refutations_withheld", s.refutations_withheld);
  f("self_benched", s.self_benched);
  f("streams_started", s.streams_started);
  f("streams_failed", s.streams_failed);
  f("push_pulls", s.push_pulls);
  f("reconnects", s.reconnects);
  f("broadcasts_dropped", s.broadcasts_dropped);
  f("user_broadcasts_dropped", s.user_broadcasts_dropped);
  f("members_rejected", s.members_rejected);
  f("digest_mismatches", s.digest_mismatches);
  f("digest_syncs", s.digest_syncs);
  f("invalid_truncated", s.invalid_truncated);
  f("invalid_magic", s.invalid_magic);
  f("invalid_version", s.invalid_version);
  f("invalid_flags", s.invalid_flags);
  f("invalid_malformed", s.invalid_malformed);
  f("invalid_too_large", s.invalid_too_large);
  f("invalid_unknown_type", s.invalid_unknown_type);
  f("invalid_field", s.invalid_field);
}

template <class F>
void for_each_counter(const runtime_stats& s, F&& f) {
  f("udp_send_errors", s.udp_send_errors);
  f("udp_send_dropped", s.udp_send_dropped);
  f("udp_receive_errors", s.udp_receive_errors);
  f("tcp_accepted", s.tcp_accepted);
  f("tcp_rejected", s.tcp_rejected);
  f("tcp_session_errors", s.tcp_session_errors);
  f("streams_ok", s.streams_ok);
  f("streams_failed", s.streams_failed);
  f("streams_rejected", s.streams_rejected);
  f("stream_timeouts", s.stream_timeouts);
  f("frames_too_large", s.frames_too_large);
  f("resolve_failures", s.resolve_failures);
  f("callback_exceptions", s.callback_exceptions);
  f("label_mismatch", s.label_mismatch);
  f("decrypt_failed", s.decrypt_failed);
  f("plaintext_rejected", s.plaintext_rejected);
  f("udp_packets_in", s.udp_packets_in);
  f("udp_packets_out", s.udp_packets_out);
  f("udp_bytes_in", s.udp_bytes_in);
  f("udp_bytes_out", s.udp_bytes_out);
  f("tcp_bytes_in", s.tcp_bytes_in);
  f("tcp_bytes_out", s.tcp_bytes_out);
  f("compressed_out", s.compressed_out);
  f("compress_skipped", s.compress_skipped);
  f("compressed_in", s.compressed_in);
  f("decompress_failed", s.decompress_failed);
  f("rate_limited", s.rate_limited);
  f("udp_too_large", s.udp_too_large);
  f("icmp_unreachable_in", s.icmp_unreachable_in);
  f("icmp_other_in", s.icmp_other_in);
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
