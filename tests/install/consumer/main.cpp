#include <cstdio>
#include <shoal/version.hpp>

int main() {
  std::printf("linked shoal %s\n", shoal::library_version());
  return 0;
}
