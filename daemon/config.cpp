#include "config.hpp"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <type_traits>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <shoal/address.hpp>
#include <shoal/node.hpp>
#include <shoal/version.hpp>

namespace shoal::daemon {
namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "shoal";
  return buf;
}

std::optional<unsigned> parse_mode(const std::string& s) {
  if (s.empty() || s.size() > 4) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '7') return std::nullopt;
    v = v * 8 + static_cast<unsigned>(c - '0');
  }
  return v;
}

bool host_port(const std::string& s) {
  // Syntax only: names are resolved later. "[v6]:port", "host:port", "1.2.3.4:port".
  const auto colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) return false;
  const std::string port = s.substr(colon + 1);
  if (port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos) return false;
  return std::stoul(port) <= 65535;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> parse_tag(const std::string& kv) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) return std::nullopt;
  return std::make_pair(kv.substr(0, eq), kv.substr(eq + 1));
}

node_config node_config_of(const daemon_config& c) {
  node_config nc = node_config::preset(c.preset).value_or(node_config{});
  config& p = nc.protocol;
  p.name = c.name;
  p.tags = c.tags;
  if (c.max_name_length) p.max_name_length = *c.max_name_length;
  if (c.max_tag_bytes) p.max_tag_bytes = *c.max_tag_bytes;
  if (c.max_members) p.max_members = *c.max_members;
  if (c.max_push_pull_bytes) p.max_push_pull_bytes = *c.max_push_pull_bytes;
  if (c.udp_buffer_size) p.udp_buffer_size = *c.udp_buffer_size;
  if (c.max_tcp_sessions) nc.max_tcp_sessions = *c.max_tcp_sessions;
  if (c.max_packets_per_source_per_second)  // validate() keeps it within 32 bits
    nc.max_packets_per_source_per_second =
        static_cast<std::uint32_t>(*c.max_packets_per_source_per_second);
  // validate() refuses anything outside 0..3600 (NaN included), which must
  // not reach the conversion (undefined behaviour).
  if (const auto& t = c.reconnect_timeout_s; t && *t >= 1 && *t <= 30 * 86400.0)
    p.reconnect_timeout = std::chrono::duration_cast<duration>(std::chrono::duration<double>(*t));
  if (const auto& t = c.refusal_suspicion_timeout_s; t && *t >= 0 && *t <= 3600)
    p.refusal_suspicion_timeout =
        std::chrono::duration_cast<duration>(std::chrono::duration<double>(*t));
  if (auto a = address::parse(c.bind)) nc.bind = *a;
  if (auto a = address::parse(c.advertise)) p.advertise = *a;
  nc.label = c.label;
  nc.seeds = c.join;
  return nc;
}

