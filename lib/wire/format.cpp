// wire::format for shoal's own format, and the format-neutral packet_builder.
#include "wire/format.hpp"

#include <cassert>

#include "wire/codec.hpp"

namespace shoal::wire {

namespace {

class shoal_wire_format final : public format {
 public:
  const char* name() const noexcept override { return "shoal"; }
  const wire::rules& rules() const noexcept override { return rules_; }

  void encode_message(const message& m, std::vector<std::uint8_t>& out) const override {
    wire::encode_message(m, out);
  }
  message_type encoded_type(std::span<const std::uint8_t> encoded) const noexcept override {
    return as_type(wire::encoded_type(encoded));
  }

  void begin_packet(std::vector<std::uint8_t>& out) const override {
    out.clear();
    out.insert(out.end(),
               {magic, version, std::uint8_t{0}, array16, std::uint8_t{0}, std::uint8_t{0}});
  }
  void finish_packet(std::vector<std::uint8_t>& out, std::size_t count,
                     std::span<const std::uint32_t>) const override {
    assert(count <= 0xffff && out.size() >= header_size);
    out[4] = static_cast<std::uint8_t>(count >> 8);
    out[5] = static_cast<std::uint8_t>(count & 0xffu);
  }
  std::size_t per_part_overhead() const noexcept override { return 0; }

  std::error_code decode_packet(std::span<const std::uint8_t> data, const limits& lim,
                                std::vector<message>& out,
                                std::size_t& unknown_skipped) const override {
    decode_counters c;
    const std::error_code ec = wire::decode_packet(data, lim, out, c);
    unknown_skipped += c.unknown_type;
    return ec;
  }
  message_type first_type(std::span<const std::uint8_t> packet) const noexcept override {
    return as_type(wire::first_type(packet));
  }

  std::vector<std::uint8_t> encode_stream(const message& m) const override {
    return encode_packet({&m, 1});
  }
  stream_result decode_stream(std::span<const std::uint8_t> data, const limits& lim,
                              std::vector<message>& out,
                              std::size_t& unknown_skipped) const override {
    stream_result r;
    decode_counters c;
    r.error = wire::decode_packet(data, lim, out, c);
    if (!r.error) {
      unknown_skipped += c.unknown_type;
      r.status = stream_status::complete;
      r.consumed = data.size();
    } else if (r.error == errc::truncated) {
      // Any prefix of a good body reads as truncated (decode.cpp).
      out.clear();
      r.status = stream_status::need_more;
      r.error = {};
    } else {
      out.clear();
      r.status = stream_status::invalid;
    }
    return r;
  }

 private:
  static message_type as_type(std::uint8_t t) noexcept {
    return t < message_type_count ? static_cast<message_type>(t) : message_type::unknown;
  }
  wire::rules rules_{};
};

}  // namespace

const format& shoal_format() noexcept {
  static const shoal_wire_format f;
  return f;
}

packet_builder::packet_builder(const format& f, std::vector<std::uint8_t>& out,
                               std::span<std::uint64_t> type_counts)
    : fmt_{f}, out_{out}, type_counts_{type_counts}, overhead_{f.per_part_overhead()} {
  fmt_.begin_packet(out_);
}

void packet_builder::add_encoded(std::span<const std::uint8_t> encoded) {
  assert(count_ < 0xffff);
  if (overhead_ > 0) offsets_.push_back(static_cast<std::uint32_t>(out_.size()));
  out_.insert(out_.end(), encoded.begin(), encoded.end());
  ++count_;
  count_type(fmt_.encoded_type(encoded));
}

void packet_builder::add(const message& m) {
  assert(count_ < 0xffff);
  if (overhead_ > 0) offsets_.push_back(static_cast<std::uint32_t>(out_.size()));
  fmt_.encode_message(m, out_);
  ++count_;
  count_type(type_of(m));
}

void packet_builder::finish() {
  fmt_.finish_packet(out_, count_, offsets_);
}

}  // namespace shoal::wire
