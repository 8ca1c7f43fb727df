// The fuzz targets' seed corpus (tests/fuzz/corpus) is real traffic: every
// packet and stream body in it decodes. When the wire format changes this
// fails; regenerate the corpus (tests/fuzz/README.md) so that fuzzing starts
// from packets the decoder accepts.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "wire/codec.hpp"

namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

namespace {

std::vector<std::pair<std::string, bytes>> corpus(const std::string& target) {
  std::vector<std::pair<std::string, bytes>> files;
  for (const auto& f : fs::directory_iterator(fs::path(SHOAL_FUZZ_CORPUS) / target)) {
    std::ifstream in(f.path(), std::ios::binary);
    files.emplace_back(f.path().filename().string(), bytes(std::istreambuf_iterator<char>(in), {}));
  }
  return files;
}

bool decodes(const bytes& data) {
  std::vector<shoal::wire::message> msgs;
  shoal::wire::decode_counters counters;
  return !shoal::wire::decode_packet(data, shoal::wire::limits{}, msgs, counters) && !msgs.empty();
}

}  // namespace

TEST_CASE("the fuzz corpus holds packets that decode", "[unit]") {
  for (const char* target : {"wire_packet", "push_pull"}) {
    const auto files = corpus(target);
    CHECK(files.size() >= 5);
    for (const auto& [name, data] : files) {
      CAPTURE(target, name);
      CHECK(decodes(data));
    }
  }
  // fuzz_core_packet records: op, u16 length, bytes.
  const auto files = corpus("core_packet");
  CHECK(files.size() >= 5);
  for (const auto& [name, data] : files) {
    CAPTURE(name);
    std::size_t pos = 0, records = 0;
    while (pos + 3 <= data.size()) {
      const std::size_t len = (std::size_t{data[pos + 1]} << 8) | data[pos + 2];
      REQUIRE(pos + 3 + len <= data.size());
      CHECK(decodes(bytes(data.begin() + static_cast<std::ptrdiff_t>(pos + 3),
                          data.begin() + static_cast<std::ptrdiff_t>(pos + 3 + len))));
      pos += 3 + len;
      ++records;
    }
    CHECK(pos == data.size());
    CHECK(records >= 1);
  }
  CHECK(corpus("sealed_packet").size() >= 5);
}
