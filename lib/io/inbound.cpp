#include "io/inbound.hpp"

namespace shoal::io {

inbound_result decode_inbound(std::span<const std::uint8_t> data, std::string_view label,
                              const keyring& keys, bool accept_plaintext, std::size_t max_plain,
                              const wire::limits& lim) {
  inbound_result r;
  open_result opened = open_packet(data, label, keys, accept_plaintext, max_plain);
  r.status = opened.status;
  r.compressed = opened.compressed;
  if (r.status != open_status::ok) return r;
  r.decode_error = wire::decode_packet(opened.plain, lim, r.messages, r.counters);
  if (r.decode_error) r.messages.clear();
  return r;
}

}  // namespace shoal::io