std::optional<std::string> validate(const daemon_config& c) {
  auto bad = [](const char* field, const std::string& why) {
    return std::string(field) + ": " + why;
  };
  // The protocol's limits first: the name and the tags are checked against them.
  // Each range lies within what shoal::config::validate() and shoal::node accept.
  struct limit_range {
    const char* field;
    const std::optional<std::size_t>& value;
    std::size_t min, max;
  };
  const limit_range limits[] = {
      {"max_name_length", c.max_name_length, 1, 1024},
      {"max_tag_bytes", c.max_tag_bytes, 0, 64000},  // with a name and a header in 65000
      {"max_members", c.max_members, 2, 1u << 20},
      {"max_push_pull_bytes", c.max_push_pull_bytes, 4096, 256u << 20},
      // 576: the core's 512-byte user messages (key rotation uses them) and their headers.
      {"udp_buffer_size", c.udp_buffer_size, 576, 65000},
      {"max_tcp_sessions", c.max_tcp_sessions, 1, 4096},
      {"max_packets_per_source_per_second", c.max_packets_per_source_per_second, 0, 1'000'000},
  };
  for (const auto& l : limits)
    if (l.value && (*l.value < l.min || *l.value > l.max))
      return bad(l.field, "must be " + std::to_string(l.min) + ".." + std::to_string(l.max) +
                              ", got " + std::to_string(*l.value));
  const node_config nc = node_config_of(c);
  const config& p = nc.protocol;
  // An alive message (name, tags, address, header) must fit one packet.
  if (p.max_tag_bytes + p.max_name_length + 128 > p.udp_buffer_size) {
    const char* blamed = c.udp_buffer_size ? "udp_buffer_size"
                         : c.max_tag_bytes ? "max_tag_bytes"
                                           : "max_name_length";
    return bad(blamed, "max_tag_bytes (" + std::to_string(p.max_tag_bytes) +
                           ") + max_name_length (" + std::to_string(p.max_name_length) +
                           ") + 128 must not exceed udp_buffer_size (" +
                           std::to_string(p.udp_buffer_size) + ")");
  }
  if (c.name.empty() || c.name.size() > p.max_name_length)
    return bad("name",
               "must be 1.." + std::to_string(p.max_name_length) + " bytes (max_name_length)");
  if (!address::parse(c.bind))
    return bad("bind", "expected IP:PORT (e.g. 0.0.0.0:7946 or [::]:7946), got '" + c.bind + "'");
  if (!c.advertise.empty() && !address::parse(c.advertise))
    return bad("advertise", "expected IP:PORT, got '" + c.advertise + "'");
  for (const auto& j : c.join)
    if (!host_port(j)) return bad("join", "expected HOST:PORT, got '" + j + "'");
  if (c.socket.empty() || c.socket.size() > 107)
    return bad("socket", "must be a path of 1..107 bytes");
  if (c.socket_mode > 0777) return bad("socket_mode", "expected octal permission bits like 0600");
  if (!node_config::preset(c.preset))
    return bad("preset", "expected lan, wan or local, got '" + c.preset + "'");
  if (c.label.size() > 255) return bad("label", "at most 255 bytes");
  if (!c.metrics_bind.empty() && !address::parse(c.metrics_bind))
    return bad("metrics_bind", "expected IP:PORT, got '" + c.metrics_bind + "'");
  static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  if (std::find(std::begin(levels), std::end(levels), c.log_level) == std::end(levels))
    return bad("log_level", "expected trace, debug, info, warn, error, critical or off");
  if (!(c.leave_timeout_s > 0 && c.leave_timeout_s <= 300))
    return bad("leave_timeout", "must be in (0, 300] seconds");
  if (c.max_connections < 1 || c.max_connections > 4096)
    return bad("max_connections", "must be 1..4096");
  if (c.max_frame_bytes < 64 || c.max_frame_bytes > (16u << 20))
    return bad("max_frame_bytes", "must be 64..16777216");
  if (c.stream_backlog < 1 || c.stream_backlog > 1'000'000)
    return bad("stream_backlog", "must be 1..1000000");
  if (c.max_streams_per_connection < 1 || c.max_streams_per_connection > 1024)
    return bad("max_streams_per_connection", "must be 1..1024");
  if (!(c.frame_timeout_s > 0 && c.frame_timeout_s <= 3600))
    return bad("frame_timeout", "must be in (0, 3600] seconds");
  if (!(c.keys_timeout_s > 0 && c.keys_timeout_s <= 300))
    return bad("keys_timeout", "must be in (0, 300] seconds");
  if (c.refusal_suspicion_timeout_s &&
      !(*c.refusal_suspicion_timeout_s >= 0 && *c.refusal_suspicion_timeout_s <= 3600))
    return bad("refusal_suspicion_timeout", "must be in [0, 3600] seconds (0 disables)");
  if (c.handlers.size() > 64) return bad("handler", "at most 64 event handlers");
  for (const auto& h : c.handlers) {
    if (h.timeout < std::chrono::milliseconds(1) || h.timeout > std::chrono::hours(1))
      return bad("handler", "timeout must be in [0.001, 3600] seconds (" + h.program + ")");
    if (h.queue_limit < 1 || h.queue_limit > 100000)
      return bad("handler", "queue must be 1..100000 (" + h.program + ")");
    if (h.coalesce < std::chrono::milliseconds::zero() || h.coalesce > std::chrono::hours(1))
      return bad("handler", "coalesce must be in [0, 3600] seconds (" + h.program + ")");
  }
  if (c.reconnect_timeout_s &&
      !(*c.reconnect_timeout_s >= 1 && *c.reconnect_timeout_s <= 30 * 86400.0))
    return bad("reconnect_timeout", "must be in [1, 2592000] seconds (1 s to 30 days)");
  for (const auto& [k, v] : c.tags)
    if (k.empty()) return bad("tags", "empty tag key");
  if (c.tags.size() > p.max_tags)
    return bad("tags", "more than " + std::to_string(p.max_tags) + " tags (max_tags)");
  if (tag_bytes(c.tags) > p.max_tag_bytes)
    return bad("tags", "more than " + std::to_string(p.max_tag_bytes) +
                           " bytes (max_tag_bytes: keys and values, 16 per tag)");
  // What the node itself checks at start, so that nothing valid here fails there.
  config probe = p;
  if (probe.advertise.port() == 0)
    probe.advertise = address::v4({127, 0, 0, 1}, 1);  // bound port, at start
  if (auto err = probe.validate()) return *err;
  return std::nullopt;
}

