#include "net/ws_parser.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

namespace kaiwa::net {

namespace {

constexpr std::uint8_t op_continuation = 0x0;
constexpr std::uint8_t op_text = 0x1;
constexpr std::uint8_t op_binary = 0x2;
constexpr std::uint8_t op_close = 0x8;
constexpr std::uint8_t op_ping = 0x9;
constexpr std::uint8_t op_pong = 0xa;

constexpr std::uint16_t protocol_error = 1002;
constexpr std::uint16_t invalid_payload = 1007;
constexpr std::uint16_t message_too_big = 1009;

// A message buffer up to this size is kept for the next message; a bigger one is freed.
constexpr std::size_t kept_buffer_bytes = 4096;

/// The header's size given its second byte: 2, the extended length, the mask key.
std::size_t header_size(unsigned char b1) {
  auto len7 = b1 & 0x7f;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
}

/// XORs `n` bytes at `p` with the mask, starting at payload offset `offset`.
void unmask(unsigned char* p, std::size_t n, const unsigned char mask[4], std::uint64_t offset) {
  unsigned char m[8];
  for (int i = 0; i < 8; ++i) m[i] = mask[(offset + i) & 3];
  std::uint64_t m8;
  std::memcpy(&m8, m, 8);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t v;
    std::memcpy(&v, p + i, 8);
    v ^= m8;
    std::memcpy(p + i, &v, 8);
  }
  for (; i < n; ++i) p[i] ^= m[i & 7];
}

// Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
// The state is the number of continuation bytes still expected and the range the next one must
// fall in: need << 16 | lo << 8 | hi; 0 between sequences.
bool utf8_feed(std::uint32_t& state, const unsigned char* p, std::size_t n) {
  std::uint32_t need = state >> 16, lo = (state >> 8) & 0xff, hi = state & 0xff;
  std::size_t i = 0;
  while (i < n) {
    if (need == 0) {
      while (i + 8 <= n) {  // ASCII, 8 bytes at a time
        std::uint64_t v;
        std::memcpy(&v, p + i, 8);
        if (v & 0x8080808080808080ull) break;
        i += 8;
      }
      if (i == n) break;
      unsigned c = p[i++];
      if (c < 0x80) continue;
      lo = 0x80;
      hi = 0xbf;
      if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
      } else if (c == 0xe0) {
        need = 2;
        lo = 0xa0;
      } else if (c == 0xed) {
        need = 2;
        hi = 0x9f;
      } else if (c >= 0xe1 && c <= 0xef) {
        need = 2;
      } else if (c == 0xf0) {
        need = 3;
        lo = 0x90;
      } else if (c >= 0xf1 && c <= 0xf3) {
        need = 3;
      } else if (c == 0xf4) {
        need = 3;
        hi = 0x8f;
      } else {
        return false;
      }
    } else {
      unsigned c = p[i++];
      if (c < lo || c > hi) return false;
      need -= 1;
      lo = 0x80;
      hi = 0xbf;
    }
  }
  state = need << 16 | lo << 8 | hi;
  return true;
}

bool utf8_complete(std::uint32_t state) { return (state >> 16) == 0; }

/// RFC 6455 section 7.4: the codes a close frame may carry.
bool valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

ws_event need_more(std::size_t consumed) {
  ws_event e;
  e.consumed = consumed;
  return e;
}

}  // namespace

ws_parser::ws_parser(ws_parser_limits limits) : limits_(limits) {
  limits_.max_skip_bytes =
      std::max<std::uint64_t>(limits_.max_skip_bytes, limits_.max_message_bytes);
}

ws_parser::~ws_parser() = default;

ws_event ws_parser::fail(std::uint16_t code, std::string_view why, std::size_t consumed) {
  stage_ = stage::done;
  message_ = message::none;
  msg_len_ = 0;
  release_ = true;
  ws_event e;
  e.kind = ws_event_kind::fail;
  e.consumed = consumed;
  e.code = code;
  e.payload = why;
  return e;
}

ws_event ws_parser::reject(ws_rejection why, std::size_t consumed) {
  // The rest of the message is skipped; the frame that ends it ends the skipping.
  message_ = message::skip;
  skip_frame_ = true;
  msg_len_ = 0;
  release_ = true;
  ws_event e;
  e.kind = ws_event_kind::rejected;
  e.consumed = consumed;
  e.rejection = why;
  return e;
}

