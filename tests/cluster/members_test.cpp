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
