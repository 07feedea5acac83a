#include <catch2/catch.hpp>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "net/ws_parser.hpp"
#include "tests/support/ws_frames.hpp"

using namespace kaiwa::net;
using namespace kaiwa::test;

namespace {

constexpr std::uint8_t text_op = ws_op::text, binary_op = ws_op::binary,
                       cont_op = ws_op::continuation, close_op = ws_op::close,
                       ping_op = ws_op::ping, pong_op = ws_op::pong;

std::string frame(std::uint8_t op, std::string_view payload, bool fin = true,
                  std::optional<std::uint64_t> declared = std::nullopt, bool masked = true,
                  std::uint8_t rsv = 0) {
  return client_frame(op, payload, {fin, declared, masked, rsv});
}

struct got {
  ws_event_kind kind;
  std::string payload;
  std::uint16_t code = 0;
  ws_rejection rejection = ws_rejection::too_large;
};

ws_parser_limits small_limits() {
  ws_parser_limits l;
  l.max_message_bytes = 1000;
  l.max_skip_bytes = 16000;
  l.padding = 64;
  return l;
}

/// Feeds `bytes` in pieces of `chunk` bytes (each in its own padded buffer, as a socket read
/// would) and returns the events.
std::vector<got> feed(ws_parser& p, const std::string& bytes, std::size_t chunk = SIZE_MAX) {
  std::vector<got> out;
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    auto n = std::min(chunk, bytes.size() - at);
    std::vector<char> buf(n + 64);
    std::memcpy(buf.data(), bytes.data() + at, n);
    std::size_t pos = 0;
    for (;;) {
      auto e = p.next(buf.data() + pos, n - pos);
      REQUIRE(e.consumed <= n - pos);
      pos += e.consumed;
      if (e.kind == ws_event_kind::need_more) {
        REQUIRE(pos == n);
        break;
      }
      out.push_back({e.kind, std::string(e.payload), e.code, e.rejection});
    }
  }
  return out;
}

std::vector<got> feed(const std::string& bytes, std::size_t chunk = SIZE_MAX) {
  ws_parser p(small_limits());
  return feed(p, bytes, chunk);
}

void require_fail(const std::string& bytes, std::uint16_t code) {
  auto ev = feed(bytes);
  REQUIRE(!ev.empty());
  CHECK(ev.back().kind == ws_event_kind::fail);
  CHECK(ev.back().code == code);
}

}  // namespace

TEST_CASE("a masked text frame is one text event, however the bytes are split") {
  auto bytes = frame(text_op, R"({"op":"ping","id":1})") + frame(text_op, std::string(300, 'x'));
  for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{7},
                            std::size_t{64}, bytes.size()}) {
    INFO("chunk " << chunk);
    auto ev = feed(bytes, chunk);
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].kind == ws_event_kind::text);
    CHECK(ev[0].payload == R"({"op":"ping","id":1})");
    CHECK(ev[1].payload == std::string(300, 'x'));
  }
}

TEST_CASE("a whole text frame in the input is unmasked in place and not copied") {
  ws_parser p(small_limits());
  auto bytes = frame(text_op, "hello");
  std::vector<char> buf(bytes.size() + 64);
  std::memcpy(buf.data(), bytes.data(), bytes.size());
  auto e = p.next(buf.data(), bytes.size());
  REQUIRE(e.kind == ws_event_kind::text);
  CHECK(e.payload == "hello");
  CHECK(e.payload.data() == buf.data() + 6);
  CHECK(e.consumed == bytes.size());
  CHECK(p.buffered_capacity() == 0);
  CHECK(p.frames() == 1);
}

TEST_CASE("empty text frames and empty final continuations are messages") {
  auto ev = feed(frame(text_op, "") + frame(text_op, "ab", false) + frame(cont_op, ""));
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == ws_event_kind::text);
  CHECK(ev[0].payload.empty());
  CHECK(ev[1].payload == "ab");
}

TEST_CASE("fragments are reassembled with control frames interleaved") {
  auto bytes = frame(text_op, "Hel", false) + frame(ping_op, "p1") + frame(cont_op, "lo, ", false) +
               frame(pong_op, "q") + frame(cont_op, "world");
  for (std::size_t chunk : {std::size_t{1}, std::size_t{5}, bytes.size()}) {
    auto ev = feed(bytes, chunk);
    REQUIRE(ev.size() == 3);
    CHECK(ev[0].kind == ws_event_kind::ping);
    CHECK(ev[0].payload == "p1");
    CHECK(ev[1].kind == ws_event_kind::pong);
    CHECK(ev[1].payload == "q");
    CHECK(ev[2].kind == ws_event_kind::text);
    CHECK(ev[2].payload == "Hello, world");
  }
}

