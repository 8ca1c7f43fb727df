// shoalctl: the command-line client of shoald (daemon/SHOALCTL.md).
//
// Every subcommand is one request over the Unix socket (PROTOCOL.md) through
// the shoal_client library, printed as an aligned table (default) or as JSON
// (--format json). Exit codes: 0 ok, 1 error reported by the daemon, 2 usage,
// 3 cannot reach the daemon.
#include <signal.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <shoal/version.hpp>

#include "client.hpp"
#include "key_text.hpp"
#include "names.hpp"

namespace {

using namespace shoal::daemon;
using ojson = nlohmann::ordered_json;

enum exit_status : int { exit_ok = 0, exit_daemon = 1, exit_usage = 2, exit_unreachable = 3 };

struct settings {
  std::string socket = "/run/shoal/shoald.sock";
  std::string format = "table";
  double timeout_s = 30;
};

bool json_out(const settings& s) {
  return s.format == "json";
}

// ---- output helpers ----

/// Text that came from the network goes to a terminal: control characters
/// become \xNN so a member name cannot move the cursor.
std::string clean(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

/// Columns shown on a terminal: UTF-8 continuation bytes take no column.
std::size_t width(const std::string& s) {
  std::size_t n = 0;
  for (const char c : s)
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
  return n;
}

/// Prints rows aligned in columns two spaces apart (as `serf members`); the
/// last column is not padded.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.resize(i + 1, 0);
      w[i] = std::max(w[i], width(r[i]));
    }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(w[i] - width(r[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
}

std::string pad(std::string s, std::size_t w) {
  if (width(s) < w) s.append(w - width(s), ' ');
  return s;
}

void print_json(const ojson& v) {
  // replace: a string that is not UTF-8 must not abort the output.
  std::printf("%s\n", v.dump(-1, ' ', false, ojson::error_handler_t::replace).c_str());
}

std::string scalar_text(const json& v) {
  if (v.is_string()) return clean(v.get<std::string>());
  if (v.is_null()) return "";
  return clean(v.dump(-1, ' ', false, json::error_handler_t::replace));
}

std::string str_field(const json& m, const char* key) {
  const auto it = m.find(key);
  return it == m.end() ? std::string() : scalar_text(*it);
}

std::string tags_text(const json& tags) {
  std::string out;
  if (!tags.is_object()) return out;
  for (const auto& [k, v] : tags.items()) {  // json objects iterate sorted by key
    if (!out.empty()) out += ',';
    out += clean(k) + "=" + scalar_text(v);
  }
  return out;
}

std::string host_port(const json& m, const char* addr_key = "addr", const char* port_key = "port") {
  const auto a = str_field(m, addr_key);
  const auto p = str_field(m, port_key);
  return (a.find(':') != std::string::npos ? "[" + a + "]" : a) + ":" + p;
}

/// The status column: a damped member (shown failed while its return is held
/// back, PROTOCOL.md) reads `failed (damped)`.
std::string status_text(const json& m) {
  auto st = str_field(m, "status");
  if (auto it = m.find("damped"); it != m.end() && it->is_boolean() && it->get<bool>())
    st += " (damped)";
  return st;
}

/// A member in the documented key order (SHOALCTL.md); keys a later daemon
/// adds follow, unchanged.
ojson member_json(const json& m) {
  ojson out = ojson::object();
  if (!m.is_object()) return out;
  for (const char* k :
       {"name", "addr", "port", "status", "damped", "incarnation", "tags", "protocol"})
    if (auto it = m.find(k); it != m.end()) out[k] = ojson(*it);
  for (const auto& [k, v] : m.items())
    if (!out.contains(k)) out[k] = ojson(v);
  return out;
}

// ---- talking to the daemon ----

int exit_for(const std::error_code& ec) {
  if (ec == client_errc::bad_reply || ec == client_errc::frame_too_large ||
      ec == client_errc::handshake_failed)
    return exit_daemon;
  return exit_unreachable;  // could not connect, or the connection broke or timed out
}

int report(const reply& r, const settings& s) {
  if (r.ec) {
    std::fprintf(stderr, "shoalctl: %s\n", describe(r.ec, s.socket).c_str());
    return exit_for(r.ec);
  }
  std::fprintf(stderr, "shoalctl: %s: %s\n", clean(r.error->code).c_str(),
               clean(r.error->message).c_str());
  return exit_daemon;
}

/// Connects and handshakes; on failure says why and sets `status`.
std::optional<client> connect(const settings& s, int& status) {
  client::options opt;
  opt.socket_path = s.socket;
  opt.timeout = std::chrono::milliseconds(static_cast<long long>(s.timeout_s * 1000));
  reply r;
  auto c = client::connect(opt, r);
  if (!c) status = report(r, s);
  return c;
}

/// Connects, runs one request and hands its result to `show`.
int one_call(const settings& s, std::string_view cmd, const json& args,
             const std::function<int(const json&)>& show) {
  int status = exit_ok;
  auto c = connect(s, status);
  if (!c) return status;
  const auto r = c->call(cmd, args);
  if (!r.ok()) return report(r, s);
  return show(r.result);
}

/// Connects and reads every page of `members`, handing the whole list to `show`.
int paged_members(const settings& s, const json& args,
                  const std::function<int(const json&)>& show) {
  int status = exit_ok;
  auto c = connect(s, status);
  if (!c) return status;
  const auto r = c->members(args);
  if (!r.ok()) return report(r, s);
  return show(r.result);
}

/// A command whose JSON output is the daemon's result as it came; `table`
/// prints it for humans.
int mirrored_call(const settings& s, std::string_view cmd, const json& args,
                  const std::function<void(const json&)>& table) {
  return one_call(s, cmd, args, [&](const json& res) {
    if (json_out(s))
      print_json(ojson(res));
    else
      table(res);
    return int{exit_ok};
  });
}

// ---- subcommands ----

struct member_filter {
  std::vector<std::string> status;
  std::string name;
  std::vector<std::string> tags;  // k=RE
  bool detailed = false;
};

/// {"k": "v", ...} from "k=v" arguments, each split at its first '='; nullopt
/// (after saying `what` on stderr) when one has no '=' or an empty key.
std::optional<json> pairs_to_map(const std::vector<std::string>& pairs, const char* what) {
  json m = json::object();
  for (const auto& p : pairs) {
    const auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "shoalctl: %s, got '%s'\n", what, p.c_str());
      return std::nullopt;
    }
    m[p.substr(0, eq)] = p.substr(eq + 1);
  }
  return m;
}

int cmd_members(const settings& s, const member_filter& f) {
  json args = json::object();
  if (!f.status.empty()) args["status"] = f.status;
  if (!f.name.empty()) args["name"] = f.name;
  if (!f.tags.empty()) {
    auto t = pairs_to_map(f.tags, "--tag wants KEY=REGEX");
    if (!t) return exit_usage;
    args["tags"] = std::move(*t);
  }
  return paged_members(s, args, [&](const json& res) {
    const auto it = res.find("members");
    if (!res.is_object() || it == res.end() || !it->is_array()) {
      std::fprintf(stderr, "shoalctl: the daemon's members reply has no members array\n");
      return int{exit_daemon};
    }
    if (json_out(s)) {
      ojson out = {{"members", ojson::array()}};
      for (const auto& m : *it) out["members"].push_back(member_json(m));
      print_json(out);
      return int{exit_ok};
    }
    std::vector<std::vector<std::string>> rows;
    if (f.detailed)
      rows.push_back({"NAME", "ADDRESS", "STATUS", "INCARNATION", "PROTOCOL", "TAGS"});
    else
      rows.push_back({"NAME", "ADDRESS", "STATUS", "TAGS"});
    for (const auto& m : *it) {
      if (f.detailed)
        rows.push_back({str_field(m, "name"), host_port(m), status_text(m),
                        str_field(m, "incarnation"), str_field(m, "protocol"),
                        tags_text(m.value("tags", json::object()))});
      else
        rows.push_back({str_field(m, "name"), host_port(m), status_text(m),
                        tags_text(m.value("tags", json::object()))});
    }
    print_table(rows);
    return int{exit_ok};
  });
}

void print_member(const json& m) {
  print_table({{"name:", str_field(m, "name")},
               {"address:", host_port(m)},
               {"status:", status_text(m)},
               {"incarnation:", str_field(m, "incarnation")},
               {"protocol:", str_field(m, "protocol")},
               {"tags:", tags_text(m.value("tags", json::object()))}});
}

int cmd_member(const settings& s, const std::string& name) {
  return one_call(s, "member", json{{"name", name}}, [&](const json& m) {
    if (json_out(s))
      print_json(member_json(m));
    else
      print_member(m);
    return int{exit_ok};
  });
}

int cmd_join(const settings& s, const std::vector<std::string>& addrs, bool replay) {
  json args{{"addrs", addrs}};
  if (replay) args["replay"] = true;
  return mirrored_call(s, "join", args, [&](const json& res) {
    std::printf("contacted %s of %s addresses\n", str_field(res, "contacted").c_str(),
                str_field(res, "resolved").c_str());
  });
}

int cmd_leave(const settings& s) {
  return mirrored_call(s, "leave", nullptr,
                       [](const json&) { std::printf("left the cluster; shoald is exiting\n"); });
}

int cmd_force_leave(const settings& s, const std::string& name, bool prune) {
  json args{{"name", name}};
  if (prune) args["prune"] = true;
  return mirrored_call(s, "force-leave", args, [&](const json&) {
    std::printf(prune ? "%s is now marked left and forgotten\n" : "%s is now marked left\n",
                clean(name).c_str());
  });
}

int cmd_event(const settings& s, const std::string& name, const std::string& payload,
              bool coalesce) {
  json args = {
      {"name", name},
      {"payload", json::binary(std::vector<std::uint8_t>(payload.begin(), payload.end()))}};
  if (coalesce) args["coalesce"] = true;
  return mirrored_call(s, "event", args, [&](const json& res) {
    std::printf("event %s sent (ltime %s)\n", clean(name).c_str(),
                scalar_text(res.value("ltime", json())).c_str());
  });
}

int cmd_tags(const settings& s, const std::vector<std::string>& set,
             const std::vector<std::string>& unset) {
  json args = json::object();
  if (!set.empty()) {
    auto m = pairs_to_map(set, "tags set wants KEY=VALUE");
    if (!m) return exit_usage;
    args["set"] = std::move(*m);
  }
  if (!unset.empty()) args["unset"] = unset;
  return mirrored_call(s, "tags", args, [&](const json& res) {
    std::vector<std::vector<std::string>> rows;
    if (const auto t = res.find("tags"); t != res.end() && t->is_object())
      for (const auto& [k, v] : t->items()) rows.push_back({clean(k), scalar_text(v)});
    print_table(rows);
  });
}

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) {
  g_stop = 1;
}

