#include <catch2/catch.hpp>

#include "cluster/members.hpp"

using namespace kaiwa::cluster;

namespace {

// A connection is a number (0: none); its name in down notices is the same number.
using table = members<int, int>;

}  // namespace

TEST_CASE("members: a member is up through its latest connection, down when it ends") {
  table t("n1");
  CHECK(t.up_count() == 1);  // this node
  CHECK(t.up("n2", "h:2", 7, 7));
  CHECK(t.handle("n2") == 7);
  CHECK(t.up_count() == 2);
  CHECK(t.connected_to("h:2"));
  CHECK_FALSE(t.connected_to("h:3"));

  auto gone = t.down(7);
  REQUIRE(gone);
  CHECK(gone->id == "n2");
  CHECK(gone->address == "h:2");
  CHECK(t.handle("n2") == 0);
  CHECK(t.up_count() == 1);
  CHECK_FALSE(t.connected_to("h:2"));
  CHECK_FALSE(t.down(7));  // told once
}

TEST_CASE("members: the same connection again, this node, or no connection change nothing") {
  table t("n1");
  CHECK(t.up("n2", "h:2", 7, 7));
  CHECK_FALSE(t.up("n2", "h:2", 7, 7));  // it answered our hello and said its own
  CHECK_FALSE(t.up("n1", "h:1", 8, 8));
  CHECK_FALSE(t.up("n3", "h:3", 0, 0));
  CHECK(t.up_count() == 2);
  CHECK(t.handle("n1") == 0);
}

TEST_CASE("members: the end of an older connection leaves the newer one up") {
  table t("n1");
  CHECK(t.up("n2", "h:2", 7, 7));
  CHECK(t.up("n2", "h:2b", 9, 9));  // it reconnected (from another address) before 7 ended
  CHECK_FALSE(t.down(7));
  CHECK(t.handle("n2") == 9);
  CHECK(t.connected_to("h:2b"));
  auto gone = t.down(9);
  REQUIRE(gone);
  CHECK(gone->address == "h:2b");
  CHECK_FALSE(t.down(12));  // not a member's
}

TEST_CASE("members: a member's lane stays the same across its reconnections") {
  table t("n1");
  auto lane = t.lane("n2");  // before it is ever up: a stand-in made from a handover
  CHECK(t.up("n2", "h:2", 7, 7));
  CHECK(t.lane("n2") == lane);
  CHECK(t.down(7));
  CHECK(t.up("n2", "h:2", 8, 8));
  CHECK(t.lane("n2") == lane);
  CHECK(t.lane("n3") != lane);
}

TEST_CASE("members: each_up visits only members that are up") {
  table t("n1");
  CHECK(t.up("n2", "h:2", 7, 7));
  CHECK(t.up("n3", "h:3", 8, 8));
  CHECK(t.down(8));
  (void)t.lane("n4");
  std::vector<std::string> seen;
  t.each_up([&](const std::string& id, int h) {
    CHECK(h == 7);
    seen.push_back(id);
  });
  CHECK(seen == std::vector<std::string>{"n2"});
}

TEST_CASE("members: nodes up that the map doesn't name are the ones joining through this node") {
  table t("n2");
  shard_map m(4, "n1");
  m.members.push_back({"n1", "h:1", false});
  m.members.push_back({"n2", "h:2", false});
  CHECK(t.up("n1", "h:1", 7, 7));
  CHECK(t.up("n3", "h:3", 8, 8));  // said hello here before this node had a map
  CHECK(t.up("n4", "h:4", 9, 9));
  CHECK(t.down(9));  // gone: nobody to tell
  std::vector<std::string> seen;
  t.each_joining(m, [&](const std::string& id, int h) {
    CHECK(h == 8);
    seen.push_back(id);
  });
  CHECK(seen == std::vector<std::string>{"n3"});
  // Once admitted, it is a member: the coordinator's maps reach it.
  m.members.push_back({"n3", "h:3", false});
  t.each_joining(m, [&](auto&, int) { FAIL("n3 is a member now"); });
}

TEST_CASE("members: a run of failed dials of an address is logged once") {
  table t("n1");
  CHECK(t.dial_failed("h:2"));
  CHECK_FALSE(t.dial_failed("h:2"));
  CHECK(t.dial_failed("h:3"));
  t.dial_succeeded("h:2");
  CHECK(t.dial_failed("h:2"));  // a new run
}

TEST_CASE("members: only members and join addresses are dialled again") {
  shard_map m(4, "n1");
  m.members.push_back({"n1", "h:1", false});
  m.members.push_back({"n2", "h:2", true});  // draining is still a member
  CHECK(should_redial("h:2", {}, m));
  CHECK(should_redial("h:9", {"h:9"}, m));
  CHECK_FALSE(should_redial("h:3", {"h:9"}, m));  // a node that left the map
}

TEST_CASE("members: a hello's id and address must fit the map's text form") {
  CHECK(valid_hello("n2", "10.0.0.2:7070"));
  CHECK(valid_hello("n2", "[::1]:7070"));
  CHECK_FALSE(valid_hello("", "10.0.0.2:7070"));
  CHECK_FALSE(valid_hello("n 2", "10.0.0.2:7070"));
  CHECK_FALSE(valid_hello("n2", "10.0.0.2"));
  CHECK_FALSE(valid_hello("n2", "a b:7070"));
  CHECK_FALSE(valid_hello("n2", "a\nmember x y 0:7070"));
}

TEST_CASE("members: the coordinator admits a new member, a moved one, a drained one back") {
  shard_map m(4, "n1");
  m.members.push_back({"n1", "h:1", false});
  auto added = admitted(m, "n2", "h:2", "n1");
  REQUIRE(added);
  CHECK(added->epoch() == m.epoch() + 1);
  REQUIRE(added->members.size() == 2);
  CHECK(added->members[1] == cluster_member{"n2", "h:2", false});

  CHECK_FALSE(admitted(*added, "n2", "h:2", "n1"));  // known, same address: nothing changes
  auto moved = admitted(*added, "n2", "h:2b", "n1");
  REQUIRE(moved);
  CHECK(moved->members[1].address == "h:2b");
  CHECK(moved->members.size() == 2);

  moved->members[1].draining = true;
  auto back = admitted(*moved, "n2", "h:2b", "n1");  // restarted after maintenance
  REQUIRE(back);
  CHECK_FALSE(back->members[1].draining);

  // The coordinator itself, draining, stays draining when it admits itself at start.
  moved->members[0].draining = true;
  CHECK_FALSE(admitted(*moved, "n1", "h:1", "n1"));
}

TEST_CASE("members: a message is attributed by the connection it came on, only while current") {
  table t("n1");
  CHECK_FALSE(t.id_of(7));  // no member's
  CHECK(t.up("n2", "h:2", 7, 7));
  CHECK(t.id_of(7) == "n2");
  CHECK(t.up("n2", "h:2", 9, 9));  // reconnected: the older connection names nobody any more
  CHECK_FALSE(t.id_of(7));
  CHECK(t.id_of(9) == "n2");
  CHECK(t.down(9));
  CHECK_FALSE(t.id_of(9));  // down: its late messages are nobody's
}
