// The one pattern matcher of the daemon: every filter a client sends (members'
// name and tag filters; later, queries) is compiled and matched here.
//
// Syntax: RE2's (https://github.com/google/re2/wiki/Syntax, also
// /usr/share/doc/libre2-9/syntax.txt.gz): no backreferences, no lookaround.
// Matching takes time linear in the text, whatever the pattern: a client
// cannot make the daemon backtrack for ever.
//
// Semantics (daemon/PROTOCOL.md, "members"):
//  - a pattern must match the WHOLE text (as if written ^(?:pattern)$);
//  - text and pattern are bytes (RE2's Latin-1 mode), as the std::regex
//    matcher before it did: `.` is any one byte but `\n`, valid UTF-8 or not,
//    and a character of several UTF-8 bytes is several `.`s;
//  - case-sensitive unless the pattern says `(?i)`.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace shoal::daemon {

class matcher {
 public:
  /// Longest pattern accepted, in bytes.
  static constexpr std::size_t max_pattern_bytes = 256;
  /// Memory one compiled pattern may use (RE2's max_mem: its program and its
  /// DFA cache; past it matching falls back to a slower, still linear, NFA).
  /// A pattern whose compiled program alone does not fit is refused (32
  /// counted repetitions of 1000 do not); patterns people write fit many
  /// times over.
  static constexpr std::int64_t max_memory_bytes = 1 << 20;

  /// Compiles `pattern`. On failure: nullopt and `error` says why, in text fit
  /// for the client ("regular expression longer than 256 bytes", "bad regular
  /// expression: missing ): (unclosed").
  static std::optional<matcher> compile(std::string_view pattern, std::string& error);

  /// True when the pattern matches the whole of `text`.
  bool matches(std::string_view text) const;

  matcher(matcher&&) noexcept;
  matcher& operator=(matcher&&) noexcept;
  ~matcher();

 private:
  explicit matcher(std::unique_ptr<re2::RE2> re);
  std::unique_ptr<re2::RE2> re_;
};

}  // namespace shoal::daemon
