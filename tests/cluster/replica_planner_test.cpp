// The controller's replica plans: placement, failover, preferred leaders, removal of a member.

#include <catch2/catch.hpp>

#include "cluster/replica_planner.hpp"

using namespace kaiwa::cluster;
using kaiwa::shard_t;

namespace {

std::map<std::string, std::size_t> leaders_of(const assignments& a) {
  std::map<std::string, std::size_t> n;
  for (auto& [s, x] : a) ++n[x.leader];
  return n;
}

std::map<std::string, std::size_t> replicas_of(const assignments& a) {
  std::map<std::string, std::size_t> n;
  for (auto& [s, x] : a)
    for (auto& r : x.replicas) ++n[r];
  return n;
}

/// `base` with `changes` applied.
assignments applied(assignments base, const assignments& changes) {
  for (auto& [s, a] : changes) base[s] = a;
  return base;
}

void require_valid(const assignments& a) {
  for (auto& [s, x] : a) {
    INFO("shard " << s << ": " << encode(x));
    REQUIRE_FALSE(invalid_reason(x));
  }
}

}  // namespace

TEST_CASE("the first placement spreads replicas and leaders evenly", "[planner]") {
  auto a = plan_initial(1024, {"n3", "n1", "n2"}, 3);
  REQUIRE(a.size() == 1024);
  require_valid(a);
  for (auto& [node, n] : leaders_of(a)) CHECK((n == 341 || n == 342));
  for (auto& [node, n] : replicas_of(a)) CHECK(n == 1024);
  CHECK(a.at(0).replicas == std::vector<std::string>{"n1", "n2", "n3"});
  CHECK(a.at(0).epoch == 1);
  CHECK(a.at(0).isr == a.at(0).replicas);
  // The order nodes are given in doesn't matter: every controller computes the same.
  CHECK(plan_initial(1024, {"n1", "n2", "n3"}, 3) == a);

  auto five = plan_initial(1000, {"a", "b", "c", "d", "e"}, 3);
  for (auto& [node, n] : replicas_of(five)) CHECK(n == 600);
  for (auto& [node, n] : leaders_of(five)) CHECK(n == 200);
  // Fewer nodes than the factor: every node holds every shard.
  auto two = plan_initial(8, {"a", "b"}, 3);
  CHECK(two.at(5).replicas.size() == 2);
  CHECK(plan_initial(8, {}, 3).empty());
}

TEST_CASE("failover promotes a live in-sync replica at the next epoch, spread evenly",
          "[planner]") {
  auto a = plan_initial(1024, {"n1", "n2", "n3"}, 3);
  auto plan = plan_failover(a, {"n2", "n3"});
  CHECK(plan.stranded.empty());
  REQUIRE(plan.changes.size() == leaders_of(a).at("n1"));
  require_valid(plan.changes);
  for (auto& [s, b] : plan.changes) {
    CHECK(a.at(s).leader == "n1");
    CHECK(b.leader != "n1");
    CHECK(b.epoch == a.at(s).epoch + 1);
    CHECK_FALSE(b.in_sync("n1"));
    CHECK(b.replicas == a.at(s).replicas);  // n1 stays a replica: it may come back
  }
  // The dead node's shards are shared out: each survivor leads half the cluster.
  for (auto& [node, n] : leaders_of(applied(a, plan.changes))) CHECK((n == 512));
  // Nothing to do when every leader lives.
  CHECK(plan_failover(a, {"n1", "n2", "n3"}).changes.empty());
}

TEST_CASE("failover never promotes a replica that is not in sync", "[planner]") {
  assignments a;
  a[1] = {3, "n1", {"n1", "n2", "n3"}, {"n1"}};        // only the dead leader in sync
  a[2] = {3, "n1", {"n1", "n2", "n3"}, {"n1", "n3"}};  // n3 in sync, n2 not
  a[3] = {3, "n1", {"n1", "n2", "n3"}, {"n1", "n2"}};  // n2 in sync, n3 not
  auto plan = plan_failover(a, {"n2", "n3"});
  CHECK(plan.stranded == std::vector<shard_t>{1});
  REQUIRE(plan.changes.size() == 2);
  CHECK(plan.changes.at(2).leader == "n3");
  CHECK(plan.changes.at(2).isr == std::vector<std::string>{"n3"});
  CHECK(plan.changes.at(3).leader == "n2");
  // With n2 dead too, shard 3's only live replica is out of sync: stranded.
  auto none = plan_failover(a, {"n3"});
  CHECK(none.stranded == std::vector<shard_t>{1, 3});
}

