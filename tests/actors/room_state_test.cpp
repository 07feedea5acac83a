#include <catch2/catch.hpp>

#include "actors/room_state.hpp"

using namespace kaiwa;

namespace {

command cmd(room_op op, const char* user) {
  command c;
  c.op = op;
  c.room = room_id{"r"};
  c.user = user_id{user};
  return c;
}

// Decides and applies `c`, returning its events; fails the test if it was rejected.
std::vector<event> run(room_state& s, const command& c, std::optional<event> ref = {}) {
  auto d = s.decide(c, 1000, ref);
  if (auto* r = std::get_if<rejection>(&d)) FAIL("rejected: " << r->message);
  auto events = std::get<std::vector<event>>(d);
  for (auto& e : events) s.apply(e);
  return events;
}

errc rejected(room_state& s, const command& c, std::optional<event> ref = {}) {
  auto d = s.decide(c, 1000, ref);
  REQUIRE(std::holds_alternative<rejection>(d));
  return std::get<rejection>(d).code;
}

}  // namespace

TEST_CASE("a send to a missing room creates it as public, then appends the message") {
  room_state s(room_id{"r"});
  auto c = cmd(room_op::send, "alice");
  c.text = "hi";
  auto events = run(s, c);
  REQUIRE(events.size() == 2);
  CHECK(events[0].type == event_type::created);
  CHECK(events[0].seq == 1);
  CHECK_FALSE(events[0].is_private);
  CHECK(events[1].type == event_type::message);
  CHECK(events[1].seq == 2);
  CHECK(s.head() == 2);
  CHECK(s.owner() == user_id{"alice"});
}

TEST_CASE("seqs are gapless and ts never goes backwards") {
  room_state s(room_id{"r"});
  auto c = cmd(room_op::send, "a");
  c.text = "x";
  run(s, c);
  auto d = s.decide(c, 5, {});  // clock went back
  auto& e = std::get<std::vector<event>>(d).at(0);
  CHECK(e.seq == 3);
  CHECK(e.ts == 1000);
}

TEST_CASE("create refuses an existing room") {
  room_state s(room_id{"r"});
  run(s, cmd(room_op::create, "alice"));
  CHECK(rejected(s, cmd(room_op::create, "bob")) == errc::room_exists);
}

TEST_CASE("private rooms: only members read and send; the owner invites and kicks") {
  room_state s(room_id{"r"});
  auto create = cmd(room_op::create, "alice");
  create.is_private = true;
  create.members = {"bob"};
  auto created = run(s, create);
  CHECK(created[0].members == std::vector<std::string>{"alice", "bob"});
  CHECK(s.is_member(user_id{"bob"}));

  auto send = cmd(room_op::send, "carol");
  send.text = "x";
  CHECK(rejected(s, send) == errc::forbidden);
  CHECK(rejected(s, cmd(room_op::join, "carol")) == errc::forbidden);
  CHECK(s.check_read(user_id{"carol"})->code == errc::forbidden);
  CHECK_FALSE(s.check_read(user_id{"bob"}));

  auto invite = cmd(room_op::invite, "bob");
  invite.target = user_id{"carol"};
  CHECK(rejected(s, invite) == errc::forbidden);  // not the owner
  invite.user = user_id{"alice"};
  run(s, invite);
  CHECK(s.is_member(user_id{"carol"}));
  CHECK(rejected(s, invite) == errc::bad_request);  // already a member

  auto kick = cmd(room_op::kick, "alice");
  kick.target = user_id{"carol"};
  run(s, kick);
  CHECK_FALSE(s.is_member(user_id{"carol"}));
  CHECK(rejected(s, kick) == errc::not_found);
}

TEST_CASE("the owner sets the topic; nobody else may, and a missing room has none to set") {
  room_state s(room_id{"r"});
  auto topic = cmd(room_op::set_topic, "alice");
  topic.topic = "tea at five";
  CHECK(rejected(s, topic) == errc::not_found);
  run(s, cmd(room_op::create, "alice"));
  auto set = run(s, topic);
  REQUIRE(set.size() == 1);
  CHECK(set[0].type == event_type::topic);
  CHECK(set[0].topic == "tea at five");
  CHECK(s.topic() == "tea at five");
  topic.user = user_id{"bob"};
  CHECK(rejected(s, topic) == errc::forbidden);
  CHECK(s.topic() == "tea at five");
}