std::optional<std::string> apply_toml(daemon_config& c, std::string_view text,
                                      const std::string& origin) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
       << e.description();
    return os.str();
  }
  std::optional<std::string> err;
  auto fail = [&](const std::string& key, const std::string& why) {
    if (!err) err = origin + ": " + key + ": " + why;
  };
  auto str = [&](const std::string& key, const toml::node& n, std::string& out) {
    if (auto v = n.value<std::string>())
      out = *v;
    else
      fail(key, "expected a string");
  };
  auto count = [&](const std::string& key, const toml::node& n, std::size_t& out) {
    // Integers only: value<int64_t>() would also convert a float, with
    // undefined behaviour when it is out of range (found by fuzz_config).
    std::optional<std::int64_t> v;
    if (const auto* i = n.as_integer()) v = i->get();
    if (v && *v >= 0)
      out = static_cast<std::size_t>(*v);
    else
      fail(key, "expected a non-negative integer");
    return v && *v >= 0;
  };
  auto limit = [&](const std::string& key, const toml::node& n, std::optional<std::size_t>& out) {
    if (std::size_t v = 0; count(key, n, v)) out = v;
  };
  auto seconds = [&](const std::string& key, const toml::node& n, double& out) {
    if (auto v = n.value<double>())
      out = *v;
    else
      fail(key, "expected a number of seconds");
  };
  for (const auto& [k, n] : t) {
    const std::string key(k.str());
    if (key == "name")
      str(key, n, c.name);
    else if (key == "bind")
      str(key, n, c.bind);
    else if (key == "advertise")
      str(key, n, c.advertise);
    else if (key == "join") {
      const auto* arr = n.as_array();
      if (!arr) {
        fail(key, "expected an array of \"HOST:PORT\" strings");
        continue;
      }
      c.join.clear();
      for (const auto& e : *arr) {
        if (auto v = e.value<std::string>())
          c.join.push_back(*v);
        else
          fail(key, "expected strings");
      }
    } else if (key == "socket")
      str(key, n, c.socket);
    else if (key == "socket_mode") {
      std::string s;
      str(key, n, s);
      if (auto m = parse_mode(s))
        c.socket_mode = *m;
      else
        fail(key, "expected an octal string like \"0600\"");
    } else if (key == "socket_group")
      str(key, n, c.socket_group);
    else if (key == "read_only_socket")
      str(key, n, c.read_only_socket);
    else if (key == "read_only_socket_mode") {
      std::string s;
      str(key, n, s);
      if (auto m = parse_mode(s))
        c.read_only_socket_mode = *m;
      else
        fail(key, "expected an octal string like \"0666\"");
    } else if (key == "data_dir")
      str(key, n, c.data_dir);
    else if (key == "tags") {
      const auto* tab = n.as_table();
      if (!tab) {
        fail(key, "expected a table of strings");
        continue;
      }
      c.tags.clear();
      for (const auto& [tk, tv] : *tab) {
        if (auto v = tv.value<std::string>())
          c.tags[std::string(tk.str())] = *v;
        else
          fail("tags." + std::string(tk.str()), "expected a string");
      }
    } else if (key == "preset")
      str(key, n, c.preset);
    else if (key == "label")
      str(key, n, c.label);
    else if (key == "keyring_file")
      str(key, n, c.keyring_file);
    else if (key == "metrics_bind")
      str(key, n, c.metrics_bind);
    else if (key == "log_level")
      str(key, n, c.log_level);
    else if (key == "leave_timeout")
      seconds(key, n, c.leave_timeout_s);
    else if (key == "max_connections")
      count(key, n, c.max_connections);
    else if (key == "max_frame_bytes")
      count(key, n, c.max_frame_bytes);
    else if (key == "stream_backlog")
      count(key, n, c.stream_backlog);
    else if (key == "max_streams_per_connection")
      count(key, n, c.max_streams_per_connection);
    else if (key == "frame_timeout")
      seconds(key, n, c.frame_timeout_s);
    else if (key == "keys_timeout")
      seconds(key, n, c.keys_timeout_s);
    else if (key == "max_name_length")
      limit(key, n, c.max_name_length);
    else if (key == "max_tag_bytes")
      limit(key, n, c.max_tag_bytes);
    else if (key == "max_members")
      limit(key, n, c.max_members);
    else if (key == "max_push_pull_bytes")
      limit(key, n, c.max_push_pull_bytes);
    else if (key == "udp_buffer_size")
      limit(key, n, c.udp_buffer_size);
    else if (key == "max_tcp_sessions")
      limit(key, n, c.max_tcp_sessions);
    else if (key == "max_packets_per_source_per_second")
      limit(key, n, c.max_packets_per_source_per_second);
    else if (key == "refusal_suspicion_timeout") {
      if (auto v = n.value<double>())
        c.refusal_suspicion_timeout_s = *v;
      else
        fail(key, "expected a number of seconds");
    } else if (key == "handler") {
      const auto* arr = n.as_array();
      if (!arr) {
        fail(key, "expected [[handler]] tables");
        continue;
      }
      c.handlers.clear();
      for (std::size_t i = 0; i < arr->size(); ++i) {
        const auto* tab = (*arr)[i].as_table();
        const std::string where = "handler[" + std::to_string(i) + "]";
        if (!tab) {
          fail(where, "expected a table");
          break;
        }
        std::string program, types;
        bool serf = false;
        double timeout = 30, coalesce = 0;
        std::int64_t queue = 128;
        for (const auto& [hk, hv] : *tab) {
          const std::string f(hk.str());
          if (f == "program" && hv.value<std::string>())
            program = *hv.value<std::string>();
          else if (f == "types" && hv.as_array()) {
            for (const auto& e : *hv.as_array()) {
              const auto v = e.value<std::string>();
              if (!v || v->empty() || v->find_first_of(",=") != std::string::npos) {
                fail(where + ".types", "expected event type names");
                break;
              }
              types += (types.empty() ? "" : ",") + *v;
            }
          } else if (f == "serf_compat" && hv.is_boolean())
            serf = *hv.value<bool>();
          else if (f == "timeout" && hv.value<double>())
            timeout = *hv.value<double>();
          else if (f == "coalesce" && hv.value<double>())
            coalesce = *hv.value<double>();
          else if (f == "queue" && hv.as_integer())
            queue = hv.as_integer()->get();
          else
            fail(where + "." + f,
                 "unknown field or wrong type (program: string, types: array of strings, "
                 "serf_compat: boolean, timeout: seconds, queue: integer, coalesce: seconds)");
        }
        if (program.empty()) {
          fail(where + ".program", "required: the command to run");
          break;
        }
        std::string why;
        auto spec = parse_handler_flag((types.empty() ? "*" : types) + "=" + program, why);
        if (!spec) {
          fail(where, why);
          break;
        }
        spec->serf_compat = serf;
        spec->timeout = std::chrono::milliseconds(
            timeout > 0 && timeout <= 3600 ? static_cast<long long>(timeout * 1000) : 0);
        spec->queue_limit = queue > 0 && queue <= 100000 ? static_cast<std::size_t>(queue) : 0;
        spec->coalesce = std::chrono::milliseconds(
            coalesce >= 0 && coalesce <= 3600 ? static_cast<long long>(coalesce * 1000) : -1);
        c.handlers.push_back(std::move(*spec));
      }
    } else if (key == "reconnect_timeout") {
      if (auto v = n.value<double>())
        c.reconnect_timeout_s = *v;
      else
        fail(key, "expected a number of seconds");
    } else
      fail(key, "unknown field");
  }
  return err;
}

