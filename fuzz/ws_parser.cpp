// Client WebSocket frames (net/ws_parser.hpp), fed the way sockets deliver them. Checks, besides
// not crashing or reading out of bounds: the same events whatever the split of the input (the
// first byte picks a chunk size), consumed counts that add up, text that is valid UTF-8 within
// the message limit, control payloads of at most 125 bytes, close codes RFC 6455 allows, failure
// codes 1002/1007/1009 only, nothing after a close or a failure, and a message buffer that never
// outgrows the limit.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "net/ws_parser.hpp"

namespace {

using namespace kaiwa::net;

constexpr std::size_t padding = 64;

struct seen {
  ws_event_kind kind;
  std::string payload;
  std::uint16_t code;
  ws_rejection rejection;
  bool operator==(const seen&) const = default;
};

void check(bool ok) {
  if (!ok) std::abort();
}

std::vector<seen> run(const std::uint8_t* data, std::size_t size, std::size_t chunk) {
  ws_parser_limits limits;
  limits.max_message_bytes = 1024;
  limits.max_skip_bytes = 16 * 1024;
  limits.padding = padding;
  ws_parser p(limits);
  std::vector<seen> out;
  bool ended = false;
  for (std::size_t at = 0; at < size; at += chunk) {
    std::size_t n = std::min(chunk, size - at);
    // Exactly n bytes plus the padding promised: ASan catches any read past it.
    std::vector<char> buf(n + padding);
    std::memcpy(buf.data(), data + at, n);
    std::size_t pos = 0;
    for (;;) {
      auto e = p.next(buf.data() + pos, n - pos);
      check(e.consumed <= n - pos);
      pos += e.consumed;
      check(p.buffered_capacity() <= limits.max_message_bytes);
      if (e.kind == ws_event_kind::need_more) {
        check(pos == n);
        break;
      }
      check(!ended);
      switch (e.kind) {
        case ws_event_kind::text:
          check(e.payload.size() <= limits.max_message_bytes);
          check(simdjson::validate_utf8(e.payload.data(), e.payload.size()));
          break;
        case ws_event_kind::ping:
        case ws_event_kind::pong:
          check(e.payload.size() <= 125);
          break;
        case ws_event_kind::close:
          check(e.code == 1005 || (e.code >= 1000 && e.code <= 1003) ||
                (e.code >= 1007 && e.code <= 1014) || (e.code >= 3000 && e.code <= 4999));
          check(e.payload.size() <= 123);
          check(simdjson::validate_utf8(e.payload.data(), e.payload.size()));
          ended = true;
          break;
        case ws_event_kind::fail:
          check(e.code == 1002 || e.code == 1007 || e.code == 1009);
          ended = true;
          break;
        default:
          break;
      }
      out.push_back({e.kind, std::string(e.payload), e.code, e.rejection});
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t chunk = data[0] % 17 + 1;  // 1..17 bytes per read
  auto whole = run(data + 1, size - 1, size);
  auto split = run(data + 1, size - 1, chunk);
  check(whole == split);
  return 0;
}
