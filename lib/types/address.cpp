#include <shoal/address.hpp>

#include <shoal/random.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

namespace shoal {

namespace {

/// A decimal port: 1 to 5 digits, at most 65535.
std::optional<std::uint16_t> parse_port(std::string_view text) noexcept {
  if (text.empty() || text.size() > 5) return std::nullopt;
  std::uint32_t v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 0xffff) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

}  // namespace

std::optional<address> address::from_bytes(std::span<const std::uint8_t> ip, std::uint16_t port) {
  address a;
  if (ip.size() == 4) {
    a.v6_ = false;
  } else if (ip.size() == 16) {
    a.v6_ = true;
  } else {
    return std::nullopt;
  }
  std::memcpy(a.ip_.data(), ip.data(), ip.size());
  a.port_ = port;
  return a;
}

address address::v4(std::array<std::uint8_t, 4> ip, std::uint16_t port) {
  address a;
  std::memcpy(a.ip_.data(), ip.data(), ip.size());
  a.port_ = port;
  a.v6_ = false;
  return a;
}

address address::v6(const std::array<std::uint8_t, 16>& ip, std::uint16_t port) {
  address a;
  a.ip_ = ip;
  a.port_ = port;
  a.v6_ = true;
  return a;
}

std::optional<address> address::parse(std::string_view text) {
  std::string_view host;
  std::string_view port_text;
  bool v6 = false;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return std::nullopt;
    port_text = rest.substr(1);
    v6 = true;
  } else {
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);  // a bare IPv6 leaves ':' here: rejected below
  }
  const auto port = parse_port(port_text);
  if (!port) return std::nullopt;

  // inet_pton wants a NUL-terminated string and would stop at an embedded NUL.
  std::array<char, INET6_ADDRSTRLEN + 1> buf{};
  if (host.empty() || host.size() >= buf.size() || host.find('\0') != std::string_view::npos) {
    return std::nullopt;
  }
  std::memcpy(buf.data(), host.data(), host.size());

  address a;
  a.port_ = *port;
  a.v6_ = v6;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, buf.data(), a.ip_.data()) != 1) return std::nullopt;
  return a;
}

std::string address::ip_string() const {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (inet_ntop(v6_ ? AF_INET6 : AF_INET, ip_.data(), buf.data(),
                static_cast<socklen_t>(buf.size())) == nullptr) {
    return {};  // cannot happen: the buffer fits any address
  }
  return std::string{buf.data()};
}

std::string address::to_string() const {
  std::string out;
  out.reserve(INET6_ADDRSTRLEN + 8);
  if (v6_) out += '[';
  out += ip_string();
  if (v6_) out += ']';
  out += ':';
  out += std::to_string(port_);
  return out;
}

std::uint64_t address::hash() const noexcept {
  std::uint64_t h = fnv1a_offset;
  h = fnv1a(h, v6_ ? 6 : 4);
  for (const std::uint8_t b : ip()) h = fnv1a(h, b);
  h = fnv1a(h, static_cast<std::uint8_t>(port_ >> 8));
  h = fnv1a(h, static_cast<std::uint8_t>(port_ & 0xffu));
  return mix64(h);  // spreads FNV's weak low bits over the whole word
}

}  // namespace shoal