TEST_CASE("framing errors fail the connection with 1002") {
  SECTION("reserved bits") {
    for (std::uint8_t rsv = 1; rsv < 8; ++rsv)
      require_fail(frame(text_op, "x", true, {}, true, rsv), 1002);
  }
  SECTION("unknown opcodes") {
    for (std::uint8_t op : {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf})
      require_fail(frame(op, "x"), 1002);
  }
  SECTION("an unmasked frame") { require_fail(frame(text_op, "x", true, {}, false), 1002); }
  SECTION("a fragmented ping") { require_fail(frame(ping_op, "x", false), 1002); }
  SECTION("a ping over 125 bytes") { require_fail(frame(ping_op, std::string(126, 'p')), 1002); }
  SECTION("a close over 125 bytes") {
    require_fail(frame(close_op, close_payload(1000, std::string(124, 'r'))), 1002);
  }
  SECTION("a continuation without a message") { require_fail(frame(cont_op, "x"), 1002); }
  SECTION("a new text frame inside a fragmented message") {
    require_fail(frame(text_op, "a", false) + frame(text_op, "b"), 1002);
  }
  SECTION("a new binary frame inside a fragmented message") {
    require_fail(frame(text_op, "a", false) + frame(binary_op, "b"), 1002);
  }
  SECTION("a 64-bit length with its high bit set") {
    require_fail(frame(text_op, "", true, std::uint64_t{1} << 63), 1002);
  }
}

TEST_CASE("nothing after a failure is parsed") {
  ws_parser p(small_limits());
  auto ev = feed(p, frame(text_op, "x", true, {}, false) + frame(text_op, "fine"));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == ws_event_kind::fail);
  CHECK(feed(p, frame(text_op, "still nothing")).empty());
}

TEST_CASE("the inputs that crashed the old parser fail cleanly and allocate nothing big") {
  SECTION("a continuation declaring 2^64 - 14 bytes after 60 buffered bytes") {
    ws_parser p(small_limits());
    auto ev = feed(p, frame(text_op, std::string(60, 'a'), false) +
                          frame(cont_op, "", true, ~std::uint64_t{0} - 13) + std::string(100, 'z'));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == ws_event_kind::fail);
    CHECK(ev[0].code == 1002);
  }
  SECTION("a discarded binary message continued by 2^62 bytes") {
    ws_parser p(small_limits());
    auto ev = feed(p, frame(binary_op, std::string(10, 'b'), false) +
                          frame(cont_op, "", true, std::uint64_t{1} << 62));
    REQUIRE(ev.size() == 2);
    CHECK(ev[0].rejection == ws_rejection::binary);
    CHECK(ev[1].kind == ws_event_kind::fail);
    CHECK(ev[1].code == 1009);
    CHECK(p.buffered_capacity() == 0);
  }
  SECTION("a discarded binary message continued by 256 MiB") {
    ws_parser p(small_limits());
    auto ev =
        feed(p, frame(binary_op, std::string(10, 'b'), false) +
                    frame(cont_op, "", true, std::uint64_t{256} << 20) + std::string(4096, 'q'));
    REQUIRE(ev.size() == 2);
    CHECK(ev[1].code == 1009);
    CHECK(p.buffered_capacity() == 0);
  }
}

TEST_CASE("a message over the limit is refused at its header and skipped without buffering") {
  ws_parser p(small_limits());
  auto big = frame(text_op, std::string(1001, 'x'));
  std::vector<char> buf(big.size() + 64);
  std::memcpy(buf.data(), big.data(), big.size());
  auto e = p.next(buf.data(), 8);  // the header alone
  CHECK(e.kind == ws_event_kind::rejected);
  CHECK(e.rejection == ws_rejection::too_large);
  CHECK(e.consumed == 8);
  CHECK(p.next(buf.data() + 8, big.size() - 8).kind == ws_event_kind::need_more);
  CHECK(p.buffered_capacity() == 0);
  auto ev = feed(p, frame(text_op, "next"));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].payload == "next");
}

TEST_CASE("a fragmented message growing over the limit is refused and its rest skipped") {
  ws_parser p(small_limits());
  auto ev = feed(p, frame(text_op, std::string(600, 'a'), false) + frame(ping_op, "") +
                        frame(cont_op, std::string(600, 'b'), false) +
                        frame(cont_op, std::string(600, 'c')) + frame(text_op, "after"));
  REQUIRE(ev.size() == 3);
  CHECK(ev[0].kind == ws_event_kind::ping);
  CHECK(ev[1].kind == ws_event_kind::rejected);
  CHECK(ev[1].rejection == ws_rejection::too_large);
  CHECK(ev[2].payload == "after");
  CHECK(p.buffered_capacity() <= 4096);
}

TEST_CASE("a message at exactly the limit is accepted") {
  auto ev =
      feed(frame(text_op, std::string(500, 'a'), false) + frame(cont_op, std::string(500, 'b')));
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].payload.size() == 1000);
}

