#pragma once
// Names and numbers that identify things in kaiwa. Room and user names are distinct types so
// that a read marker keyed (user, room) can't be written as (room, user).

#include <compare>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace kaiwa {

/// A room's event sequence number: 1, 2, 3, ... with no gaps. 0 means "before the first".
using seq_t = std::uint64_t;

/// Milliseconds since the Unix epoch.
using millis_t = std::int64_t;

template <class Tag>
class name {
 public:
  name() = default;
  explicit name(std::string value) : value_(std::move(value)) {}

  const std::string& str() const noexcept { return value_; }
  bool empty() const noexcept { return value_.empty(); }

  friend auto operator<=>(const name&, const name&) = default;

 private:
  std::string value_;
};

using room_id = name<struct room_tag>;
using user_id = name<struct user_tag>;

/// True for 1 to 128 chars from [A-Za-z0-9_.:@-] (PROTOCOL.md, Identity).
bool valid_name(std::string_view s) noexcept;

/// Milliseconds since the Unix epoch, from the system clock.
millis_t now_millis() noexcept;

}  // namespace kaiwa

template <class Tag>
struct std::hash<kaiwa::name<Tag>> {
  std::size_t operator()(const kaiwa::name<Tag>& n) const noexcept {
    return std::hash<std::string>{}(n.str());
  }
};
