// The counters as clients read them: the `stats` command and the Prometheus
// text of the metrics listener, both from the field lists of stats_fields.hpp.
#include "agent.hpp"
#include "metrics.hpp"
#include "stats_fields.hpp"

namespace shoal::daemon {

void agent::cmd_stats(const std::shared_ptr<session>& s, std::uint64_t id) {
  const node_stats ns = node_->stats();
  s->reply(id, [&](writer& w) {
    auto group = [&](const char* name, const auto& st, std::size_t extra, auto&& more) {
      std::uint32_t n = 0;
      for_each_counter(st, [&](const char*, std::uint64_t) { ++n; });
      write_str(w, name);
      w.pack_map(n + static_cast<std::uint32_t>(extra));
      for_each_counter(st, [&](const char* k, std::uint64_t v) {
        write_str(w, k);
        w.pack_uint64(v);
      });
      more();
    };
    w.pack_map(5);
    group("core", ns.core, 0, [] {});
    write_str(w, "messages");
    w.pack_map(2);
    for (const char* dir : {"in", "out"}) {
      write_str(w, dir);
      w.pack_map(static_cast<std::uint32_t>(message_type_count));
      for_each_message_type(ns.core, [&](const char* type, const char* d, std::uint64_t v) {
        if (std::string_view(d) != dir) return;
        write_str(w, type);
        w.pack_uint64(v);
      });
    }
    group("runtime", ns.runtime, 2, [&] {
      write_str(w, "tcp_sessions");
      w.pack_uint64(ns.tcp_sessions);
      write_str(w, "streams_in_progress");
      w.pack_uint64(ns.streams);
    });
    group("daemon", server_.stats(), 3, [&] {
      write_str(w, "clients");
      w.pack_uint64(server_.connections());
      write_str(w, "streams");
      w.pack_uint64(server_.streams());
      write_str(w, "key_ops_rejected");
      w.pack_uint64(key_ops_rejected_);
    });
    group("handlers", handlers_ ? handlers_->stats() : handler_stats{}, 2, [&] {
      write_str(w, "running");
      w.pack_uint64(handlers_ ? handlers_->running() : 0);
      write_str(w, "queued");
      w.pack_uint64(handlers_ ? handlers_->queued() : 0);
    });
  });
}

std::string agent::metrics_text() const {
  return render_metrics(*node_, server_, key_ops_rejected_,
                        handlers_ ? handlers_->stats() : handler_stats{});
}

}  // namespace shoal::daemon
