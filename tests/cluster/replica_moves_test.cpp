// Moves and drains as replica changes: the controller's steps, run to the end as the controller
// and the leaders would (the leader adds a caught-up replica to the isr), and the request keys.

#include <catch2/catch.hpp>

#include "cluster/replica_moves.hpp"

using namespace kaiwa::cluster;
using kaiwa::shard_t;

namespace {

shard_assignment make(std::uint64_t epoch, std::string leader, std::vector<std::string> replicas,
                      std::vector<std::string> isr) {
  return {epoch, std::move(leader), std::move(replicas), std::move(isr)};
}

/// The leader's part: a replica added out of sync catches up and joins the isr.
void caught_up(shard_assignment& a) {
  for (auto& r : a.replicas)
    if (!a.in_sync(r)) a.isr.push_back(r);
}

}  // namespace

TEST_CASE("a move adds the target, waits for it, hands it leadership, drops the old leader",
          "[moves]") {
  auto a = make(4, "n1", {"n1", "n2"}, {"n1", "n2"});
  node_set live{"n1", "n2", "n3"};
  move_request m{"n3", "n1"};

  auto s = next_move_step(a, m, live);
  REQUIRE(s.what == move_step::kind::write);
  CHECK(s.next == make(4, "n1", {"n1", "n2", "n3"}, {"n1", "n2"}));
  a = s.next;
  CHECK(next_move_step(a, m, live).what == move_step::kind::wait);
  caught_up(a);

  s = next_move_step(a, m, live);
  REQUIRE(s.what == move_step::kind::write);
  CHECK(s.next.leader == "n3");
  CHECK(s.next.epoch == 5);
  CHECK(s.next.replicas.front() == "n3");  // the preferred leader from now on
  CHECK(valid(s.next));
  a = s.next;

  s = next_move_step(a, m, live);
  REQUIRE(s.what == move_step::kind::write);
  CHECK(s.next == make(5, "n3", {"n3", "n2"}, {"n2", "n3"}));
  a = s.next;
  CHECK(next_move_step(a, m, live).what == move_step::kind::done);
}

TEST_CASE("a move to a replica that exists only moves leadership", "[moves]") {
  auto a = make(2, "n1", {"n1", "n2", "n3"}, {"n1", "n2"});
  node_set live{"n1", "n2", "n3"};
  move_request m{"n3", ""};
  CHECK(next_move_step(a, m, live).what == move_step::kind::wait);  // n3 behind
  a.isr.push_back("n3");
  auto s = next_move_step(a, m, live);
  REQUIRE(s.what == move_step::kind::write);
  CHECK(s.next == make(3, "n3", {"n3", "n1", "n2"}, {"n1", "n2", "n3"}));
  CHECK(next_move_step(s.next, m, live).what == move_step::kind::done);
}

TEST_CASE("a move continues from any state it was left in, and stops when the target dies",
          "[moves]") {
  node_set live{"n1", "n2", "n3"};
  move_request m{"n3", "n1"};
  // A new controller sees the leadership switched already (the old one died before the drop).
  auto a = make(5, "n3", {"n3", "n1", "n2"}, {"n1", "n2", "n3"});
  auto s = next_move_step(a, m, live);
  REQUIRE(s.what == move_step::kind::write);
  CHECK(s.next == make(5, "n3", {"n3", "n2"}, {"n2", "n3"}));
  // The old leader died meanwhile and failover made n2 lead: the move still ends at n3.
  auto b = make(6, "n2", {"n1", "n2", "n3"}, {"n2", "n3"});
  s = next_move_step(b, m, {"n2", "n3"});
  REQUIRE(s.what == move_step::kind::write);
  CHECK(s.next.leader == "n3");
  CHECK(s.next.epoch == 7);

  auto c = make(4, "n1", {"n1", "n2", "n3"}, {"n1", "n2"});
  s = next_move_step(c, m, {"n1", "n2"});
  CHECK(s.what == move_step::kind::abandon);
  CHECK(s.why == "n3 is not live");

  auto full = make(1, "a", {"a", "b", "c", "d", "e", "f", "g"}, {"a"});
  s = next_move_step(full, {"h", "a"}, {"a", "h"});
  CHECK(s.what == move_step::kind::abandon);
}

