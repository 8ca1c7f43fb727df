#include "wire/messages.hpp"

#include <array>
#include <type_traits>

namespace shoal::wire {

namespace {

// The variant's alternatives are listed in type-number order; keep it so.
static_assert(std::is_same_v<std::variant_alternative_t<0, message>, ping>);
static_assert(std::is_same_v<std::variant_alternative_t<1, message>, indirect_ping>);
static_assert(std::is_same_v<std::variant_alternative_t<2, message>, ack>);
static_assert(std::is_same_v<std::variant_alternative_t<3, message>, nack>);
static_assert(std::is_same_v<std::variant_alternative_t<4, message>, suspect>);
static_assert(std::is_same_v<std::variant_alternative_t<5, message>, alive>);
static_assert(std::is_same_v<std::variant_alternative_t<6, message>, dead>);
static_assert(std::is_same_v<std::variant_alternative_t<7, message>, left>);
static_assert(std::is_same_v<std::variant_alternative_t<8, message>, user>);
static_assert(std::is_same_v<std::variant_alternative_t<9, message>, push_pull>);
static_assert(std::is_same_v<std::variant_alternative_t<10, message>, broadcast>);
static_assert(std::variant_size_v<message> + 1 == message_type_count);

constexpr std::array<msg_type, std::variant_size_v<message>> type_by_index = {
    msg_type::ping,    msg_type::indirect_ping, msg_type::ack,       msg_type::nack,
    msg_type::suspect, msg_type::alive,         msg_type::dead,      msg_type::left,
    msg_type::user,    msg_type::push_pull,     msg_type::broadcast,
};

}  // namespace

msg_type type_of(const message& m) noexcept {
  return type_by_index[m.index()];
}

}  // namespace shoal::wire
