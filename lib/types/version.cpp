#include <shoal/version.hpp>

namespace shoal {
const char* library_version() noexcept {
  return SHOAL_VERSION_STRING;
}
}  // namespace shoal
