// libFuzzer target: bytes a local client writes to shoald's socket. Splits
// them into frames exactly as a session does and checks each request's
// envelope, then walks the arguments the way the commands read them.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "frame.hpp"
#include "server.hpp"

namespace {

void walk(const msgpack::object& o, int depth) {
  if (depth > 40) __builtin_trap();  // frame_unpack_limit caps nesting at 32
  if (o.type == msgpack::type::MAP)
    for (std::uint32_t i = 0; i < o.via.map.size; ++i) walk(o.via.map.ptr[i].val, depth + 1);
  if (o.type == msgpack::type::ARRAY)
    for (std::uint32_t i = 0; i < o.via.array.size; ++i) walk(o.via.array.ptr[i], depth + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  shoal::daemon::frame_reader reader(4096);
  // Feed in two pieces, as a socket may deliver them.
  const std::size_t half = size / 2;
  std::vector<std::uint8_t> frame;
  for (const auto& piece : {std::span(data, half), std::span(data + half, size - half)}) {
    reader.feed(piece);
    for (;;) {
      const auto st = reader.next(frame);
      if (st != shoal::daemon::frame_reader::status::frame) break;
      if (frame.empty() || frame.size() > 4096) __builtin_trap();
      const auto r = shoal::daemon::parse_request(frame);
      if (r.code) {
        if (r.id != 0 && std::string_view(r.code) == "bad_frame") __builtin_trap();
        continue;
      }
      if (r.id == 0 || !r.args || r.args->type != msgpack::type::MAP) __builtin_trap();
      walk(*r.args, 0);
    }
  }
  return 0;
}