std::string utc_time(const json& ms) {
  if (!ms.is_number_unsigned()) return "-";
  const auto t = ms.get<std::uint64_t>();
  const std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%03uZ", buf, static_cast<unsigned>(t % 1000));
  return out;
}

int cmd_monitor(const settings& s, const std::vector<std::string>& types, bool snapshot,
                double coalesce_s) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  int status = exit_ok;
  auto c = connect(s, status);
  if (!c) return status;
  std::uint64_t id = 0;
  const auto r = c->open_stream(types, id, snapshot, static_cast<std::uint64_t>(coalesce_s * 1000));
  if (!r.ok()) return report(r, s);
  while (!g_stop) {
    stream_message m;
    const auto ec = c->next_event(m, std::chrono::milliseconds(200));
    if (ec == client_errc::timed_out) continue;
    if (ec) {
      std::fprintf(stderr, "shoalctl: %s\n", describe(ec, s.socket).c_str());
      return exit_for(ec);
    }
    if (m.what == stream_message::kind::lagged) {
      std::fprintf(stderr,
                   "shoalctl: too slow: the daemon dropped %s event(s) and closed the stream\n",
                   str_field(m.body, "dropped").c_str());
      return exit_daemon;
    }
    json e = m.body;
    // A user event's payload arrives as bytes: shown as text (bytes that are
    // not UTF-8 are replaced in JSON, escaped in the table).
    if (auto it = e.find("payload"); it != e.end() && it->is_binary()) {
      const auto& b = it->get_binary();
      *it = std::string(b.begin(), b.end());
    }
    if (json_out(s)) {
      ojson out = ojson::object();  // documented order first (SHOALCTL.md), then the rest
      for (const char* k : {"type", "seq", "time_ms", "member", "name", "origin", "ltime",
                            "payload", "query", "deadline_ms"})
        if (auto it = e.find(k); it != e.end()) out[k] = ojson(*it);
      if (out.contains("member")) out["member"] = member_json(e["member"]);
      for (const auto& [k, v] : e.items())
        if (!out.contains(k)) out[k] = ojson(v);
      print_json(out);
    } else if (str_field(e, "type") == "snapshot_end") {
      print_table({{utc_time(e.value("time_ms", json())), pad("snapshot_end", 9),
                    str_field(e, "members") + " members; live events follow"}});
    } else if (str_field(e, "type") == "user" || str_field(e, "type") == "query") {
      print_table({{utc_time(e.value("time_ms", json())), pad(str_field(e, "type"), 9),
                    str_field(e, "name"), "from " + str_field(e, "origin"),
                    "ltime " + str_field(e, "ltime"), str_field(e, "payload")}});
    } else {
      const json member = e.value("member", json::object());
      // Lines come one at a time: fixed widths for the short columns keep them roughly aligned.
      print_table({{utc_time(e.value("time_ms", json())), pad(str_field(e, "type"), 9),
                    str_field(member, "name"), host_port(member), pad(status_text(member), 7),
                    tags_text(member.value("tags", json::object()))}});
    }
    std::fflush(stdout);
  }
  return exit_ok;
}

