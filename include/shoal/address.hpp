// shoal::address: an IPv4 or IPv6 address and a port, as a small value type.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace shoal {

class address {
 public:
  address() = default;

  /// 4-byte (IPv4) or 16-byte (IPv6) network-order address. Any other size
  /// gives std::nullopt.
  static std::optional<address> from_bytes(std::span<const std::uint8_t> ip, std::uint16_t port);
  static address v4(std::array<std::uint8_t, 4> ip, std::uint16_t port);
  static address v6(const std::array<std::uint8_t, 16>& ip, std::uint16_t port);

  /// Parses "1.2.3.4:7946" or "[::1]:7946" (numeric only; no DNS here).
  static std::optional<address> parse(std::string_view text);

  bool is_v6() const noexcept { return v6_; }
  std::uint16_t port() const noexcept { return port_; }
  /// 4 bytes for IPv4, 16 for IPv6.
  std::span<const std::uint8_t> ip() const noexcept {
    return {ip_.data(), v6_ ? std::size_t{16} : std::size_t{4}};
  }
  /// "1.2.3.4:7946" or "[::1]:7946".
  std::string to_string() const;
  std::string ip_string() const;
  /// Stable 64-bit hash (same on every machine).
  std::uint64_t hash() const noexcept;

  friend auto operator<=>(const address&, const address&) = default;

 private:
  std::array<std::uint8_t, 16> ip_{};
  std::uint16_t port_ = 0;
  bool v6_ = false;
};

struct address_hash {
  std::size_t operator()(const address& a) const noexcept {
    return static_cast<std::size_t>(a.hash());
  }
};

}  // namespace shoal
