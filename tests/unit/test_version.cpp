#include <catch2/catch.hpp>
#include <shoal/version.hpp>
#include <string>

TEST_CASE("header and library versions agree", "[unit]") {
  REQUIRE(std::string(shoal::library_version()) == SHOAL_VERSION_STRING);
}
