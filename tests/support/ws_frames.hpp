#pragma once
// Builds client WebSocket frames byte by byte, valid or not, for the parser's unit tests, the
// conformance and hostile-client tests. Header-only: the net module's test binary links no
// test support library.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa::test {

namespace ws_op {
inline constexpr std::uint8_t continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9,
                              pong = 0xa;
}

struct frame_options {
  bool fin = true;
  std::optional<std::uint64_t> declared;  // the length field, when it should lie
  bool masked = true;
  std::uint8_t rsv = 0;  // the three RSV bits, 0..7
};

/// A client frame of `opcode` carrying `payload`, masked with a fixed key.
inline std::string client_frame(std::uint8_t opcode, std::string_view payload,
                                frame_options o = {}) {
  std::string f;
  f += static_cast<char>((o.fin ? 0x80 : 0) | (o.rsv & 7) << 4 | (opcode & 0x0f));
  std::uint64_t len = o.declared.value_or(payload.size());
  char m = o.masked ? char(0x80) : 0;
  if (len < 126) {
    f += static_cast<char>(m | len);
  } else if (len <= 0xffff) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len);
  } else {
    f += static_cast<char>(m | 127);
    for (int i = 0; i < 8; ++i) f += static_cast<char>(len >> (56 - 8 * i));
  }
  const char key[4] = {'\x37', '\xfa', '\x21', '\x3d'};
  if (o.masked) f.append(key, 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f += o.masked ? static_cast<char>(payload[i] ^ key[i & 3]) : payload[i];
  return f;
}

/// A close frame's payload: the code, big-endian, then the reason.
inline std::string close_payload(std::uint16_t code, std::string_view reason = "") {
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xff);
  p += reason;
  return p;
}

}  // namespace kaiwa::test
