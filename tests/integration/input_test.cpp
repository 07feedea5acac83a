// Bad input on one connection gets the error of PROTOCOL.md on that connection only: the node
// keeps running and other connections don't notice.

#include <catch2/catch.hpp>

#include "tests/support/node_process.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

struct bad_input_case {
  const char* name;
  std::string frame;
  const char* code;
};

}  // namespace

TEST_CASE("every kind of bad request gets its error and leaves the connection usable") {
  temp_dir dir;
  node_process node(dir.str());
  ws_client bystander(node.port());
  bystander.hello("bystander");
  bystander.request(R"({"op":"join","id":1,"room":"calm"})", 1);

  ws_client c(node.port());
  c.hello("mallory");
  std::vector<bad_input_case> cases = {
      {"invalid JSON", "{nope", "bad_request"},
      {"not an object", "[1,2,3]", "bad_request"},
      {"unknown op", R"({"op":"teleport","id":1})", "bad_request"},
      {"missing op", R"({"id":1})", "bad_request"},
      {"missing room", R"({"op":"send","id":1,"text":"x"})", "bad_request"},
      {"mistyped room", R"({"op":"send","id":1,"room":5,"text":"x"})", "bad_request"},
      {"invalid room name", R"({"op":"join","id":1,"room":"no spaces"})", "bad_request"},
      {"room name too long", R"({"op":"join","id":1,"room":")" + std::string(129, 'r') + "\"}",
       "bad_request"},
      {"empty text", R"({"op":"send","id":1,"room":"r","text":""})", "bad_request"},
      {"oversized text",
       R"({"op":"send","id":1,"room":"r","text":")" + std::string(16385, 'x') + "\"}", "too_large"},
      {"mistyped since", R"({"op":"join","id":1,"room":"r","since":"x"})", "bad_request"},
      {"bad limit", R"({"op":"history","id":1,"room":"r","limit":500})", "bad_request"},
      {"deep nesting", R"({"op":"ping","x":)" + std::string(200, '[') + std::string(200, ']') + "}",
       "bad_request"},
      {"bad member name", R"({"op":"create","id":1,"room":"r2","members":["ok","not ok"]})",
       "bad_request"},
  };
  for (auto& bc : cases) {
    INFO(bc.name);
    c.send(bc.frame);
    auto m = c.next();
    CHECK(m.str("op") == "error");
    CHECK(m.str("code") == bc.code);
    CHECK_FALSE(m.str("message").empty());
    // Still usable: a good request right after gets its reply (and resets the abuse count).
    CHECK(c.request(R"({"op":"ping","id":77})", 77).str("op") == "pong");
  }

  c.send_binary(std::string("\x01\x02", 2));
  CHECK(c.next().str("code") == "bad_request");

  // A frame over 64 KiB is refused without reading it into memory; the connection goes on.
  c.send(std::string(70 * 1024, ' '));
  CHECK(c.next().str("code") == "too_large");
  CHECK(c.request(R"({"op":"ping","id":78})", 78).str("op") == "pong");

  CHECK(
      bystander.request(R"({"op":"send","id":2,"room":"calm","text":"still here"})", 2).str("op") ==
      "ack");
}

TEST_CASE("an error carries the request's id whenever the id can be read") {
  temp_dir dir;
  node_process node(dir.str());
  ws_client c(node.port());
  c.hello("alice");
  // Half an emoji, as a browser produces it: the text fails to parse, the id does not.
  c.send(R"({"op":"send","id":600,"room":"r","text":"x\ud83dy"})");
  auto m = c.next();
  CHECK(m.str("op") == "error");
  CHECK(m.str("code") == "bad_request");
  CHECK(m.json().find(R"("id":600)") != std::string::npos);
  // Integer ids come back exactly as sent, beyond double precision and as -0.
  for (std::string id : {"9007199254740993", "18446744073709551615", "-0"}) {
    c.send(R"({"op":"ping","id":)" + id + "}");
    auto pong = c.next();
    CHECK(pong.str("op") == "pong");
    CHECK(pong.json().find(R"("id":)" + id + "}") != std::string::npos);
  }
}

