#include "matcher.hpp"

#include <re2/re2.h>

namespace shoal::daemon {

matcher::matcher(std::unique_ptr<re2::RE2> re) : re_(std::move(re)) {}
matcher::matcher(matcher&&) noexcept = default;
matcher& matcher::operator=(matcher&&) noexcept = default;
matcher::~matcher() = default;

std::optional<matcher> matcher::compile(std::string_view pattern, std::string& error) {
  if (pattern.size() > max_pattern_bytes) {
    error = "regular expression longer than " + std::to_string(max_pattern_bytes) + " bytes";
    return std::nullopt;
  }
  RE2::Options opt;
  opt.set_encoding(RE2::Options::EncodingLatin1);  // bytes, as names and tags are
  opt.set_max_mem(max_memory_bytes);
  opt.set_log_errors(false);  // a client's mistake is its reply, not our log
  auto re = std::make_unique<re2::RE2>(re2::StringPiece(pattern.data(), pattern.size()), opt);
  if (!re->ok()) {
    error = "bad regular expression: " + re->error();
    return std::nullopt;
  }
  return matcher(std::move(re));
}

bool matcher::matches(std::string_view text) const {
  return RE2::FullMatch(re2::StringPiece(text.data(), text.size()), *re_);
}

}  // namespace shoal::daemon
