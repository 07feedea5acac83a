#include <catch2/catch.hpp>

#include "cluster/admin_view.hpp"

using namespace kaiwa;
using namespace kaiwa::cluster;

TEST_CASE("admin view: the members, their state, shards and load, and the moves") {
  shard_map m(4, "n1");
  m.members.push_back({"n1", "127.0.0.1:7001", false});
  m.members.push_back({"n2", "127.0.0.1:7002", true});
  m.members.push_back({"n3", "127.0.0.1:7003", false});
  m.assign(3, "n2");
  controller moves;
  CHECK(moves.enqueue(m, 4, 0, "n3", nullptr));
  auto up = [](const std::string& n) { return n != "n3"; };
  auto view = members_view(m, "n1", 4, moves, up, {{"n1", R"({"connections":2})"}});
  CHECK(
      view ==
      R"({"node":"n1","coordinator":"n1","epoch":2,"shards":4,"moving":false,"moves_done":0,)"
      R"("moves_failed":0,"moves_retried":0,"moves_queued":1,"members":[)"
      R"({"id":"n1","address":"127.0.0.1:7001","state":"up","shards":3,"load":{"connections":2}},)"
      R"({"id":"n2","address":"127.0.0.1:7002","state":"draining","shards":1},)"
      R"({"id":"n3","address":"127.0.0.1:7003","state":"down","shards":0}]})");
}

TEST_CASE("admin view: each shard's owner; a shard this node hands away says moving") {
  shard_map m(3, "n1");
  m.assign(2, "n2");
  auto releasing = [](shard_t s) { return s == 1 || s == 2; };
  // Shard 2 is n2's in the map: what this node does with it is not shown.
  CHECK(shards_view(m, "n1", 3, releasing) ==
        R"({"epoch":2,"coordinator":"n1","shards":3,"owners":[)"
        R"({"shard":0,"owner":"n1"},{"shard":1,"owner":"n1","state":"moving"},)"
        R"({"shard":2,"owner":"n2"}]})");
}

TEST_CASE("admin view: replicated shards show the leader, epoch, replicas and in-sync set") {
  shard_map m(2, std::string{});
  m.assign(0, "n2");
  std::vector<std::optional<shard_assignment>> assigned(2);
  assigned[0] = shard_assignment{3, "n2", {"n1", "n2", "n3"}, {"n2", "n3"}};
  auto view = shards_view(
      m, "n1", 2, [](shard_t) { return false; }, assigned);
  CHECK(view == R"({"epoch":2,"coordinator":"","shards":2,"owners":[)"
                R"({"shard":0,"owner":"n2","epoch":3,"replicas":["n1","n2","n3"],)"
                R"("isr":["n2","n3"]},{"shard":1,"owner":""}]})");
  controller moves;
  auto members = members_view(
      m, "n1", 2, moves, [](const std::string&) { return true; }, {},
      R"({"controller":"n2","term":7})");
  CHECK(members.ends_with(R"("members":[],"etcd":{"controller":"n2","term":7}})"));
}
