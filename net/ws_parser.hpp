#pragma once
// The RFC 6455 parser for frames a client sends to kaiwa: a pure state machine, with no I/O and
// no Asio or Beast, so that it is unit-tested and fuzzed alone (fuzz/ws_parser.cpp).
//
// Fed bytes in any split, it yields one event at a time: a complete text message, a ping, a
// pong, a close, a refused message, or a failure with the close code to send. Everything a
// client declares is checked before it is used: a frame's length is never added to anything
// unchecked, nothing is allocated by a declared length, a message is buffered only while it
// stays within `max_message_bytes`, and a refused message is skipped, not buffered.
//
// What is validated (RFC 6455 section 5, 7.4, 8.1): RSV bits (no extension is negotiated),
// opcodes, the mask bit, control frames (FIN set, at most 125 bytes), 64-bit lengths with the
// most significant bit set, continuation frames without a message, a data frame inside a
// fragmented message, close payloads (length 1, codes, UTF-8 reason), and text messages as
// UTF-8, incrementally across frames: a message is refused at its first invalid sequence.
//
// Hot path: a complete unfragmented text frame inside the buffer given is unmasked in place and
// handed out as a view into that buffer, with no copy. Other text is copied into the parser's
// own buffer, which always has `padding` readable bytes past the message (simdjson).
//
// Not thread-safe; one per connection.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace kaiwa::net {

enum class ws_event_kind : std::uint8_t {
  need_more,  // every byte given was used; feed more
  text,       // a complete text message (valid UTF-8) in `payload`
  ping,       // `payload`: the application data (at most 125 bytes)
  pong,       // `payload`: the application data
  close,      // the client's close: `code` (1005 when it sent none) and `payload`, the reason
  rejected,   // a data message refused for `rejection`; its remaining frames will be skipped
  fail,       // the connection must fail with close `code`; `payload` says why. Nothing after it
              // is parsed.
};

/// Why a message was refused without failing the connection.
enum class ws_rejection : std::uint8_t {
  too_large,     // declares (or reaches) more than max_message_bytes
  binary,        // kaiwa speaks JSON text only
  invalid_utf8,  // a text message with an invalid UTF-8 sequence (refused at that sequence)
};

struct ws_event {
  ws_event_kind kind = ws_event_kind::need_more;
  /// Bytes of the input used to produce this event.
  std::size_t consumed = 0;
  /// text, ping, pong: the payload; close: the reason; fail: a static description. Points into
  /// the input or the parser, valid until the next call.
  std::string_view payload;
  /// close: the code received (1005 when none); fail: the close code to send (1002, 1007, 1009).
  std::uint16_t code = 0;
  ws_rejection rejection = ws_rejection::too_large;  // rejected only
};

struct ws_parser_limits {
  /// The largest text message accepted (all of its frames together).
  std::size_t max_message_bytes = 64 * 1024;
  /// A refused message is skipped while the bytes it declares stay at or under this bound; one
  /// declaring more fails the connection with 1009 (skipping it would mean reading without end).
  std::uint64_t max_skip_bytes = 1 << 20;
  /// Readable bytes guaranteed past the end of a text payload (simdjson needs them).
  std::size_t padding = 64;
};

class ws_parser {
 public:
  explicit ws_parser(ws_parser_limits limits);
  ~ws_parser();
  ws_parser(const ws_parser&) = delete;
  ws_parser& operator=(const ws_parser&) = delete;

  /// Parses from `data[0, len)`, unmasking payload bytes in place, up to the next event; call
  /// again with the rest until `need_more`. Precondition: `limits.padding` readable bytes follow
  /// `data + len` (the in-place fast path hands out views into `data`).
  ws_event next(char* data, std::size_t len);

  /// Raises the largest message accepted to `n` (never lowers it: a message being assembled was
  /// admitted under the old limit, and its buffer sized by it). The skip bound stays.
  void raise_max_message_bytes(std::size_t n) noexcept {
    limits_.max_message_bytes = std::max(limits_.max_message_bytes, n);
  }

  /// Frames whose header has been parsed so far (for metrics).
  std::uint64_t frames() const noexcept { return frames_; }
  /// Bytes held for a message being assembled (capacity, for tests and memory accounting).
  std::size_t buffered_capacity() const noexcept { return msg_cap_; }

 private:
  enum class stage : std::uint8_t { header, payload, done };
  enum class message : std::uint8_t { none, text, skip };

  ws_event frame_complete(std::size_t consumed);
  ws_event control(std::string_view data, std::size_t consumed);
  /// Takes in a complete header; an event (fail, rejected) or need_more for none.
  ws_event start_frame(std::size_t consumed);
  ws_event fail(std::uint16_t code, std::string_view why, std::size_t consumed);
  ws_event reject(ws_rejection why, std::size_t consumed);
  void append(const char* p, std::size_t n);
  void release_message();

  ws_parser_limits limits_;
  stage stage_ = stage::header;
  std::uint64_t frames_ = 0;

  // The frame being read.
  unsigned char hdr_[14] = {};
  std::size_t hdr_len_ = 0;  // header bytes gathered when a header is split across inputs
  bool fin_ = false;
  std::uint8_t opcode_ = 0;
  std::uint64_t remaining_ = 0;  // payload bytes of this frame not yet read
  std::uint64_t offset_ = 0;     // payload bytes of this frame read (for the mask position)
  unsigned char mask_[4] = {};
  bool skip_frame_ = false;  // this frame's payload is dropped

  // The data message being read (possibly over several frames).
  message message_ = message::none;
  std::uint64_t declared_ = 0;  // bytes its frames declared so far; at most max_skip_bytes
  std::uint32_t utf8_ = 0;      // incremental UTF-8 validation state
  std::unique_ptr<char[]> msg_;
  std::size_t msg_len_ = 0;
  std::size_t msg_cap_ = 0;  // usable; the allocation has `padding` more
  bool release_ = false;     // the last event handed out msg_: empty it on the next call

  // A control frame split across inputs.
  char ctrl_[125] = {};
  std::size_t ctrl_len_ = 0;
};

}  // namespace kaiwa::net