TEST_CASE("edit is for the author; delete for the author or the owner") {
  room_state s(room_id{"r"});
  auto send = cmd(room_op::send, "bob");
  send.text = "x";
  auto msg = run(s, send).back();  // alice is not the owner: bob created the room

  auto edit = cmd(room_op::edit, "carol");
  edit.ref = msg.seq;
  edit.text = "y";
  CHECK(rejected(s, edit, msg) == errc::forbidden);
  edit.user = user_id{"bob"};
  CHECK(run(s, edit, msg)[0].type == event_type::edit);

  auto del = cmd(room_op::del, "carol");
  del.ref = msg.seq;
  CHECK(rejected(s, del, msg) == errc::forbidden);
  del.user = user_id{"bob"};
  run(s, del, msg);
  CHECK(rejected(s, del, msg) == errc::not_found);   // already deleted
  CHECK(rejected(s, edit, msg) == errc::not_found);  // deleted messages can't be edited
  edit.ref = 99;
  CHECK(rejected(s, edit, std::nullopt) == errc::not_found);
}

TEST_CASE("a message takes at most max_edits_per_message edits") {
  room_state s(room_id{"r"});
  auto send = cmd(room_op::send, "bob");
  send.text = "x";
  auto msg = run(s, send).back();
  auto edit = cmd(room_op::edit, "bob");
  edit.ref = msg.seq;
  edit.text = "y";
  for (std::size_t i = 0; i < max_edits_per_message; ++i)
    msg = rewritten(msg, run(s, edit, msg)[0]);
  CHECK(msg.edits.size() == max_edits_per_message);
  CHECK(rejected(s, edit, msg) == errc::bad_request);
  auto del = cmd(room_op::del, "bob");
  del.ref = msg.seq;
  CHECK(run(s, del, msg)[0].type == event_type::del);  // it can still be deleted
}

TEST_CASE("a snapshot restores the same state") {
  room_state s(room_id{"r"});
  auto create = cmd(room_op::create, "alice");
  create.is_private = true;
  create.topic = "t";
  create.members = {"bob"};
  run(s, create);
  auto send = cmd(room_op::send, "bob");
  send.text = "x";
  auto msg = run(s, send).back();
  auto del = cmd(room_op::del, "alice");
  del.ref = msg.seq;
  run(s, del, msg);

  auto r = room_state::from_snapshot(room_id{"r"}, s.snapshot());
  REQUIRE(r);
  CHECK(r->head() == s.head());
  CHECK(r->last_ts() == s.last_ts());
  CHECK(r->is_private());
  CHECK(r->owner() == user_id{"alice"});
  CHECK(r->members() == s.members());
  CHECK(r->snapshot() == s.snapshot());
  CHECK(rejected(*r, del, msg) == errc::not_found);
  CHECK_FALSE(room_state::from_snapshot(room_id{"r"}, "{}"));
}

TEST_CASE("an archived room refuses what would append, allows reads and joins, across a snapshot") {
  room_state s(room_id{"r"});
  auto send = cmd(room_op::send, "alice");
  send.text = "hi";
  auto msg = run(s, send).back();
  s.set_archived(true);
  CHECK(rejected(s, send) == errc::archived);
  auto edit = cmd(room_op::edit, "alice");
  edit.ref = msg.seq;
  edit.text = "changed";
  CHECK(rejected(s, edit, msg) == errc::archived);
  auto del = cmd(room_op::del, "alice");
  del.ref = msg.seq;
  CHECK(rejected(s, del, msg) == errc::archived);
  auto invite = cmd(room_op::invite, "alice");
  invite.target = user_id{"bob"};
  CHECK(rejected(s, invite) == errc::archived);
  auto topic = cmd(room_op::set_topic, "alice");
  topic.topic = "new";
  CHECK(rejected(s, topic) == errc::archived);
  CHECK(run(s, cmd(room_op::join, "bob")).empty());
  CHECK_FALSE(s.check_read(user_id{"bob"}));

  auto restored = room_state::from_snapshot(room_id{"r"}, s.snapshot());
  REQUIRE(restored);
  CHECK(restored->archived());
  CHECK(rejected(*restored, send) == errc::archived);
  restored->set_archived(false);
  CHECK(run(*restored, send).size() == 1);
  // A snapshot from before archiving existed (no "archived") restores as not archived.
  auto old = R"({"head":2,"last_ts":1000,"exists":true,"private":false,"owner":"alice",)"
             R"("topic":"","members":["alice"],"deleted":[]})";
  auto from_old = room_state::from_snapshot(room_id{"r"}, old);
  REQUIRE(from_old);
  CHECK_FALSE(from_old->archived());
}
