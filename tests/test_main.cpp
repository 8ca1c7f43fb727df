// GCC 12 with -fsanitize=address reports -Wmaybe-uninitialized inside
// libstdc++'s std::function as Catch2's main instantiates std::regex (a known
// false positive, GCC bug 105616); nothing of ours is involved, so the
// warning is silenced for this one include only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
