#include <catch2/catch.hpp>

#include "actors/detail/wire.hpp"

using namespace kaiwa;

TEST_CASE("a command crosses nodes whole, and damaged bytes are refused") {
  command c;
  c.op = room_op::create;
  c.room = room_id{"r1"};
  c.user = user_id{"alice"};
  c.id = R"("req-1")";
  c.text = "こんにちは";
  c.cid = "c1";
  c.topic = "topic";
  c.members = {"bob", "carol"};
  c.is_private = true;
  c.target = user_id{"dave"};
  c.ref = 7;
  c.seq = 9;
  c.since = 0;
  c.after = 3;
  c.limit = 20;
  auto bytes = detail::encode_command(c);
  auto back = detail::decode_command(bytes);
  REQUIRE(back);
  CHECK(back->op == c.op);
  CHECK(back->room == c.room);
  CHECK(back->user == c.user);
  CHECK(back->id == c.id);
  CHECK(back->text == c.text);
  CHECK(back->cid == c.cid);
  CHECK(back->topic == c.topic);
  CHECK(back->members == c.members);
  CHECK(back->is_private);
  CHECK(back->target == c.target);
  CHECK(back->ref == 7);
  CHECK(back->seq == 9);
  CHECK(back->since == std::optional<seq_t>(0));
  CHECK(!back->before);
  CHECK(back->after == std::optional<seq_t>(3));
  CHECK(back->limit == 20);
  CHECK(!back->link);

  CHECK(!detail::decode_command(bytes.substr(0, bytes.size() - 1)));
  CHECK(!detail::decode_command(bytes + "x"));
  CHECK(!detail::decode_command(""));
  // The local-only op never comes from another node.
  c.op = room_op::adopt;
  CHECK(!detail::decode_command(detail::encode_command(c)));
}