void ws_parser::release_message() {
  msg_len_ = 0;
  if (msg_cap_ > kept_buffer_bytes) {
    msg_.reset();
    msg_cap_ = 0;
  }
}

void ws_parser::append(const char* p, std::size_t n) {
  // msg_len_ + n <= max_message_bytes: start_frame() admitted this frame's declared length.
  std::size_t needed = msg_len_ + n;
  if (needed > msg_cap_) {
    std::size_t cap =
        std::min(std::max({needed, msg_cap_ * 2, std::size_t{256}}), limits_.max_message_bytes);
    auto buf = std::make_unique<char[]>(cap + limits_.padding);
    if (msg_len_ > 0) std::memcpy(buf.get(), msg_.get(), msg_len_);
    msg_ = std::move(buf);
    msg_cap_ = cap;
  }
  std::memcpy(msg_.get() + msg_len_, p, n);
  msg_len_ = needed;
}

ws_event ws_parser::next(char* data, std::size_t len) {
  if (release_) {
    release_ = false;
    release_message();
  }
  auto* p = reinterpret_cast<unsigned char*>(data);
  std::size_t pos = 0;
  for (;;) {
    if (stage_ == stage::done) return need_more(len);

    if (stage_ == stage::header) {
      std::size_t need = hdr_len_ < 2 ? 2 : header_size(hdr_[1]);
      while (hdr_len_ < need) {
        if (pos == len) return need_more(len);
        hdr_[hdr_len_++] = p[pos++];
        if (hdr_len_ != 2) continue;
        // The first two bytes say what the frame is: check it before reading on.
        bool fin = hdr_[0] & 0x80;
        std::uint8_t op = hdr_[0] & 0x0f;
        bool control = op & 0x8;
        if (hdr_[0] & 0x70) return fail(protocol_error, "reserved bits set", pos);
        if (op != op_continuation && op != op_text && op != op_binary && op != op_close &&
            op != op_ping && op != op_pong)
          return fail(protocol_error, "unknown opcode", pos);
        if (!(hdr_[1] & 0x80)) return fail(protocol_error, "client frames must be masked", pos);
        if (control && !fin) return fail(protocol_error, "fragmented control frame", pos);
        if (control && (hdr_[1] & 0x7f) > 125)
          return fail(protocol_error, "control frame over 125 bytes", pos);
        if (op == op_continuation && message_ == message::none)
          return fail(protocol_error, "continuation frame without a message", pos);
        if ((op == op_text || op == op_binary) && message_ != message::none)
          return fail(protocol_error, "expected a continuation frame", pos);
        need = header_size(hdr_[1]);
      }
      if (auto e = start_frame(pos); e.kind != ws_event_kind::need_more) return e;
      // Hot path: a whole unfragmented text frame in the input is unmasked and handed out in
      // place. (A text frame always starts its message, so nothing is buffered yet.)
      if (opcode_ == op_text && fin_ && !skip_frame_ && remaining_ <= len - pos) {
        auto n = static_cast<std::size_t>(remaining_);
        unmask(p + pos, n, mask_, 0);
        std::uint32_t utf8 = 0;
        bool valid = utf8_feed(utf8, p + pos, n) && utf8_complete(utf8);
        std::string_view text(data + pos, n);
        pos += n;
        stage_ = stage::header;
        hdr_len_ = 0;
        message_ = message::none;
        ws_event e;
        e.consumed = pos;
        if (valid) {
          e.kind = ws_event_kind::text;
          e.payload = text;
        } else {
          e.kind = ws_event_kind::rejected;
          e.rejection = ws_rejection::invalid_utf8;
        }
        return e;
      }
    }

    // stage::payload
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, len - pos));
    if (!skip_frame_ && n > 0) {
      unmask(p + pos, n, mask_, offset_);
      if (opcode_ & 0x8) {
        std::memcpy(ctrl_ + ctrl_len_, p + pos, n);  // remaining_ <= 125 - ctrl_len_
        ctrl_len_ += n;
      } else if (!utf8_feed(utf8_, p + pos, n)) {
        // Refused at the first invalid sequence, not at the end of the message.
        pos += n;
        remaining_ -= n;
        offset_ += n;
        auto e = reject(ws_rejection::invalid_utf8, pos);
        if (remaining_ == 0) {
          stage_ = stage::header;
          hdr_len_ = 0;
          if (fin_) message_ = message::none;
        }
        return e;
      } else {
        append(data + pos, n);
      }
    }
    pos += n;
    remaining_ -= n;
    offset_ += n;
    if (remaining_ > 0) return need_more(len);
    stage_ = stage::header;
    hdr_len_ = 0;
    if (auto e = frame_complete(pos); e.kind != ws_event_kind::need_more) return e;
  }
}

