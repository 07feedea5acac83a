#include <catch2/catch.hpp>

#include "net/detail/request.hpp"

using namespace kaiwa;
using namespace kaiwa::net::detail;

namespace {

request ok(std::string_view json) {
  auto r = parse_request(json, false);
  if (r.err) FAIL("rejected: " << r.err->message);
  return std::move(*r.req);
}

request_error bad(std::string_view json) {
  auto r = parse_request(json, false);
  REQUIRE(r.err);
  return *r.err;
}

}  // namespace

TEST_CASE("a send request becomes a room command with its id echoed raw") {
  auto r = ok(R"({"op":"send","id":"a1","room":"general","text":"hi","cid":"c-1"})");
  CHECK(r.op == session_op::room);
  CHECK(r.cmd.op == room_op::send);
  CHECK(r.cmd.room.str() == "general");
  CHECK(r.cmd.text == "hi");
  CHECK(r.cmd.cid == "c-1");
  CHECK(r.id == "\"a1\"");
  CHECK(r.cmd.id == "\"a1\"");
  CHECK(ok(R"({"op":"ping","id":7})").id == "7");
}

TEST_CASE("every room op parses its fields") {
  CHECK(ok(R"({"op":"join","room":"r","since":5})").cmd.since == 5u);
  CHECK_FALSE(ok(R"({"op":"join","room":"r"})").cmd.since);
  auto h = ok(R"({"op":"history","room":"r","before":9,"limit":200})").cmd;
  CHECK(h.before == 9u);
  CHECK(h.limit == 200);
  CHECK(ok(R"({"op":"history","room":"r"})").cmd.limit == 50);
  auto c = ok(R"({"op":"create","room":"r","private":true,"members":["a","b"],"topic":"t"})").cmd;
  CHECK(c.is_private);
  CHECK(c.members == std::vector<std::string>{"a", "b"});
  CHECK(ok(R"({"op":"kick","room":"r","user":"bob"})").cmd.target.str() == "bob");
  auto t = ok(R"({"op":"topic","room":"r","topic":"tea at five"})").cmd;
  CHECK(t.op == room_op::set_topic);
  CHECK(t.topic == "tea at five");
  CHECK(ok(R"({"op":"topic","room":"r","topic":""})").cmd.topic.empty());  // clears it
  CHECK(ok(R"({"op":"delete","room":"r","ref":3})").cmd.op == room_op::del);
  CHECK(ok(R"({"op":"read","room":"r","seq":3})").cmd.seq == 3);
  CHECK(ok(R"({"op":"hello","user":"alice"})").dev_user == "alice");
}

TEST_CASE("malformed requests are rejected with bad_request or too_large") {
  CHECK(bad("not json").code == errc::bad_request);
  CHECK(bad("[1,2]").code == errc::bad_request);
  CHECK(bad(R"({"id":1})").code == errc::bad_request);
  CHECK(bad(R"({"op":"fly","id":1})").id == "1");
  CHECK(bad(R"({"op":"send","room":"bad room","text":"x"})").code == errc::bad_request);
  CHECK(bad(R"({"op":"send","room":"r","text":""})").code == errc::bad_request);
  CHECK(bad(R"({"op":"send","room":"r","text":5})").code == errc::bad_request);
  CHECK(bad(R"({"op":"send","room":"r"})").code == errc::bad_request);
  CHECK(bad(R"({"op":"history","room":"r","limit":0})").code == errc::bad_request);
  CHECK(bad(R"({"op":"history","room":"r","limit":201})").code == errc::bad_request);
  CHECK(bad(R"({"op":"join","room":"r","since":-1})").code == errc::bad_request);
  CHECK(bad(R"({"op":"ping","id":{"x":1}})").code == errc::bad_request);
  CHECK(bad(R"({"op":"ping","id":")" + std::string(65, 'x') + "\"}").code == errc::bad_request);
  std::string big = R"({"op":"send","room":"r","text":")" + std::string(16385, 'x') + "\"}";
  CHECK(bad(big).code == errc::too_large);
  CHECK(bad(R"({"op":"topic","room":"r"})").code == errc::bad_request);
  CHECK(bad(R"({"op":"topic","room":"r","topic":1})").code == errc::bad_request);
  std::string long_topic = R"({"op":"topic","room":"r","topic":")" + std::string(1025, 'x') + "\"}";
  CHECK(bad(long_topic).code == errc::too_large);
}

TEST_CASE("deep nesting and invalid UTF-8 are refused") {
  std::string deep = R"({"op":"ping","x":)" + std::string(100, '[') + std::string(100, ']') + "}";
  CHECK(bad(deep).message == "nested too deeply");
  CHECK(bad("{\"op\":\"send\",\"room\":\"r\",\"text\":\"\xff\xfe\"}").message == "invalid UTF-8");
}

