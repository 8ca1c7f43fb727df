// What shoald keeps in --data-dir to rejoin after a restart (state.json),
// the tags set over the socket (tags.json), and the keyring file. Every write is atomic (temporary
// file, fsync, rename, fsync of the directory); a file that does not parse is reported and moved
// aside (NAME.corrupt-UNIXTIME), never fatal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <shoal/node.hpp>

#include "key_text.hpp"

namespace shoal::daemon {

struct known_member {
  std::string name;
  std::string addr;  ///< "IP:PORT" or "[v6]:PORT"
};

/// state.json: {"version": 1, "name": str, "incarnation": uint, "members": [{"name", "addr"}]}
struct persisted_state {
  std::string name;
  std::uint64_t incarnation = 0;
  std::vector<known_member> members;
};

enum class load_status { absent, ok, corrupt };

/// Writes `content` to `path` atomically. Empty string on success, else the reason.
std::string write_file_atomic(const std::string& path, std::string_view content);

/// Reads at most `max_bytes`; nullopt when absent; "error" set on read failure.
std::optional<std::string> read_file(const std::string& path, std::size_t max_bytes,
                                     std::string& error);

/// Renames a corrupt file aside; returns the new name ("" on failure).
std::string move_aside(const std::string& path);

std::string encode_state(const persisted_state& s);
/// Parses state.json text; the error says what is wrong.
std::optional<persisted_state> decode_state(std::string_view text, std::string& error);

/// The keyring file: a JSON array of base64 keys, primary first.
std::string encode_keyring(const std::vector<encryption_key>& keys);
std::optional<std::vector<encryption_key>> decode_keyring(std::string_view text,
                                                          std::string& error);

/// tags.json: the local node's tags as last set over the socket, a JSON
/// object of strings (as Serf's tags_file).
std::string encode_tags(const tag_map& tags);
std::optional<tag_map> decode_tags(std::string_view text, std::string& error);

/// Loads `path` with `decode`; a corrupt file is moved aside and reported in
/// `message` (status corrupt).
template <class T, class Decode>
load_status load_file(const std::string& path, std::size_t max_bytes, Decode decode, T& out,
                      std::string& message) {
  std::string err;
  auto text = read_file(path, max_bytes, err);
  if (!text) {
    if (err.empty()) return load_status::absent;
    message = path + ": " + err;
    return load_status::corrupt;
  }
  auto v = decode(*text, err);
  if (!v) {
    const std::string aside = move_aside(path);
    message = path + ": " + err +
              (aside.empty() ? " (could not move it aside)" : " (moved to " + aside + ")");
    return load_status::corrupt;
  }
  out = std::move(*v);
  return load_status::ok;
}

}  // namespace shoal::daemon