/// "alive=3 suspect=0 failed=1 left=0", states in that order, then any others.
std::string counts_text(const json& counts) {
  static const std::vector<std::string> order(status_names.begin(), status_names.end());
  std::string v;
  const auto add = [&](const std::string& k, const json& n) {
    v += (v.empty() ? "" : " ") + clean(k) + "=" + scalar_text(n);
  };
  for (const auto& k : order)
    if (counts.contains(k)) add(k, counts[k]);
  for (const auto& [k, n] : counts.items())
    if (std::find(order.begin(), order.end(), k) == order.end()) add(k, n);
  return v;
}

int cmd_info(const settings& s) {
  return mirrored_call(s, "info", nullptr, [&](const json& res) {
    std::vector<std::vector<std::string>> rows;
    const std::vector<std::pair<const char*, const char*>> known = {
        {"name", "name"},       {"version", "version"},
        {"addr", "address"},    {"bind", "bind"},
        {"preset", "preset"},   {"health_score", "health score"},
        {"digest", "digest"},   {"incarnation", "incarnation"},
        {"members", "members"}, {"encrypted", "encrypted"},
        {"label", "label"},     {"uptime_s", "uptime (s)"}};
    for (const auto& [key, title] : known) {
      const auto it = res.find(key);
      if (it == res.end()) continue;
      std::string v;
      if (std::string_view(key) == "addr")
        v = host_port(res);
      else if (std::string_view(key) == "members" && it->is_object())
        v = counts_text(*it);
      else
        v = scalar_text(*it);
      rows.push_back({std::string(title) + ":", v});
    }
    for (const auto& [k, v] : res.items()) {  // what a later daemon adds
      if (k == "port") continue;
      bool shown = false;
      for (const auto& kn : known) shown = shown || k == kn.first;
      if (!shown) rows.push_back({clean(k) + ":", scalar_text(v)});
    }
    print_table(rows);
  });
}

