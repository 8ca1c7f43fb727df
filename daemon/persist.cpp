#include "persist.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

namespace shoal::daemon {
namespace {

std::string errno_text(const char* what) {
  return std::string(what) + ": " + std::strerror(errno);
}

bool write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::string write_file_atomic(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return errno_text(("open " + tmp).c_str());
  if (!write_all(fd, content) || ::fsync(fd) != 0) {
    std::string err = errno_text(("write " + tmp).c_str());
    ::close(fd);
    ::unlink(tmp.c_str());
    return err;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string err = errno_text(("rename " + tmp).c_str());
    ::unlink(tmp.c_str());
    return err;
  }
  const auto slash = path.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

std::optional<std::string> read_file(const std::string& path, std::size_t max_bytes,
                                     std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno != ENOENT) error = errno_text("open");
    return std::nullopt;
  }
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      error = errno_text("read");
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      // Too large to be ours: treat as corrupt (the caller moves it aside).
      ::close(fd);
      out.resize(max_bytes + 1);
      return out;
    }
  }
  ::close(fd);
  return out;
}

std::string move_aside(const std::string& path) {
  const std::string aside =
      path + ".corrupt-" + std::to_string(static_cast<long long>(std::time(nullptr)));
  if (::rename(path.c_str(), aside.c_str()) != 0) return {};
  return aside;
}

std::string encode_state(const persisted_state& s) {
  nlohmann::json j;
  j["version"] = 1;
  j["name"] = s.name;
  j["incarnation"] = s.incarnation;
  auto& m = j["members"] = nlohmann::json::array();
  for (const auto& k : s.members) m.push_back({{"name", k.name}, {"addr", k.addr}});
  return j.dump(1) + "\n";
}

std::optional<persisted_state> decode_state(std::string_view text, std::string& error) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return error = "not a JSON object", std::nullopt;
  persisted_state s;
  if (!j.contains("version") || !j["version"].is_number_unsigned() ||
      j["version"].get<unsigned>() != 1)
    return error = "missing or unsupported \"version\"", std::nullopt;
  if (!j.contains("incarnation") || !j["incarnation"].is_number_unsigned())
    return error = "\"incarnation\" must be an unsigned integer", std::nullopt;
  s.incarnation = j["incarnation"].get<std::uint64_t>();
  if (j.contains("name") && j["name"].is_string()) s.name = j["name"].get<std::string>();
  if (!j.contains("members") || !j["members"].is_array())
    return error = "\"members\" must be an array", std::nullopt;
  for (const auto& m : j["members"]) {
    if (!m.is_object() || !m.contains("name") || !m["name"].is_string() || !m.contains("addr") ||
        !m["addr"].is_string())
      return error = "each member needs string \"name\" and \"addr\"", std::nullopt;
    s.members.push_back({m["name"].get<std::string>(), m["addr"].get<std::string>()});
  }
  return s;
}

std::string encode_keyring(const std::vector<encryption_key>& keys) {
  auto j = nlohmann::json::array();
  for (const auto& k : keys) j.push_back(base64_encode(k));
  return j.dump(1) + "\n";
}

std::optional<std::vector<encryption_key>> decode_keyring(std::string_view text,
                                                          std::string& error) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_array())
    return error = "not a JSON array of base64 keys", std::nullopt;
  std::vector<encryption_key> keys;
  for (const auto& e : j) {
    if (!e.is_string()) return error = "keys must be strings", std::nullopt;
    auto k = base64_decode_key(e.get<std::string>());
    if (!k) return error = "a key is not base64 of 32 bytes", std::nullopt;
    keys.push_back(*k);
  }
  if (keys.empty()) return error = "no keys", std::nullopt;
  return keys;
}

namespace {

nlohmann::json byte_array(const std::string& s) {
  auto a = nlohmann::json::array();
  for (const char c : s) a.push_back(static_cast<unsigned char>(c));
  return a;
}

std::optional<std::string> from_byte_array(const nlohmann::json& a) {
  if (!a.is_array() || a.size() > 65536) return std::nullopt;
  std::string s;
  for (const auto& b : a) {
    if (!b.is_number_unsigned() || b.get<std::uint64_t>() > 255) return std::nullopt;
    s.push_back(static_cast<char>(b.get<std::uint64_t>()));
  }
  return s;
}

}  // namespace

std::string encode_tags(const tag_map& tags) {
  auto j = nlohmann::json::object();
  for (const auto& [k, v] : tags) j[k] = v;
  try {
    return j.dump(1) + "\n";  // strict: throws on bytes that are not UTF-8
  } catch (const nlohmann::json::type_error&) {
    // Tags are bytes: when one is not UTF-8, every pair as arrays of bytes.
    auto pairs = nlohmann::json::array();
    for (const auto& [k, v] : tags) pairs.push_back({byte_array(k), byte_array(v)});
    return nlohmann::json{{"_bytes", pairs}}.dump() + "\n";
  }
}

std::optional<tag_map> decode_tags(std::string_view text, std::string& error) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return error = "not a JSON object of tag names to strings", std::nullopt;
  tag_map tags;
  if (j.size() == 1 && j.contains("_bytes") && j["_bytes"].is_array()) {
    for (const auto& p : j["_bytes"]) {
      if (!p.is_array() || p.size() != 2)
        return error = "_bytes: expected [key, value] pairs", std::nullopt;
      auto k = from_byte_array(p[0]);
      auto v = from_byte_array(p[1]);
      if (!k || !v || k->empty()) return error = "_bytes: expected arrays of bytes", std::nullopt;
      tags[*k] = *v;
    }
    return tags;
  }
  for (const auto& [k, v] : j.items()) {
    if (k.empty()) return error = "an empty tag name", std::nullopt;
    if (!v.is_string()) return error = "tag " + k + ": not a string", std::nullopt;
    tags[k] = v.get<std::string>();
  }
  return tags;
}

}  // namespace shoal::daemon
