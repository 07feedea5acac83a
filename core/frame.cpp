#include "core/frame.hpp"

namespace kaiwa {

frame_builder::frame_builder(opcode op, std::size_t payload_hint)
    : op_(op), f_(std::make_shared<frame>()), writer_((reserve(payload_hint), f_->buf_)) {}

void frame_builder::reserve(std::size_t payload_hint) {
  f_->buf_.reserve(frame::header_room + payload_hint);
  f_->buf_.assign(frame::header_room, '\0');
}

namespace {

std::uint8_t op_of(std::string_view payload) {
  constexpr std::string_view prefix = R"({"op":")";
  auto other = static_cast<std::uint8_t>(frame_op_count - 1);
  if (!payload.starts_with(prefix)) return other;
  auto rest = payload.substr(prefix.size());
  auto name = rest.substr(0, rest.find('"'));
  for (std::size_t i = 0; i + 1 < frame_op_count; ++i)
    if (frame_ops[i] == name) return static_cast<std::uint8_t>(i);
  return other;
}

}  // namespace

frame_ptr frame_builder::finish() {
  auto& buf = f_->buf_;
  constexpr auto control = static_cast<std::uint8_t>(frame_op_count - 2);
  f_->op_ = op_ == opcode::text ? op_of(std::string_view(buf).substr(frame::header_room)) : control;
  std::uint64_t len = buf.size() - frame::header_room;
  // Header written right-aligned against the payload: FIN + opcode, then the length.
  std::size_t hlen = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
  std::size_t at = frame::header_room - hlen;
  buf[at] = static_cast<char>(0x80 | static_cast<std::uint8_t>(op_));
  if (hlen == 2) {
    buf[at + 1] = static_cast<char>(len);
  } else if (hlen == 4) {
    buf[at + 1] = 126;
    buf[at + 2] = static_cast<char>(len >> 8);
    buf[at + 3] = static_cast<char>(len);
  } else {
    buf[at + 1] = 127;
    for (int i = 0; i < 8; ++i) buf[at + 2 + i] = static_cast<char>(len >> (56 - 8 * i));
  }
  f_->start_ = static_cast<std::uint8_t>(at);
  return std::move(f_);
}

frame_ptr text_frame(std::string_view json) {
  frame_builder b(frame_builder::opcode::text, json.size());
  b.payload() += json;
  return b.finish();
}

frame_ptr close_frame(close_code code, std::string_view reason) {
  frame_builder b(frame_builder::opcode::close, 2 + reason.size());
  auto c = static_cast<std::uint16_t>(code);
  b.payload() += static_cast<char>(c >> 8);
  b.payload() += static_cast<char>(c & 0xff);
  b.payload() += reason.substr(0, 120);  // control frames carry at most 125 bytes
  return b.finish();
}

frame_ptr pong_frame(std::string_view payload) {
  frame_builder b(frame_builder::opcode::pong, payload.size());
  b.payload() += payload.substr(0, 125);
  return b.finish();
}

const frame_ptr& ping_frame() {
  static const frame_ptr f = frame_builder(frame_builder::opcode::ping, 0).finish();
  return f;
}

}  // namespace kaiwa