TEST_CASE("text that is not UTF-8 gets bad_request, then close 1007, on that connection only") {
  temp_dir dir;
  node_process node(dir.str());
  ws_client other(node.port());
  other.hello("other");
  ws_client c(node.port());
  c.hello("mallory");
  c.send("{\"op\":\"send\",\"id\":1,\"room\":\"r\",\"text\":\"\xc3\x28\"}");
  CHECK(c.next().str("code") == "bad_request");
  CHECK(c.close_code() == 1007);
  CHECK(other.request(R"({"op":"ping","id":1})", 1).str("op") == "pong");
}

TEST_CASE("repeated bad requests close the connection with 4000, and only that one") {
  temp_dir dir;
  node_process node(dir.str());
  ws_client other(node.port());
  other.hello("other");
  ws_client c(node.port());
  c.hello("mallory");
  for (int i = 0; i < 20; ++i) c.send("garbage");
  CHECK(c.close_code() == 4000);
  CHECK(other.request(R"({"op":"ping","id":1})", 1).str("op") == "pong");
}

TEST_CASE("a client over the rate limit gets rate_limited, then 4008 if it keeps on") {
  temp_dir dir;
  node_process node(dir.str(), {"--rate-limit", "5"});
  ws_client c(node.port());
  c.hello("spammer");
  for (int i = 0; i < 200; ++i) c.send(R"({"op":"ping","id":)" + std::to_string(i) + "}");
  auto limited = c.next_where([](const message& m) { return m.str("code") == "rate_limited"; });
  CHECK(limited.num("id") >= 0);
  CHECK(c.close_code() == 4008);
}

TEST_CASE("a slow consumer is closed with 4009 and misses nothing after join with since") {
  temp_dir dir;
  node_process node(dir.str(), {"--max-outbound-bytes", "65536"});
  ws_client slow(node.port());
  slow.hello("slow");
  slow.request(R"({"op":"join","id":1,"room":"firehose"})", 1);
  slow.pause_reading();

  ws_client pub(node.port());
  pub.hello("pub");
  const std::string text(8000, 'x');
  constexpr int count = 2000;  // ~16 MB: more than the kernel's socket buffers hold
  for (int i = 1; i <= count; ++i)
    pub.send(R"({"op":"send","id":)" + std::to_string(i) + R"(,"room":"firehose","text":")" + text +
             "\"}");
  pub.next_where([](const message& m) { return m.num("id") == count; }, 60s);

  slow.resume_reading();
  std::int64_t last_seen = 0;
  while (auto m = slow.recv(10s)) {
    if (m->str("op") == "event") {
      CHECK(m->num("seq") == last_seen + 1);
      last_seen = m->num("seq");
    }
  }
  CHECK(slow.close_code() == 4009);
  REQUIRE(last_seen < count + 1);

  // Resume: page what is older than the backfill window with history, then take the backfill.
  ws_client again(node.port());
  again.hello("slow");
  auto joined = again.request(
      R"({"op":"join","id":1,"room":"firehose","since":)" + std::to_string(last_seen) + "}", 1);
  CHECK(joined.str("op") == "joined");
  std::int64_t head = joined.num("head");
  CHECK(head == count + 1);
  // The backfill (up to 1000 events, from gap_until when more were missed) arrives right after
  // `joined`; what lies before gap_until is paged with history.
  auto from = joined.has("gap_until") ? joined.num("gap_until") : last_seen + 1;
  for (auto s = from; s <= head; ++s) REQUIRE(again.next().num("seq") == s);
  auto next = last_seen + 1;
  for (int id = 100; next < from; ++id) {
    auto h = again.request(R"({"op":"history","id":)" + std::to_string(id) +
                               R"(,"room":"firehose","limit":200,"after":)" +
                               std::to_string(next - 1) + "}",
                           id);
    for (auto e : h.array("events")) {
      auto seq = std::int64_t(e["seq"]);
      if (seq >= from) break;
      REQUIRE(seq == next++);
    }
  }
  CHECK(next == from);
}
