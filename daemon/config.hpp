// shoald's configuration: defaults, then a TOML file (--config), then SHOAL_*
// environment variables, then flags (flags win). Every field is documented in
// daemon/shoald.example.toml with its unit, default and effect.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <shoal/member.hpp>
#include <shoal/node.hpp>

#include "handlers.hpp"

namespace shoal::daemon {

struct daemon_config {
  std::string config_file;  ///< where the TOML came from ("" when none)

  std::string name;                   ///< default: the host name
  std::string bind = "0.0.0.0:7946";  ///< HOST:PORT for UDP and TCP
  std::string advertise;              ///< HOST:PORT others use to reach us ("" = derived)
  std::vector<std::string> join;      ///< seeds, HOST:PORT
  std::string socket = "/run/shoal/shoald.sock";
  unsigned socket_mode = 0600;  ///< permission bits of the socket file
  std::string socket_group;     ///< group owning the socket file ("" = unchanged)
  /// A second socket serving only the commands that read ("" = none).
  std::string read_only_socket;
  unsigned read_only_socket_mode = 0666;
  std::string data_dir;  ///< persistence ("" = none)
  tag_map tags;
  std::string preset = "lan";      ///< lan | wan | local
  std::string label;               ///< cluster label
  std::string keyring_file;        ///< JSON array of base64 keys, primary first
  std::string metrics_bind;        ///< HOST:PORT of the Prometheus listener ("" = off)
  std::string log_level = "info";  ///< trace debug info warn error off

  double leave_timeout_s = 5.0;         ///< graceful leave budget on SIGTERM / leave
  std::size_t max_connections = 64;     ///< socket clients at once
  std::size_t max_frame_bytes = 65536;  ///< largest request frame
  std::size_t stream_backlog = 1024;    ///< frames queued to one client before "lagged"
  std::size_t max_streams_per_connection = 16;
  double frame_timeout_s = 10.0;  ///< a started frame must complete within this
  double keys_timeout_s = 5.0;    ///< wait for cluster-wide key operations

  // Limits of the gossip protocol (shoal::config, shoal::node_config). Unset:
  // the preset's value (the same in every preset, shown here). Read at start.
  std::optional<std::size_t> max_name_length;      ///< 128: bytes of a member name
  std::optional<std::size_t> max_tag_bytes;        ///< 512: keys + values of one member's tags
  std::optional<std::size_t> max_members;          ///< 65536: members tracked
  std::optional<std::size_t> max_push_pull_bytes;  ///< 16 MiB: one push-pull state
  std::optional<std::size_t> udp_buffer_size;   ///< 1400: largest packet built; bounds those read
  std::optional<std::size_t> max_tcp_sessions;  ///< 64: TCP exchanges at once, each direction
  std::optional<std::size_t> max_packets_per_source_per_second;  ///< 1000 (0: no limit)

  /// shoal::config::refusal_suspicion_timeout in seconds (0 disables). Unset:
  /// the preset's value without a keyring, 0 with one (ICMP is unauthenticated).
  std::optional<double> refusal_suspicion_timeout_s;

  /// shoal::config::reconnect_timeout in seconds: how long failed and left
  /// members are kept (failed ones probed for their return) before they are
  /// reaped. Unset: the preset's (24 h in every preset).
  std::optional<double> reconnect_timeout_s;

  /// Event handlers ([[handler]] tables, then --event-handler and
  /// --serf-event-handler flags, in that order). Read at start.
  std::vector<handler_spec> handlers;
};

/// Builds the configuration from argv (CLI11 flags), the environment and the
/// file named by --config. Returns the config, or sets `exit_code` and prints
/// (help: 0; usage or validation errors: 2, with the offending field named).
std::optional<daemon_config> load_config(int argc, char** argv, int& exit_code);

/// Parses and validates only a TOML text (and applies it over `base`); the
/// error names the field. Used by load_config, SIGHUP reloads and the fuzzer.
std::optional<std::string> apply_toml(daemon_config& base, std::string_view toml_text,
                                      const std::string& origin);

/// Checks ranges and formats of every field; the message names the field.
std::optional<std::string> validate(const daemon_config& c);

/// The node shoald runs: the preset, with the name, tags, label, addresses,
/// seeds and limits of `c` over it. `c` must be valid (validate()).
node_config node_config_of(const daemon_config& c);

/// A duration of daemon_config (seconds, a double) in whole milliseconds.
inline std::chrono::milliseconds secs(double s) {
  return std::chrono::milliseconds(static_cast<long long>(s * 1000));
}

/// "k=v" -> (k, v); nullopt without '=' or with an empty key.
std::optional<std::pair<std::string, std::string>> parse_tag(const std::string& kv);

}  // namespace shoal::daemon