/// One `a.b.c  value` row per leaf of nested maps (depth is bounded by the client).
void flatten(const std::string& prefix, const json& v,
             std::vector<std::vector<std::string>>& rows) {
  if (!v.is_object()) {
    rows.push_back({prefix, scalar_text(v)});
    return;
  }
  for (const auto& [k, e] : v.items())
    flatten(prefix.empty() ? clean(k) : prefix + "." + clean(k), e, rows);
}

int cmd_stats(const settings& s) {
  return mirrored_call(s, "stats", nullptr, [&](const json& res) {
    std::vector<std::vector<std::string>> rows;
    flatten("", res, rows);
    print_table(rows);
  });
}

int cmd_keys(const settings& s, const std::string& op, const std::string& key) {
  json args{{"op", op}};
  if (op != "list") args["key"] = key;
  return one_call(s, "keys", args, [&](const json& res) {
    const auto nodes = str_field(res, "nodes");
    const auto responded = str_field(res, "responded");
    const auto errors = res.value("errors", json::object());
    const bool partial = !errors.empty() || nodes != responded;
    if (json_out(s)) {
      print_json(ojson(res));
    } else if (op == "list") {
      std::vector<std::vector<std::string>> rows{{"KEY", "NODES", "PRIMARY"}};
      const auto keys = res.value("keys", json::object());
      const auto primary = res.value("primary", json::object());
      for (const auto& [k, n] : keys.items())
        rows.push_back(
            {clean(k), scalar_text(n) + "/" + responded,
             primary.contains(k) ? scalar_text(primary[k]) + "/" + responded : "0/" + responded});
      print_table(rows);
    } else {
      std::printf("%s: %s of %s nodes responded\n", op.c_str(), responded.c_str(), nodes.c_str());
    }
    if (partial) {
      std::fprintf(stderr, "shoalctl: keys %s: %s of %s nodes responded, %zu failed\n", op.c_str(),
                   responded.c_str(), nodes.c_str(), errors.size());
      for (const auto& [n, msg] : errors.items())
        std::fprintf(stderr, "  %s: %s\n", clean(n).c_str(), scalar_text(msg).c_str());
    }
    return partial ? int{exit_daemon} : int{exit_ok};
  });
}

