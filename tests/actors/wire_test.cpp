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
  // The op added last crosses too; the local-only op never comes from another node.
  c.op = room_op::set_topic;
  CHECK(detail::decode_command(detail::encode_command(c))->op == room_op::set_topic);
  c.op = room_op::adopt;
  CHECK(!detail::decode_command(detail::encode_command(c)));
}

TEST_CASE("link id lists and handed-over subscribers cross nodes whole; damage is refused") {
  std::vector<std::uint64_t> ids = {1, 2, ~std::uint64_t{0}};
  CHECK(detail::decode_link_ids(detail::encode_link_ids(ids)) == ids);
  CHECK(detail::decode_link_ids("")->empty());
  CHECK(!detail::decode_link_ids("1234567"));

  std::vector<detail::handed_room> rooms = {
      {"lobby", {{"n1", 7, user_id{"alice"}}, {"n2", 9, user_id{"bob"}}}}, {"empty", {}}};
  auto bytes = detail::encode_handover(rooms);
  auto back = detail::decode_handover(bytes);
  REQUIRE(back);
  REQUIRE(back->size() == 2);
  CHECK((*back)[0].room == "lobby");
  REQUIRE((*back)[0].subscribers.size() == 2);
  CHECK((*back)[0].subscribers[1].node == "n2");
  CHECK((*back)[0].subscribers[1].link == 9);
  CHECK((*back)[0].subscribers[1].user == user_id{"bob"});
  CHECK((*back)[1].subscribers.empty());
  for (std::size_t cut = 0; cut < bytes.size(); ++cut)
    CHECK(!detail::decode_handover(bytes.substr(0, cut)));
  CHECK(!detail::decode_handover(bytes + "x"));
  // A count of 2^64 - 1 rooms (or subscribers) with nothing behind it allocates nothing.
  CHECK(!detail::decode_handover(detail::wire_writer().u64(~std::uint64_t{0}).take()));
  CHECK(!detail::decode_handover(
      detail::wire_writer().u64(1).str("r").u64(~std::uint64_t{0}).take()));
  // A string declaring 2^64 - 1 bytes is refused before anything is copied.
  CHECK(!detail::decode_handover(detail::wire_writer().u64(1).u64(~std::uint64_t{0}).take()));
}