TEST_CASE("refused messages are skipped up to the skip limit, then fail with 1009") {
  // 16 frames of 1000 declared bytes reach the 16000-byte skip limit exactly.
  std::string skipped = frame(binary_op, std::string(1000, 'b'), false);
  for (int i = 0; i < 14; ++i) skipped += frame(cont_op, std::string(1000, 'b'), false);
  auto ok = feed(skipped + frame(cont_op, std::string(1000, 'b')) + frame(text_op, "after"));
  REQUIRE(ok.size() == 2);
  CHECK(ok[0].rejection == ws_rejection::binary);
  CHECK(ok[1].payload == "after");
  auto over = feed(skipped + frame(cont_op, std::string(1001, 'b')));
  REQUIRE(over.size() == 2);
  CHECK(over[1].code == 1009);
  require_fail(frame(text_op, "", true, 16001), 1009);
}

TEST_CASE("binary messages are refused and skipped, the connection goes on") {
  auto ev =
      feed(frame(binary_op, "\x01\x02", false) + frame(cont_op, "\x03") + frame(text_op, "t"));
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].kind == ws_event_kind::rejected);
  CHECK(ev[0].rejection == ws_rejection::binary);
  CHECK(ev[1].payload == "t");
}

TEST_CASE("UTF-8 is validated incrementally across fragments") {
  SECTION("a code point split across fragments is valid") {
    // U+1F600 is F0 9F 98 80; "κόσμε" has 2-byte sequences.
    auto ev = feed(frame(text_op, "\xf0\x9f", false) + frame(cont_op, "\x98", false) +
                   frame(cont_op, "\x80 \xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == ws_event_kind::text);
  }
  SECTION("an invalid sequence is refused at once, before the message ends") {
    ws_parser p(small_limits());
    auto ev = feed(p, frame(text_op, "ok\xc3\x28 rest", false));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rejection == ws_rejection::invalid_utf8);
    auto rest = feed(p, frame(cont_op, "more") + frame(text_op, "next"));
    REQUIRE(rest.size() == 1);
    CHECK(rest[0].payload == "next");
  }
  SECTION("a message ending inside a sequence is refused") {
    auto ev = feed(frame(text_op, "ab\xe2\x82", false) + frame(cont_op, ""));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].rejection == ws_rejection::invalid_utf8);
  }
  SECTION("overlongs, surrogates and code points past U+10FFFF are invalid") {
    for (std::string bad : {"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xed\xa0\x80",
                            "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\x80", "\xef\xbf"}) {
      auto ev = feed(frame(text_op, "0123456789" + bad));
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].rejection == ws_rejection::invalid_utf8);
    }
  }
  SECTION("the largest valid code points are accepted") {
    auto ev = feed(frame(text_op, "\xf4\x8f\xbf\xbf\xef\xbf\xbf\xed\x9f\xbf"));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == ws_event_kind::text);
  }
}

TEST_CASE("close frames are validated per RFC 6455 section 5.5.1 and 7.4") {
  SECTION("no payload: code 1005") {
    auto ev = feed(frame(close_op, ""));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == ws_event_kind::close);
    CHECK(ev[0].code == 1005);
  }
  SECTION("code and reason") {
    auto ev = feed(frame(close_op, close_payload(1000, "bye \xce\xba")));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].code == 1000);
    CHECK(ev[0].payload == "bye \xce\xba");
  }
  SECTION("a payload of one byte") { require_fail(frame(close_op, "\x03"), 1002); }
  SECTION("invalid codes") {
    for (std::uint16_t code :
         {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
      INFO(code);
      require_fail(frame(close_op, close_payload(code)), 1002);
    }
  }
  SECTION("valid codes") {
    for (std::uint16_t code :
         {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
      INFO(code);
      auto ev = feed(frame(close_op, close_payload(code)));
      REQUIRE(ev.size() == 1);
      CHECK(ev[0].code == code);
    }
  }
  SECTION("a reason that is not UTF-8") {
    require_fail(frame(close_op, close_payload(1000, "\xce\xba\xe1\xbd\xb9\xed\xa0\x80")), 1007);
  }
  SECTION("nothing after a close is parsed") {
    auto ev = feed(frame(close_op, close_payload(1000)) + frame(text_op, "late"));
    REQUIRE(ev.size() == 1);
    CHECK(ev[0].kind == ws_event_kind::close);
  }
}

TEST_CASE("a close split across inputs inside a fragmented message") {
  auto bytes = frame(text_op, "a", false) + frame(close_op, close_payload(1001, "going"));
  auto ev = feed(bytes, 3);
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].kind == ws_event_kind::close);
  CHECK(ev[0].code == 1001);
  CHECK(ev[0].payload == "going");
}

TEST_CASE("16-bit and 64-bit lengths are read") {
  ws_parser_limits l = small_limits();
  l.max_message_bytes = 70000;
  l.max_skip_bytes = 140000;
  ws_parser p(l);
  auto ev = feed(p, frame(text_op, std::string(300, 'm')) + frame(text_op, std::string(66000, 'n')),
                 4096);
  REQUIRE(ev.size() == 2);
  CHECK(ev[0].payload.size() == 300);
  CHECK(ev[1].payload == std::string(66000, 'n'));
}
