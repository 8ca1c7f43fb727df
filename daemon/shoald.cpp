// shoald: only --version until the daemon issue lands (see README "Status").
#include <cstdio>
#include <cstring>
#include <shoal/version.hpp>

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--version") == 0)) {
    std::printf("shoald %s\n", shoal::library_version());
    return 0;
  }
  std::fprintf(stderr, "usage: shoald --version\n");
  return 2;
}
