#pragma once
// Server-to-client WebSocket frames, encoded once and shared by every recipient.
//
// A server frame is unmasked (RFC 6455), so its bytes, header included, are the same for every
// connection: a room encodes an event once and the same `frame_ptr` is queued to all of its
// subscribers, and a session writes its queued frames with one gather write.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/errc.hpp"
#include "core/json.hpp"

namespace kaiwa {

/// The op of a server message ("event", "ack", ...), found once when its frame is built so that
/// per-recipient metrics cost one add. `control` is close and pong frames.
inline constexpr std::string_view frame_ops[] = {
    "event",    "ack",   "error",     "joined",   "left",    "history", "created",
    "welcome",  "pong",  "ok",        "presence", "typing",  "receipt", "room",
    "snapshot", "rooms", "directory", "results",  "invited", "control", "other"};
inline constexpr std::size_t frame_op_count = std::size(frame_ops);

class frame {
 public:
  /// The bytes to write to the socket: header then payload.
  std::string_view wire() const noexcept { return {buf_.data() + start_, buf_.size() - start_}; }
  /// Index into frame_ops.
  std::uint8_t op() const noexcept { return op_; }
  /// The payload (for a text frame, the JSON document).
  std::string_view payload() const noexcept {
    return {buf_.data() + header_room, buf_.size() - header_room};
  }

 private:
  friend class frame_builder;
  static constexpr std::size_t header_room = 10;  // the largest server frame header
  std::string buf_;
  std::uint8_t start_ = 0;
  std::uint8_t op_ = 0;
};

using frame_ptr = std::shared_ptr<const frame>;

/// Builds one frame in place: write the payload through `json()` or `payload()`, then
/// `finish()`. The payload is written after reserved header room, so nothing is copied.
class frame_builder {
 public:
  enum class opcode : std::uint8_t { text = 0x1, close = 0x8, ping = 0x9, pong = 0xa };

  explicit frame_builder(opcode op = opcode::text, std::size_t payload_hint = 128);

  std::string& payload() { return f_->buf_; }
  json_writer& json() { return writer_; }
  frame_ptr finish();

 private:
  void reserve(std::size_t payload_hint);  // sizes the buffer and writes the header room

  opcode op_;
  std::shared_ptr<frame> f_;
  json_writer writer_;
};

/// A text frame carrying `json`.
frame_ptr text_frame(std::string_view json);
/// A close frame with `code` and a short reason.
frame_ptr close_frame(close_code code, std::string_view reason);
/// A pong answering a ping with `payload`.
frame_ptr pong_frame(std::string_view payload);
/// A ping with no payload (the server's liveness check); one shared frame.
const frame_ptr& ping_frame();

}  // namespace kaiwa
