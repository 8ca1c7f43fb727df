// libFuzzer target: shoald's TOML configuration file. Any text gives either
// a config or an error naming the file; validate() never throws.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 16)) return 0;  // load_config refuses files over 1 MiB; keep runs fast
  shoal::daemon::daemon_config c;
  c.name = "fuzz";
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto err = shoal::daemon::apply_toml(c, text, "fuzz.toml")) {
    if (err->rfind("fuzz.toml", 0) != 0) __builtin_trap();  // every error names its origin
    return 0;
  }
  (void)shoal::daemon::validate(c);
  return 0;
}
