// Stream framing: every message on a TCP connection is a 4-byte big-endian
// length followed by that many bytes (the prefix is <shoal/framing.hpp>'s,
// shared with the daemon's socket; these names forward to it).
//
// A connection carries one request and one reply. The length is bounded by
// config::max_push_pull_bytes on both sides; a responder with nothing to say
// closes the connection without writing a frame.
#pragma once

#include <shoal/framing.hpp>

namespace shoal::io {

using shoal::decode_frame_header;
using shoal::encode_frame_header;
using shoal::frame_header;
using shoal::frame_header_size;

}  // namespace shoal::io