TEST_CASE("leadership goes back to the preferred replica once it is live and in sync",
          "[planner]") {
  auto a = plan_initial(12, {"n1", "n2", "n3"}, 3);
  auto after = applied(a, plan_failover(a, {"n2", "n3"}).changes);
  // n1 is back but not in sync yet: nothing moves to it.
  CHECK(plan_preferred_leaders(after, {"n1", "n2", "n3"}, 100).empty());
  for (auto& [s, x] : after) x.isr = x.replicas;  // caught up: its leaders added it back
  auto back = plan_preferred_leaders(after, {"n1", "n2", "n3"}, 100);
  REQUIRE(back.size() == 4);
  require_valid(back);
  for (auto& [s, b] : back) {
    CHECK(b.leader == "n1");
    CHECK(b.epoch == after.at(s).epoch + 1);
  }
  CHECK(leaders_of(applied(after, back)) == leaders_of(a));
  // Bounded, in shard order.
  auto two = plan_preferred_leaders(after, {"n1", "n2", "n3"}, 2);
  REQUIRE(two.size() == 2);
  CHECK(two.begin()->first == back.begin()->first);
}

TEST_CASE(
    "a restarted leader's shards go to another live in-sync replica at the next epoch, or to "
    "itself at the next epoch when none is",
    "[planner]") {
  assignments a;
  a[1] = {3, "n1", {"n1", "n2", "n3"}, {"n1", "n2", "n3"}};
  a[2] = {4, "n1", {"n1", "n2", "n3"}, {"n1"}};              // only the restarted leader in sync
  a[3] = {5, "n1", {"n1", "n2", "n3"}, {"n1", "n3"}};        // n2 out of sync, n3 in
  a[4] = {2, "n2", {"n2", "n1", "n3"}, {"n2", "n1", "n3"}};  // not in `which`
  a[5] = {2, "n3", {"n3", "n1", "n2"}, {"n3", "n1"}};        // its leader is not live
  auto plan = plan_restarted(a, {1, 2, 3, 5, 9}, {"n1", "n2", "n3"});
  require_valid(plan);
  REQUIRE(plan.size() == 4);
  // Shard 1: n2 and n3 in sync and live; n2 leads fewer (ties go to the replica list's order).
  CHECK(plan.at(1) == shard_assignment{4, "n2", {"n1", "n2", "n3"}, {"n1", "n2", "n3"}});
  CHECK(plan.at(2) == shard_assignment{5, "n1", {"n1", "n2", "n3"}, {"n1"}});
  CHECK(plan.at(3) == shard_assignment{6, "n3", {"n1", "n2", "n3"}, {"n1", "n3"}});
  CHECK(plan.at(5) == shard_assignment{3, "n1", {"n3", "n1", "n2"}, {"n3", "n1"}});
  // n3 dead: shard 5 is plan_failover's, n3 leaves the isr; a shard not assigned (9) is nothing.
  auto without_n3 = plan_restarted(a, {1, 3, 5, 9}, {"n1", "n2"});
  REQUIRE(without_n3.size() == 2);
  CHECK(without_n3.at(1).leader == "n2");
  CHECK(without_n3.at(1).isr == std::vector<std::string>{"n1", "n2"});
  CHECK(without_n3.at(3) == shard_assignment{6, "n1", {"n1", "n2", "n3"}, {"n1"}});
}

TEST_CASE("a removed member's replicas are re-created on the least loaded live nodes",
          "[planner]") {
  auto a = plan_initial(400, {"n1", "n2", "n3", "n4"}, 3);
  node_set live{"n1", "n2", "n4", "n5"};  // n3 removed, n5 new and empty
  auto plan = plan_removal(a, "n3", live);
  CHECK(plan.stranded.empty());
  require_valid(plan.changes);
  auto after = applied(a, plan.changes);
  for (auto& [s, b] : after) {
    CHECK_FALSE(b.holds("n3"));
    CHECK(b.replicas.size() == 3);
  }
  for (auto& [s, b] : plan.changes) {
    CHECK_FALSE(b.in_sync(b.replicas.back()));  // the new replica catches up first
    if (a.at(s).leader == "n3")
      CHECK(b.epoch == a.at(s).epoch + 1);
    else
      CHECK(b.epoch == a.at(s).epoch);
  }
  // n3's 300 replicas go to the emptiest node first: n5 ends level with the others.
  auto holds = replicas_of(after);
  CHECK(holds.at("n5") == 300);
  CHECK(holds.at("n1") == 300);

  // With no free node the shard keeps fewer replicas; a removed sole in-sync leader strands.
  assignments small;
  small[0] = {1, "n1", {"n1", "n2"}, {"n1", "n2"}};
  small[1] = {1, "n1", {"n1", "n2"}, {"n1"}};
  auto p = plan_removal(small, "n1", {"n2"});
  CHECK(p.stranded == std::vector<shard_t>{1});
  REQUIRE(p.changes.size() == 1);
  CHECK(p.changes.at(0).replicas == std::vector<std::string>{"n2"});
  CHECK(p.changes.at(0).leader == "n2");
}
