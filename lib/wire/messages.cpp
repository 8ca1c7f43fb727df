#include "wire/messages.hpp"

#include <array>
#include <type_traits>

#include <shoal/core.hpp>

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

// The public names of the type numbers (core_stats counts by them).
template <msg_type W, shoal::message_type P>
constexpr bool same_number = static_cast<int>(W) == static_cast<int>(P);
static_assert(same_number<msg_type::ping, shoal::message_type::ping> &&
              same_number<msg_type::indirect_ping, shoal::message_type::indirect_ping> &&
              same_number<msg_type::ack, shoal::message_type::ack> &&
              same_number<msg_type::nack, shoal::message_type::nack> &&
              same_number<msg_type::suspect, shoal::message_type::suspect> &&
              same_number<msg_type::alive, shoal::message_type::alive> &&
              same_number<msg_type::dead, shoal::message_type::dead> &&
              same_number<msg_type::left, shoal::message_type::left> &&
              same_number<msg_type::user, shoal::message_type::user> &&
              same_number<msg_type::push_pull, shoal::message_type::push_pull>);
static_assert(static_cast<std::size_t>(msg_type::push_pull) + 1 == shoal::message_type_count);

constexpr std::array<msg_type, std::variant_size_v<message>> type_by_index = {
    msg_type::ping,  msg_type::indirect_ping, msg_type::ack,  msg_type::nack, msg_type::suspect,
    msg_type::alive, msg_type::dead,          msg_type::left, msg_type::user, msg_type::push_pull,
};

}  // namespace

msg_type type_of(const message& m) noexcept {
  return type_by_index[m.index()];
}

}  // namespace shoal::wire