ws_event ws_parser::start_frame(std::size_t consumed) {
  frames_ += 1;
  stage_ = stage::payload;  // also when a rejection is returned: the payload is skipped next
  fin_ = hdr_[0] & 0x80;
  opcode_ = hdr_[0] & 0x0f;
  std::uint64_t len = hdr_[1] & 0x7f;
  std::size_t at = 2;
  if (len == 126) {
    len = std::uint64_t{hdr_[2]} << 8 | hdr_[3];
    at = 4;
  } else if (len == 127) {
    if (hdr_[2] & 0x80)
      return fail(protocol_error, "64-bit length with the high bit set", consumed);
    len = 0;
    for (int i = 0; i < 8; ++i) len = len << 8 | hdr_[2 + i];
    at = 10;
  }
  std::memcpy(mask_, hdr_ + at, 4);
  remaining_ = len;
  offset_ = 0;
  skip_frame_ = false;
  if (opcode_ & 0x8) {
    ctrl_len_ = 0;
    return {};
  }
  if (opcode_ != op_continuation) {
    message_ = opcode_ == op_text ? message::text : message::skip;
    declared_ = 0;
    utf8_ = 0;
  }
  // declared_ <= max_skip_bytes always, so neither side can wrap.
  if (len > limits_.max_skip_bytes - declared_)
    return fail(message_too_big, "message over the skip limit", consumed);
  declared_ += len;
  if (opcode_ == op_binary) return reject(ws_rejection::binary, consumed);
  if (message_ == message::skip) {
    skip_frame_ = true;
    return {};
  }
  if (len > limits_.max_message_bytes - msg_len_) return reject(ws_rejection::too_large, consumed);
  return {};
}

ws_event ws_parser::frame_complete(std::size_t consumed) {
  if (opcode_ & 0x8) return control(std::string_view(ctrl_, ctrl_len_), consumed);
  if (!fin_) return {};
  bool skipped = message_ == message::skip;
  message_ = message::none;
  if (skipped) return {};
  if (!utf8_complete(utf8_)) {
    auto e = reject(ws_rejection::invalid_utf8, consumed);
    message_ = message::none;
    skip_frame_ = false;
    return e;
  }
  release_ = true;
  ws_event e;
  e.kind = ws_event_kind::text;
  e.consumed = consumed;
  e.payload = msg_len_ ? std::string_view(msg_.get(), msg_len_) : std::string_view();
  return e;
}

ws_event ws_parser::control(std::string_view data, std::size_t consumed) {
  ws_event e;
  e.consumed = consumed;
  e.payload = data;
  if (opcode_ == op_ping) {
    e.kind = ws_event_kind::ping;
    return e;
  }
  if (opcode_ == op_pong) {
    e.kind = ws_event_kind::pong;
    return e;
  }
  if (data.size() == 1) return fail(protocol_error, "close payload of 1 byte", consumed);
  e.kind = ws_event_kind::close;
  e.code = 1005;
  e.payload = {};
  if (data.size() >= 2) {
    e.code = static_cast<std::uint16_t>(static_cast<unsigned char>(data[0]) << 8 |
                                        static_cast<unsigned char>(data[1]));
    if (!valid_close_code(e.code)) return fail(protocol_error, "invalid close code", consumed);
    e.payload = data.substr(2);
    std::uint32_t utf8 = 0;
    if (!utf8_feed(utf8, reinterpret_cast<const unsigned char*>(e.payload.data()),
                   e.payload.size()) ||
        !utf8_complete(utf8))
      return fail(invalid_payload, "close reason is not UTF-8", consumed);
  }
  stage_ = stage::done;  // nothing follows a close
  return e;
}

}  // namespace kaiwa::net
