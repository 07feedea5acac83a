#pragma once
// The error codes of the client protocol (PROTOCOL.md, Errors) and the close codes.

#include <cstdint>
#include <string_view>

namespace kaiwa {

enum class errc : std::uint8_t {
  bad_request,
  unauthorized,
  forbidden,
  not_found,
  room_exists,
  too_large,
  rate_limited,
  unavailable,
  timeout,
  archived,  // the room is archived (read-only): what would change it is refused
  internal,
};

/// The wire name of an error code, e.g. "not_found".
std::string_view to_string(errc e) noexcept;

/// WebSocket close codes kaiwa sends (PROTOCOL.md, Transport).
enum class close_code : std::uint16_t {
  normal = 1000,
  ping_timeout = 1001,  // no frame in answer to a ping (RFC 6455 "going away")
  protocol_error = 1002,
  invalid_payload = 1007,  // a close frame whose reason is not UTF-8
  message_too_big = 1009,  // a refused message too big to skip
  protocol_abuse = 4000,
  unauthorized = 4001,
  rate_limited = 4008,
  slow_consumer = 4009,
  going_away = 4010,
};

}  // namespace kaiwa