TEST_CASE("a drain hands leadership to in-sync replicas and re-creates replicas on spares",
          "[moves]") {
  assignments cur{{0, make(1, "n1", {"n1", "n2"}, {"n1", "n2"})},
                  {1, make(1, "n2", {"n2", "n3"}, {"n2", "n3"})},
                  {2, make(1, "n3", {"n3", "n1"}, {"n3", "n1"})}};
  node_set live{"n1", "n2", "n3", "n4"};
  std::set<std::string> drained{"n1"};
  for (int round = 0; round < 10; ++round) {
    auto p = plan_drain(cur, drained, live, 2);
    for (auto& [s, a] : p.changes) {
      INFO("shard " << s << ": " << encode(a));
      REQUIRE(valid(a));
      // No acked event lost: a new leader comes from the isr.
      if (a.leader != cur.at(s).leader) REQUIRE(cur.at(s).in_sync(a.leader));
      cur[s] = a;
    }
    for (auto& [s, a] : cur) caught_up(a);
    if (p.finished.contains("n1")) break;
  }
  for (auto& [s, a] : cur) {
    INFO("shard " << s << ": " << encode(a));
    CHECK_FALSE(a.holds("n1"));
    CHECK(a.replicas.size() == 2);
    CHECK(a.leader != "n1");
  }
  CHECK(plan_drain(cur, drained, live, 2).finished == std::set<std::string>{"n1"});
  CHECK(plan_drain(cur, {}, live, 2).changes.empty());
}

TEST_CASE("a drain without a spare node moves leadership only", "[moves]") {
  assignments cur{{0, make(1, "n1", {"n1", "n2", "n3"}, {"n1", "n2", "n3"})},
                  {1, make(1, "n2", {"n2", "n3", "n1"}, {"n2", "n3", "n1"})}};
  node_set live{"n1", "n2", "n3"};
  auto p = plan_drain(cur, {"n1"}, live, 3);
  REQUIRE(p.changes.size() == 1);
  CHECK(p.changes.at(0).leader != "n1");
  CHECK(p.changes.at(0).holds("n1"));  // stays a follower: nowhere else to put it
  CHECK(p.finished.empty());
  cur[0] = p.changes.at(0);
  p = plan_drain(cur, {"n1"}, live, 3);
  CHECK(p.changes.empty());
  CHECK(p.finished == std::set<std::string>{"n1"});
}

TEST_CASE("a drained leader with no other in-sync replica waits for one to catch up", "[moves]") {
  assignments cur{{0, make(1, "n1", {"n1", "n2"}, {"n1"})}};
  auto p = plan_drain(cur, {"n1"}, {"n1", "n2"}, 2);
  CHECK(p.changes.empty());  // n2 is catching up: no unclean switch
  CHECK(p.finished.empty());
  // Only the drained node holds it: a spare is added first.
  cur = {{0, make(1, "n1", {"n1"}, {"n1"})}};
  p = plan_drain(cur, {"n1"}, {"n1", "n2"}, 1);
  REQUIRE(p.changes.size() == 1);
  CHECK(p.changes.at(0) == make(1, "n1", {"n1", "n2"}, {"n1"}));
}

TEST_CASE("request keys encode and decode strictly", "[moves]") {
  move_request m{"n3", "n1"};
  CHECK(decode_move(encode(m)) == m);
  CHECK(decode_move(encode(move_request{"n3", ""})) == move_request{"n3", ""});
  CHECK_FALSE(decode_move(R"({"to":"n3"})"));
  CHECK_FALSE(decode_move(R"({"to":"","from":""})"));
  CHECK_FALSE(decode_move(R"({"to":"n3","from":"n1","x":1})"));
  CHECK_FALSE(decode_move(R"({"to":"n3","to":"n3","from":""})"));
  CHECK_FALSE(decode_move(std::string(2000, ' ')));
  drain_request d{std::chrono::milliseconds(1500), true};
  CHECK(decode_drain(encode(d)) == d);
  CHECK_FALSE(decode_drain(R"({"grace_ms":-1,"finished":false})"));
  CHECK_FALSE(decode_drain(R"({"grace_ms":3600001,"finished":false})"));
  CHECK_FALSE(decode_drain(R"({"grace_ms":1,"finished":1})"));
  CHECK_FALSE(decode_drain(R"({"grace_ms":1})"));
}
