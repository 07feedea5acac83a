#pragma once
// Encoders for the server's replies that several modules send (PROTOCOL.md, Requests and
// Errors). `id` is the request's id as raw JSON (a string literal or an integer), or empty when
// the request had none; it is echoed into the reply.

#include <string_view>

#include "core/errc.hpp"
#include "core/frame.hpp"
#include "core/ids.hpp"

namespace kaiwa {

/// Starts a reply object `{"op":op,"id":id` in `b`; the caller adds fields and closes it.
json_writer& begin_reply(frame_builder& b, std::string_view op, std::string_view id);

frame_ptr error_frame(std::string_view id, errc code, std::string_view message);
frame_ptr ack_frame(std::string_view id, const room_id& room, seq_t seq, millis_t ts);
frame_ptr ok_frame(std::string_view id);

/// Error replies sent with `code` by this process so far (every error goes through error_frame).
std::uint64_t errors_sent(errc code) noexcept;

}  // namespace kaiwa
