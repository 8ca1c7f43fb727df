// shoal version. CMake reads the three numbers below; keep the format.
#pragma once

#define SHOAL_VERSION_MAJOR 0
#define SHOAL_VERSION_MINOR 1
#define SHOAL_VERSION_PATCH 0

#define SHOAL_VERSION_STRING "0.1.0"

namespace shoal {
/// The library version as "major.minor.patch".
inline constexpr const char* version_string = SHOAL_VERSION_STRING;
}  // namespace shoal

namespace shoal {
/// The version of the library actually linked (may differ from the header's
/// SHOAL_VERSION_STRING when headers and library come from different installs).
const char* library_version() noexcept;
}  // namespace shoal