TEST_CASE("an error to a request carries its id whenever the id can be read") {
  // A lone surrogate escape (half an emoji from a browser) fails the whole document's parse.
  CHECK(bad(R"({"op":"send","id":600,"room":"r","text":"x\ud83dy"})").id == "600");
  CHECK(bad(R"({"text":"x\ud83d","op":"send","id":"s-1","room":"r"})").id == "\"s-1\"");
  CHECK(bad(R"({"op":"nosuch","id":5})").id == "5");
  CHECK(bad(R"({"op":"send","id":7,"room":"bad name!","text":"x"})").id == "7");
  // An id of the wrong shape is refused, and still echoed so the client can match the error.
  auto e = bad(R"({"op":"ping","id":1.5})");
  CHECK(e.id == "1.5");
  CHECK(e.message.find("'id'") != std::string::npos);
  CHECK(bad(R"({"op":"ping","id":123456789012345678901234567890})").id ==
        "123456789012345678901234567890");
  // Nothing readable: no id rather than a guess.
  CHECK(bad(R"({"op":"ping","id":5)").id.empty());
  CHECK(bad(R"({"op":"ping","id":true})").id.empty());
}

TEST_CASE("integer ids round-trip exactly as sent") {
  CHECK(ok(R"({"op":"ping","id":0})").id == "0");
  CHECK(ok(R"({"op":"ping","id":-0})").id == "-0");
  CHECK(ok(R"({"op":"ping","id":-9223372036854775808})").id == "-9223372036854775808");
  CHECK(ok(R"({"op":"ping","id":18446744073709551615})").id == "18446744073709551615");
  CHECK(ok(R"({"op":"ping","id":9007199254740993})").id == "9007199254740993");
  CHECK(ok(R"({"op":"ping","id": 42 })").id == "42");
  // 64 chars counted as characters, not bytes.
  std::string jp;
  for (int i = 0; i < 64; ++i) jp += "会";
  CHECK(ok(R"({"op":"ping","id":")" + jp + "\"}").id == "\"" + jp + "\"");
  CHECK(bad(R"({"op":"ping","id":")" + jp + "x\"}").code == errc::bad_request);
}

TEST_CASE("a UTF-8 byte order mark before the request is ignored") {
  CHECK(ok("\xEF\xBB\xBF{\"op\":\"ping\",\"id\":15}").id == "15");
  CHECK(bad("\xEF\xBB\xBF{\"op\":\"nosuch\",\"id\":16}").id == "16");
}

TEST_CASE("rooms, directory and search parse into read queries with their defaults and limits") {
  auto rooms = ok(R"({"op":"rooms","id":1})");
  CHECK(rooms.op == session_op::rooms);
  CHECK(rooms.query.kind == read::query_kind::rooms);
  CHECK(rooms.query.limit == 50);
  CHECK_FALSE(rooms.query.before);
  auto page = ok(R"({"op":"rooms","limit":200,"before":"00ff0a"})");
  CHECK(page.query.limit == 200);
  CHECK(page.query.before == std::string("\x00\xff\x0a", 3));
  auto dir = ok(R"({"op":"directory","q":"gen","limit":1})");
  CHECK(dir.op == session_op::directory);
  CHECK(dir.query.q == "gen");
  CHECK(ok(R"({"op":"directory"})").query.q.empty());
  auto s = ok(R"({"op":"search","q":"会議","room":"office"})");
  CHECK(s.op == session_op::search);
  CHECK(s.query.kind == read::query_kind::search);
  CHECK(s.query.q == "会議");
  CHECK(s.query.room->str() == "office");
  CHECK(s.query.limit == 20);
  CHECK(ok(R"({"op":"search","q":")" + std::string(256, 'x') + "\"}").query.q.size() == 256);

  CHECK(bad(R"({"op":"rooms","limit":201})").message == "'limit' must be 1 to 200");
  CHECK(bad(R"({"op":"rooms","limit":0})").code == errc::bad_request);
  CHECK(bad(R"({"op":"rooms","before":"abc"})").message ==
        "'before' must be the 'next' of an earlier page");
  CHECK(bad(R"({"op":"rooms","before":""})").code == errc::bad_request);
  CHECK(bad(R"({"op":"rooms","before":7})").message == "'before' must be a string");
  CHECK(bad(R"({"op":"directory","q":"no spaces"})").code == errc::bad_request);
  CHECK(bad(R"({"op":"directory","q":")" + std::string(129, 'a') + "\"}").code ==
        errc::bad_request);
  CHECK(bad(R"({"op":"search"})").message == "'q' is required");
  CHECK(bad(R"({"op":"search","q":""})").message == "'q' must not be empty");
  CHECK(bad(R"({"op":"search","q":")" + std::string(257, 'x') + "\"}").message ==
        "'q' is over 256 bytes");
  CHECK(bad(R"({"op":"search","q":"x","limit":101})").message == "'limit' must be 1 to 100");
  CHECK(bad(R"({"op":"search","q":"x","room":""})").code == errc::bad_request);
  CHECK(bad(R"({"id":4,"op":"search","q":1})").id == "4");
}
