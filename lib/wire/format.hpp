// The narrow interface between the core and a wire format. The core speaks
// messages (messages.hpp); a format turns them into bytes and back. shoal's
// own format (codec.hpp) is the one this build has; a second dialect
// (memberlist's, for instance) implements the same interface and declares the
// protocol rules where it differs (format::rules), and the core changes in
// no other place.
//
//   core ──encode_message──> bytes ──packet_builder (begin/finish_packet)──> UDP
//   core <──decode_packet── UDP bytes
//   core ──encode_stream──> stream body      core <──decode_stream── stream bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <system_error>
#include <vector>

#include <shoal/message_type.hpp>
#include "wire/messages.hpp"

namespace shoal::wire {

/// Bounds applied while decoding; anything over them is rejected.
struct limits {
  std::size_t max_packet_bytes = 65536;
  std::size_t max_messages = 1024;  ///< the core raises it to its udp_buffer_size
  std::size_t max_name_length = 128;
  std::size_t max_tag_bytes = 512;  ///< as shoal::tag_bytes() counts: keys, values, 16 per tag
  std::size_t max_tags = 32;        ///< tags of one member
  std::size_t max_payload_bytes = 65536;
  std::size_t max_members = 65536;  ///< entries of one push_pull
};

/// The protocol decisions in which wire dialects differ. The core asks each
/// one in exactly one place (lib/core/dialect.cpp).
struct rules {
  /// An alive naming a known member with another address, at a newer
  /// incarnation. true: the member moved; take the new address (shoal: a
  /// restart on another port keeps its name). false: two processes claim one
  /// name; keep the known address and count a conflict (memberlist).
  bool alive_may_move = true;
  /// How a graceful leave travels: its own message (shoal's `left`), or a
  /// `dead` the member states about itself (memberlist: dead with from ==
  /// node).
  enum class leave_form : std::uint8_t { left_message, dead_from_self };
  leave_form leave = leave_form::left_message;
  /// The largest incarnation the format can carry (memberlist: 32 bits).
  std::uint64_t max_incarnation = std::numeric_limits<std::uint64_t>::max();
  /// Acks carry the sender's view digest (shoal's anti-entropy on demand).
  bool digest_on_ack = true;
};

/// What decode_stream() made of the bytes of a stream so far.
enum class stream_status : std::uint8_t {
  complete,   ///< one whole body: `out` holds its messages
  need_more,  ///< a prefix of a body that may still be good: read more
  invalid,    ///< not a body of this format: close the stream
};

class format {
 public:
  virtual ~format() = default;

  /// "shoal", "memberlist", ...
  virtual const char* name() const noexcept = 0;
  virtual const wire::rules& rules() const noexcept = 0;

  /// Appends one encoded message to `out`: what the dissemination queues
  /// hold and packet_builder::add_encoded() appends.
  virtual void encode_message(const message& m, std::vector<std::uint8_t>& out) const = 0;
  /// The type of a message encode_message() wrote (unknown if it is not one).
  virtual message_type encoded_type(std::span<const std::uint8_t> encoded) const noexcept = 0;

  /// Packet framing: begin_packet() starts a packet in `out` (cleared
  /// first); finish_packet() completes it once `count` messages were
  /// appended. Formats that frame each part (per_part_overhead() > 0) also
  /// get the offset in `out` where each part starts; others get none.
  virtual void begin_packet(std::vector<std::uint8_t>& out) const = 0;
  virtual void finish_packet(std::vector<std::uint8_t>& out, std::size_t count,
                             std::span<const std::uint32_t> offsets) const = 0;
  /// Bytes finish_packet() adds for each part beyond its encoding (0 for
  /// shoal, whose header is written up front).
  virtual std::size_t per_part_overhead() const noexcept = 0;

  /// Decodes a datagram into `out` (cleared first). Never throws; on error
  /// `out` is to be dropped whole. Messages of a type this build does not
  /// know are skipped and counted in `unknown_skipped`.
  virtual std::error_code decode_packet(std::span<const std::uint8_t> data, const limits& lim,
                                        std::vector<message>& out,
                                        std::size_t& unknown_skipped) const = 0;
  /// The type of a datagram's first message, without decoding it (traffic
  /// figures); unknown when it cannot tell.
  virtual message_type first_type(std::span<const std::uint8_t> packet) const noexcept = 0;

  /// The body of one stream exchange (push-pull, TCP ping, its ack).
  virtual std::vector<std::uint8_t> encode_stream(const message& m) const = 0;
  /// Decodes the bytes a stream brought so far, incrementally: need_more
  /// while they are a prefix of a body, complete (with `consumed` bytes)
  /// once a whole body arrived. `error` says why a body was invalid.
  struct stream_result {
    stream_status status = stream_status::need_more;
    std::size_t consumed = 0;
    std::error_code error;
  };
  virtual stream_result decode_stream(std::span<const std::uint8_t> data, const limits& lim,
                                      std::vector<message>& out,
                                      std::size_t& unknown_skipped) const = 0;
};

/// shoal's own format (codec.hpp). A process-wide immutable instance.
const format& shoal_format() noexcept;

/// Builds one packet of a format: begin, then messages appended (already
/// encoded, or encoded here), then finish(). size() is the size the
/// finished packet will have, for filling up to the MTU.
class packet_builder {
 public:
  /// When `type_counts` is not empty, each message added bumps
  /// type_counts[its type number] (numbers past its end bump [0]).
  packet_builder(const format& f, std::vector<std::uint8_t>& out,
                 std::span<std::uint64_t> type_counts = {});
  /// shoal's format.
  explicit packet_builder(std::vector<std::uint8_t>& out, std::span<std::uint64_t> type_counts = {})
      : packet_builder(shoal_format(), out, type_counts) {}

  void add_encoded(std::span<const std::uint8_t> encoded);
  void add(const message& m);
  /// The finished size if a message of `bytes` were added now.
  std::size_t size_with(std::size_t bytes) const noexcept {
    return out_.size() + bytes + (count_ + 1) * overhead_;
  }
  std::size_t size() const noexcept { return out_.size() + count_ * overhead_; }
  std::size_t count() const noexcept { return count_; }
  /// Completes the packet. Call once, last.
  void finish();

 private:
  void count_type(message_type t) noexcept {
    const auto i = static_cast<std::size_t>(t);
    if (!type_counts_.empty()) ++type_counts_[i < type_counts_.size() ? i : 0];
  }
  const format& fmt_;
  std::vector<std::uint8_t>& out_;
  std::span<std::uint64_t> type_counts_;
  std::size_t overhead_;
  std::size_t count_ = 0;
  std::vector<std::uint32_t> offsets_;  // only when overhead_ > 0
};

}  // namespace shoal::wire