std::optional<daemon_config> load_config(int argc, char** argv, int& exit_code) {
  CLI::App app{"shoald: a shoal cluster member serving the view over a Unix socket", "shoald"};
  app.set_version_flag("--version", std::string("shoald ") + library_version());
  app.option_defaults()->always_capture_default(false);

  std::string config_file, name, bind, advertise, socket, socket_mode, socket_group, data_dir,
      read_only_socket, read_only_socket_mode, preset, label, keyring_file, metrics_bind, log_level;
  std::vector<std::string> join, tags, event_handlers, serf_event_handlers;
  double leave_timeout = 0, frame_timeout = 0, keys_timeout = 0, refusal_timeout = 0,
         reconnect_timeout = 0;
  std::size_t max_connections = 0, max_frame_bytes = 0, stream_backlog = 0, max_streams = 0;
  std::size_t max_name_length = 0, max_tag_bytes = 0, max_members = 0, max_push_pull_bytes = 0,
              udp_buffer_size = 0, max_tcp_sessions = 0, max_packets_per_source = 0;

  auto* o_config =
      app.add_option("--config", config_file, "TOML configuration file")->envname("SHOAL_CONFIG");
  struct opt {
    CLI::Option* o;
    std::function<void(daemon_config&)> apply;
  };
  std::vector<opt> opts;
  const CLI::Validator non_negative(
      [](std::string& v) {
        return v.find('-') == std::string::npos ? "" : "expected a non-negative integer";
      },
      "");
  auto add = [&](const char* flag, auto& var, const char* env, const char* help, auto apply) {
    auto* o = app.add_option(flag, var, help)->envname(env);
    // A negative count would wrap around to a huge one: refuse it as typed.
    if constexpr (std::is_unsigned_v<std::remove_reference_t<decltype(var)>>)
      o->check(non_negative);
    opts.push_back({o, apply});
    return o;
  };
  add("--name", name, "SHOAL_NAME", "member name (default: host name)",
      [&](daemon_config& c) { c.name = name; });
  add("--bind", bind, "SHOAL_BIND", "IP:PORT for UDP and TCP (default 0.0.0.0:7946)",
      [&](daemon_config& c) { c.bind = bind; });
  add("--advertise", advertise, "SHOAL_ADVERTISE", "IP:PORT peers use to reach this node",
      [&](daemon_config& c) { c.advertise = advertise; });
  add("--join", join, "SHOAL_JOIN", "HOST:PORT of a member to join (repeatable)",
      [&](daemon_config& c) { c.join = join; })
      ->delimiter(',');
  add("--socket", socket, "SHOAL_SOCKET", "Unix socket path (default /run/shoal/shoald.sock)",
      [&](daemon_config& c) { c.socket = socket; });
  add("--socket-mode", socket_mode, "SHOAL_SOCKET_MODE", "socket file mode, octal (default 0600)",
      [&](daemon_config&) {});
  add("--socket-group", socket_group, "SHOAL_SOCKET_GROUP", "group owning the socket file",
      [&](daemon_config& c) { c.socket_group = socket_group; });
  add("--read-only-socket", read_only_socket, "SHOAL_READ_ONLY_SOCKET",
      "a second Unix socket serving only members, member, info, stats and streams",
      [&](daemon_config& c) { c.read_only_socket = read_only_socket; });
  add("--read-only-socket-mode", read_only_socket_mode, "SHOAL_READ_ONLY_SOCKET_MODE",
      "its file mode, octal (default 0666)", [&](daemon_config&) {});
  add("--data-dir", data_dir, "SHOAL_DATA_DIR", "directory for persisted state",
      [&](daemon_config& c) { c.data_dir = data_dir; });
  add("--tag", tags, "SHOAL_TAGS", "tag KEY=VALUE (repeatable)", [&](daemon_config&) {
  })->delimiter(',');
  add("--preset", preset, "SHOAL_PRESET", "lan, wan or local (default lan)",
      [&](daemon_config& c) { c.preset = preset; });
  add("--label", label, "SHOAL_LABEL", "cluster label", [&](daemon_config& c) { c.label = label; });
  add("--keyring-file", keyring_file, "SHOAL_KEYRING_FILE",
      "JSON array of base64 keys, primary first",
      [&](daemon_config& c) { c.keyring_file = keyring_file; });
  add("--metrics-bind", metrics_bind, "SHOAL_METRICS_BIND",
      "IP:PORT for Prometheus metrics (default off)",
      [&](daemon_config& c) { c.metrics_bind = metrics_bind; });
  add("--log-level", log_level, "SHOAL_LOG_LEVEL",
      "trace, debug, info, warn, error, off (default info)",
      [&](daemon_config& c) { c.log_level = log_level; });
  add("--leave-timeout", leave_timeout, "SHOAL_LEAVE_TIMEOUT",
      "seconds for a graceful leave (default 5)",
      [&](daemon_config& c) { c.leave_timeout_s = leave_timeout; });
  add("--max-connections", max_connections, "SHOAL_MAX_CONNECTIONS",
      "socket clients at once (default 64)",
      [&](daemon_config& c) { c.max_connections = max_connections; });
  add("--max-frame-bytes", max_frame_bytes, "SHOAL_MAX_FRAME_BYTES",
      "largest request frame (default 65536)",
      [&](daemon_config& c) { c.max_frame_bytes = max_frame_bytes; });
  add("--stream-backlog", stream_backlog, "SHOAL_STREAM_BACKLOG",
      "frames queued per client before lagged (default 1024)",
      [&](daemon_config& c) { c.stream_backlog = stream_backlog; });
  add("--max-streams", max_streams, "SHOAL_MAX_STREAMS",
      "event streams per connection (default 16)",
      [&](daemon_config& c) { c.max_streams_per_connection = max_streams; });
  add("--frame-timeout", frame_timeout, "SHOAL_FRAME_TIMEOUT",
      "seconds to finish a started frame (default 10)",
      [&](daemon_config& c) { c.frame_timeout_s = frame_timeout; });
  add("--keys-timeout", keys_timeout, "SHOAL_KEYS_TIMEOUT",
      "seconds to collect key answers (default 5)",
      [&](daemon_config& c) { c.keys_timeout_s = keys_timeout; });

  add("--refusal-suspicion-timeout", refusal_timeout, "SHOAL_REFUSAL_SUSPICION_TIMEOUT",
      "seconds a suspicion lasts once enough members saw the node's port refused (ICMP port "
      "unreachable), 0..3600, 0 disables (default: lan 2, wan 10, local 1; 0 with a keyring)",
      [&](daemon_config& c) { c.refusal_suspicion_timeout_s = refusal_timeout; });
  add("--reconnect-timeout", reconnect_timeout, "SHOAL_RECONNECT_TIMEOUT",
      "seconds failed and left members are kept before they are reaped, 1..2592000 (default "
      "86400)",
      [&](daemon_config& c) { c.reconnect_timeout_s = reconnect_timeout; });

  add("--event-handler", event_handlers, "SHOAL_EVENT_HANDLER",
      "[TYPES=]PROGRAM run for events, Serf's syntax (repeatable; TYPES: member-join,"
      "member-leave,member-failed,member-update,member-reap,user,user:NAME,query,query:NAME)",
      [&](daemon_config&) {});
  add("--serf-event-handler", serf_event_handlers, "SHOAL_SERF_EVENT_HANDLER",
      "as --event-handler, run the way Serf runs handlers (/bin/sh -c, SERF_* variables, "
      "tab-separated member lines)",
      [&](daemon_config&) {});

  add("--max-name-length", max_name_length, "SHOAL_MAX_NAME_LENGTH",
      "longest member name in bytes, 1..1024 (default 128); longer names from peers are dropped",
      [&](daemon_config& c) { c.max_name_length = max_name_length; });
  add("--max-tag-bytes", max_tag_bytes, "SHOAL_MAX_TAG_BYTES",
      "bytes of one member's tags: keys, values and 16 per tag, 0..64000 (default 512); larger "
      "tags from peers are dropped",
      [&](daemon_config& c) { c.max_tag_bytes = max_tag_bytes; });
  add("--max-members", max_members, "SHOAL_MAX_MEMBERS",
      "members tracked, 2..1048576 (default 65536); new ones beyond are ignored (members_rejected)",
      [&](daemon_config& c) { c.max_members = max_members; });
  add("--max-push-pull-bytes", max_push_pull_bytes, "SHOAL_MAX_PUSH_PULL_BYTES",
      "largest push-pull state sent or accepted, 4096..268435456 (default 16777216; "
      "frames_too_large)",
      [&](daemon_config& c) { c.max_push_pull_bytes = max_push_pull_bytes; });
  add("--udp-buffer-size", udp_buffer_size, "SHOAL_UDP_BUFFER_SIZE",
      "largest UDP packet built, bytes, 576..65000 (default 1400); bounds datagrams read "
      "(udp_too_large)",
      [&](daemon_config& c) { c.udp_buffer_size = udp_buffer_size; });
  add("--max-tcp-sessions", max_tcp_sessions, "SHOAL_MAX_TCP_SESSIONS",
      "TCP exchanges with peers at once, each direction, 1..4096 (default 64; tcp_rejected)",
      [&](daemon_config& c) { c.max_tcp_sessions = max_tcp_sessions; });
  add("--max-packets-per-source-per-second", max_packets_per_source,
      "SHOAL_MAX_PACKETS_PER_SOURCE_PER_SECOND",
      "UDP packets read per second from one IP:PORT, 0..1000000, 0 no limit (default 1000; "
      "rate_limited)",
      [&](daemon_config& c) { c.max_packets_per_source_per_second = max_packets_per_source; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    exit_code = app.exit(e);
    if (exit_code != 0) exit_code = 2;
    return std::nullopt;
  }

  daemon_config c;
  c.name = host_name();
  auto fail = [&](const std::string& msg) -> std::optional<daemon_config> {
    std::fprintf(stderr, "shoald: config: %s\n", msg.c_str());
    exit_code = 2;
    return std::nullopt;
  };
  if (*o_config) {
    std::ifstream in(config_file, std::ios::binary);
    if (!in) return fail(config_file + ": cannot read");
    std::ostringstream text;
    text << in.rdbuf();
    if (text.str().size() > (1u << 20)) return fail(config_file + ": larger than 1 MiB");
    if (auto err = apply_toml(c, text.str(), config_file)) return fail(*err);
    c.config_file = config_file;
  }
  for (auto& o : opts)
    if (*o.o) o.apply(c);
  for (auto* list : {&event_handlers, &serf_event_handlers}) {
    for (const auto& text : *list) {
      std::string why;
      auto spec = parse_handler_flag(text, why);
      if (!spec)
        return fail(
            std::string(list == &event_handlers ? "--event-handler" : "--serf-event-handler") +
            ": " + why);
      spec->serf_compat = list == &serf_event_handlers;
      c.handlers.push_back(std::move(*spec));
    }
  }
  if (!read_only_socket_mode.empty()) {
    auto m = parse_mode(read_only_socket_mode);
    if (!m)
      return fail("read_only_socket_mode: expected octal permission bits like 0666, got '" +
                  read_only_socket_mode + "'");
    c.read_only_socket_mode = *m;
  }
  if (!socket_mode.empty()) {
    auto m = parse_mode(socket_mode);
    if (!m)
      return fail("socket_mode: expected octal permission bits like 0600, got '" + socket_mode +
                  "'");
    c.socket_mode = *m;
  }
  if (!tags.empty()) {
    c.tags.clear();
    for (const auto& kv : tags) {
      auto t = parse_tag(kv);
      if (!t) return fail("tag: expected KEY=VALUE, got '" + kv + "'");
      c.tags[t->first] = t->second;
    }
  }
  if (auto err = validate(c)) return fail(*err);
  return c;
}

}  // namespace shoal::daemon
