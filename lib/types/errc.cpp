#include <shoal/errc.hpp>

#include <string>

namespace shoal {

namespace {

class shoal_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shoal"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::ok:
        return "success";
      case errc::truncated:
        return "packet truncated";
      case errc::bad_magic:
        return "not a shoal packet (bad magic)";
      case errc::unsupported_version:
        return "unsupported wire version";
      case errc::unsupported_flags:
        return "unsupported packet flags";
      case errc::malformed:
        return "malformed message";
      case errc::too_large:
        return "over a configured size limit";
      case errc::too_many_messages:
        return "too many messages in a compound packet";
      case errc::field_too_long:
        return "name, tag or payload over its configured bound";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::not_running:
        return "node is not running";
      case errc::queue_full:
        return "queue full; item dropped";
      case errc::unknown_member:
        return "no such member";
      case errc::member_not_failed:
        return "member is not failed";
      case errc::member_down:
        return "member is dead or left";
    }
    return "unknown shoal error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& shoal_category() noexcept {
  static const shoal_category_impl category;
  return category;
}

}  // namespace shoal