struct query_options {
  std::string name;
  std::string payload;
  std::string node;
  std::vector<std::string> tags;  // KEY=REGEX
  double timeout_s = 0;           // 0: the daemon's default
  bool no_ack = false;
};

/// The bytes of a payload as text (not UTF-8: replaced in JSON, escaped in tables).
std::string payload_text(const json& e) {
  const auto it = e.find("payload");
  if (it == e.end() || !it->is_binary()) return "";
  const auto& b = it->get_binary();
  return std::string(b.begin(), b.end());
}

/// Runs a query, printing each ack and response as it comes (one JSON object
/// per line with --format json, then the summary); exit 0 once it ends.
int cmd_query(const settings& s, const query_options& q) {
  json args{{"name", q.name}};
  if (!q.payload.empty()) args["payload"] = q.payload;
  if (!q.node.empty()) args["node"] = q.node;
  if (!q.tags.empty()) {
    auto t = pairs_to_map(q.tags, "--tag wants KEY=REGEX");
    if (!t) return exit_usage;
    args["tags"] = std::move(*t);
  }
  if (q.timeout_s > 0) args["timeout_ms"] = static_cast<std::uint64_t>(q.timeout_s * 1000);
  if (q.no_ack) args["ack"] = false;
  int status = exit_ok;
  auto c = connect(s, status);
  if (!c) return status;
  // The daemon replies when the query's timeout has passed: wait for that
  // (at most 300 s) plus the usual reply timeout.
  const auto wait = std::chrono::milliseconds(
      static_cast<long long>((q.timeout_s > 0 ? q.timeout_s : 300.0) * 1000 + s.timeout_s * 1000));
  const auto r = c->query(
      args,
      [&](const json& e) {
        const auto type = str_field(e, "type");
        if (json_out(s)) {
          ojson out{{"type", type}, {"from", ojson(e.value("from", json()))}};
          if (type == "response") out["payload"] = payload_text(e);
          print_json(out);
        } else if (type == "ack") {
          std::printf("ack from %s\n", str_field(e, "from").c_str());
        } else {
          std::printf("response from %s: %s\n", str_field(e, "from").c_str(),
                      clean(payload_text(e)).c_str());
        }
        std::fflush(stdout);
      },
      wait);
  if (!r.ok()) return report(r, s);
  if (json_out(s)) {
    ojson out{{"type", "done"}};
    for (const auto& [k, v] : r.result.items()) out[k] = ojson(v);
    print_json(out);
  } else {
    std::printf("total acks: %s, responses: %s\n", str_field(r.result, "acks").c_str(),
                str_field(r.result, "responses").c_str());
  }
  return exit_ok;
}

/// `_shoal.ping` to every member: who answers, and whether their view (its
/// digest) is ours. Members the local view holds alive or suspect that did
/// not answer are listed as not answering; exit 1 when any did not.
int cmd_reachability(const settings& s, double timeout_s) {
  int status = exit_ok;
  auto c = connect(s, status);
  if (!c) return status;
  const auto info = c->call("info");
  if (!info.ok()) return report(info, s);
  const auto mem = c->members(json{{"status", {"alive", "suspect"}}});
  if (!mem.ok()) return report(mem, s);
  json args{{"name", "_shoal.ping"}};
  if (timeout_s > 0) args["timeout_ms"] = static_cast<std::uint64_t>(timeout_s * 1000);
  std::set<std::string> acked;
  std::map<std::string, std::string> digests;
  const auto wait = std::chrono::milliseconds(
      static_cast<long long>((timeout_s > 0 ? timeout_s : 300.0) * 1000 + s.timeout_s * 1000));
  const auto r = c->query(
      args,
      [&](const json& e) {
        const auto from = e.value("from", json());
        if (!from.is_string()) return;
        if (str_field(e, "type") == "ack") acked.insert(from.get<std::string>());
        if (str_field(e, "type") == "response") digests[from.get<std::string>()] = payload_text(e);
      },
      wait);
  if (!r.ok()) return report(r, s);
  // Views move while the query runs (a member stopped a moment ago turns
  // suspect): a digest equal to ours before or after it counts as the same.
  const auto info_after = c->call("info");
  const std::set<std::string> ours{
      str_field(info.result, "digest"),
      str_field(info_after.ok() ? info_after.result : info.result, "digest")};
  struct row {
    std::string name, status;
    bool answered;
    std::string view;
  };
  std::vector<row> rows;
  std::set<std::string> known;
  for (const auto& m : mem.result.value("members", json::array())) {
    const auto n = m.value("name", json());
    if (!n.is_string()) continue;
    const auto name = n.get<std::string>();
    known.insert(name);
    const bool answered = acked.count(name) || digests.count(name);
    std::string view = "-";
    if (auto it = digests.find(name); it != digests.end())
      view = ours.count(it->second) ? "same" : "differs";
    rows.push_back({name, str_field(m, "status"), answered, view});
  }
  for (const auto& n : acked)  // answered, unknown to our view
    if (!known.count(n))
      rows.push_back({n, "unknown", true,
                      digests.count(n) ? (ours.count(digests[n]) ? "same" : "differs") : "-"});
  std::size_t missing = 0;
  for (const auto& rw : rows) missing += rw.answered ? 0 : 1;
  if (json_out(s)) {
    ojson members = ojson::array();
    for (const auto& rw : rows)
      members.push_back(
          {{"name", rw.name}, {"status", rw.status}, {"answered", rw.answered}, {"view", rw.view}});
    print_json(ojson{{"members", members},
                     {"answered", rows.size() - missing},
                     {"not_answering", missing},
                     {"duration_ms", ojson(r.result.value("duration_ms", json()))}});
  } else {
    std::vector<std::vector<std::string>> table{{"NAME", "STATUS", "ANSWERED", "VIEW"}};
    for (const auto& rw : rows)
      table.push_back({clean(rw.name), rw.status, rw.answered ? "yes" : "NO", rw.view});
    print_table(table);
    std::printf("%zu of %zu members answered; %zu did not\n", rows.size() - missing, rows.size(),
                missing);
  }
  return missing == 0 ? int{exit_ok} : int{exit_daemon};
}

int cmd_keygen() {
  const auto key = random_key();  // libsodium's randombytes: the kernel's getrandom(2)
  if (!key) {
    std::fprintf(stderr, "shoalctl: libsodium could not be initialised\n");
    return exit_daemon;
  }
  std::printf("%s\n", base64_encode(*key).c_str());
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  settings s;
  CLI::App app{"shoalctl: query and control shoald over its Unix socket"};
  app.set_version_flag("--version", std::string("shoalctl ") + shoal::library_version());
  app.fallthrough();  // global options are accepted after the subcommand too
  app.require_subcommand(1);
  app.add_option("--socket", s.socket, "shoald's Unix socket")
      ->envname("SHOAL_SOCKET")
      ->capture_default_str();
  app.add_option("--timeout", s.timeout_s, "seconds to wait for the daemon's reply")
      ->check(CLI::Range(0.001, 86400.0))
      ->capture_default_str();
  const auto add_format = [&](CLI::App* sub) {
    sub->add_option("--format", s.format, "table or json")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
  };

  member_filter filter;
  auto* members = app.add_subcommand("members", "list members");
  members->add_option("--status", filter.status, "keep these states (repeatable, or a,b)")
      ->delimiter(',')
      ->check(CLI::IsMember(std::vector<std::string>(status_names.begin(), status_names.end())));
  members->add_option("--name", filter.name, "regular expression matching the whole name");
  members->add_option("--tag", filter.tags, "KEY=REGEX on a tag's whole value (repeatable)");
  members->add_flag("--detailed", filter.detailed, "also incarnation and protocol");
  add_format(members);

  std::string name;
  auto* member = app.add_subcommand("member", "one member");
  member->add_option("name", name, "member name")->required();
  add_format(member);

  std::vector<std::string> addrs;
  auto* join = app.add_subcommand("join", "join a cluster through these addresses");
  join->add_option("addrs", addrs, "HOST:PORT")->required();
  add_format(join);
  bool join_replay = false;
  join->add_flag("--replay", join_replay,
                 "deliver the recent user events the members hold (Serf's join -replay)");

  auto* leave = app.add_subcommand("leave", "leave the cluster gracefully; shoald exits");
  add_format(leave);

  std::string fl_name;
  auto* force_leave = app.add_subcommand("force-leave", "mark a failed member as left");
  force_leave->add_option("name", fl_name, "member name")->required();
  bool fl_prune = false;
  force_leave->add_flag("--prune", fl_prune,
                        "also forget it at once on every member (failed or left members)");
  add_format(force_leave);

  std::vector<std::string> tag_set, tag_unset;
  auto* tags = app.add_subcommand("tags", "change the local node's tags");
  tags->require_subcommand(1);
  auto* tags_set = tags->add_subcommand("set", "set tags");
  tags_set->add_option("pairs", tag_set, "KEY=VALUE")->required();
  add_format(tags_set);
  auto* tags_unset = tags->add_subcommand("unset", "remove tags");
  tags_unset->add_option("keys", tag_unset, "KEY")->required();
  add_format(tags_unset);

  std::vector<std::string> types;
  auto* monitor =
      app.add_subcommand("monitor", "print membership and user events until interrupted");
  monitor
      ->add_option("--type", types,
                   "event types to show (repeatable, or a,b): joined updated suspected alive "
                   "failed left reaped, user (every user event), user:NAME, query (queries "
                   "to this member) or query:NAME")
      ->delimiter(',')
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            if (v == "user" || (v.rfind("user:", 0) == 0 && v.size() > 5)) return "";
            if (v == "query" || (v.rfind("query:", 0) == 0 && v.size() > 6)) return "";
            for (const auto n : event_names)
              if (v == n) return "";
            return "unknown event type '" + v + "'";
          },
          "TYPE"));

  std::string ev_name, ev_payload;
  auto* event = app.add_subcommand("event", "send a user event to every member");
  event->add_option("name", ev_name, "event name (1 to 128 bytes)")->required();
  event->add_option("payload", ev_payload, "payload (default empty)");
  bool ev_coalesce = false;
  event->add_flag("--coalesce", ev_coalesce,
                  "receivers' streams and handlers that coalesce may deliver only the last event "
                  "of this name within their window");
  add_format(event);
  bool mon_snapshot = false;
  double mon_coalesce = 0;
  monitor
      ->add_option("--coalesce", mon_coalesce,
                   "seconds: of user events sent with --coalesce, show only the last of each name "
                   "within this window")
      ->check(CLI::Range(0.0, 3600.0));
  monitor->add_flag("--snapshot", mon_snapshot,
                    "first every current member (type member), then `snapshot_end`, then live "
                    "events: nothing slips between the list and the watch");
  add_format(monitor);

  query_options qo;
  auto* query = app.add_subcommand(
      "query", "ask the members a question; print their acks and responses until the timeout");
  query->add_option("name", qo.name, "query name (1 to 128 bytes)")->required();
  query->add_option("payload", qo.payload, "payload (default empty)");
  query->add_option("--node", qo.node, "only members whose whole name matches this RE2 pattern");
  query->add_option("--tag", qo.tags, "KEY=REGEX on a tag's whole value (repeatable)");
  query
      ->add_option("--query-timeout", qo.timeout_s,
                   "seconds to gather answers (default: the daemon's, 16 gossip intervals per "
                   "power of ten members)")
      ->check(CLI::Range(0.001, 300.0));
  query->add_flag("--no-ack", qo.no_ack, "members do not acknowledge");
  add_format(query);

  double reach_timeout = 0;
  auto* reach = app.add_subcommand(
      "reachability", "ping every member through a query: who answers, whose view agrees");
  reach->add_option("--query-timeout", reach_timeout, "seconds to wait for answers")
      ->check(CLI::Range(0.001, 300.0));
  add_format(reach);

  auto* info = app.add_subcommand("info", "the local node and the daemon");
  add_format(info);
  auto* stats = app.add_subcommand("stats", "counters");
  add_format(stats);

  std::string key;
  auto* keys = app.add_subcommand("keys", "the cluster's keyring");
  keys->require_subcommand(1);
  auto* keys_list = keys->add_subcommand("list", "keys and how many nodes hold them");
  add_format(keys_list);
  std::vector<CLI::App*> key_ops;
  for (const char* op : {"install", "use", "remove"}) {
    auto* sub = keys->add_subcommand(op, std::string(op) + " a key on every node");
    sub->add_option("key", key, "base64 of 32 bytes")->required();
    add_format(sub);
    key_ops.push_back(sub);
  }

  auto* keygen = app.add_subcommand("keygen", "print a new random key (base64 of 32 bytes)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? exit_ok : exit_usage;
  }

  if (members->parsed()) return cmd_members(s, filter);
  if (member->parsed()) return cmd_member(s, name);
  if (join->parsed()) return cmd_join(s, addrs, join_replay);
  if (leave->parsed()) return cmd_leave(s);
  if (force_leave->parsed()) return cmd_force_leave(s, fl_name, fl_prune);
  if (tags_set->parsed()) return cmd_tags(s, tag_set, {});
  if (tags_unset->parsed()) return cmd_tags(s, {}, tag_unset);
  if (monitor->parsed()) return cmd_monitor(s, types, mon_snapshot, mon_coalesce);
  if (event->parsed()) return cmd_event(s, ev_name, ev_payload, ev_coalesce);
  if (query->parsed()) return cmd_query(s, qo);
  if (reach->parsed()) return cmd_reachability(s, reach_timeout);
  if (info->parsed()) return cmd_info(s);
  if (stats->parsed()) return cmd_stats(s);
  if (keys_list->parsed()) return cmd_keys(s, "list", "");
  for (auto* sub : key_ops)
    if (sub->parsed()) return cmd_keys(s, sub->get_name(), key);
  if (keygen->parsed()) return cmd_keygen();
  std::fprintf(stderr, "shoalctl: no command (see --help)\n");
  return exit_usage;
}
