#include <catch2/catch.hpp>

#include <map>

#include "cluster/shard_map.hpp"
#include "core/shard.hpp"

using namespace kaiwa;
using namespace kaiwa::cluster;

namespace {

/// Applies `moves` to `m` as the coordinator would, checking each starts where the map says.
void apply_moves(shard_map& m, const std::vector<shard_move>& moves) {
  for (auto& mv : moves) {
    REQUIRE(m.owner(mv.shard) == mv.from);
    m.assign(mv.shard, mv.to);
  }
}

}  // namespace

TEST_CASE("a room's shard is stable: the same on every build, spread over all shards") {
  // Fixed values: changing the hash would move every room of every cluster.
  CHECK(shard_of("lobby", 1024) == shard_of("lobby", 1024));
  CHECK(shard_of("", 1024) == 2166136261u % 1024);
  CHECK(shard_of("a", 1024) == 0xe40c292cu % 1024);
  std::map<shard_t, int> hits;
  for (int i = 0; i < 100'000; ++i) hits[shard_of("room-" + std::to_string(i), 64)] += 1;
  CHECK(hits.size() == 64);
  for (auto& [_, n] : hits) CHECK(n > 1000);  // ~1562 each
}

TEST_CASE("the shard map survives its text form; junk is refused") {
  shard_map m(16, "n1");
  m.members = {{"n1", "127.0.0.1:7070", false}, {"n2", "127.0.0.1:7071", true}};
  m.assign(3, "n2");
  m.assign(4, "n2");
  m.touch();
  auto back = shard_map::decode(m.encode());
  REQUIRE(back);
  CHECK(back->epoch() == m.epoch());
  CHECK(back->epoch() == 4);
  CHECK(back->coordinator == "n1");
  CHECK(back->members == m.members);
  for (shard_t s = 0; s < 16; ++s) CHECK(back->owner(s) == m.owner(s));
  CHECK(back->count("n2") == 2);

  CHECK(!shard_map::decode(""));
  CHECK(!shard_map::decode("kaiwa-shard-map 1\nepoch x\n"));
  auto text = m.encode();
  CHECK(!shard_map::decode(text.substr(0, text.size() - 4)));  // owners cut short
}

TEST_CASE("a shard map from a peer can't declare more owners than shards, however it counts") {
  auto head = std::string("kaiwa-shard-map 1\nepoch 2\ncoordinator n1\n");
  CHECK(shard_map::decode(head + "owners 2\nn1*1 n2*1\n"));
  // 1 + (2^64 - 1) wraps around to 0: refused, not a vector of 2^64 - 1 owners.
  CHECK(!shard_map::decode(head + "owners 2\nn1*1 n2*18446744073709551615\n"));
  CHECK(!shard_map::decode(head + "owners 2\nn1*3\n"));
  CHECK(!shard_map::decode(head + "owners 99999999\nn1*99999999\n"));
  // One owners section: a second can't redeclare the count after the first filled it.
  CHECK(!shard_map::decode(head + "owners 1\nn1*1\nowners 2\nn1*1\n"));
  // Without a coordinator (or an epoch) it would not survive being persisted and read back.
  CHECK(!shard_map::decode("kaiwa-shard-map 1\nepoch 2\nmember n1 a 0\nowners 1\nn1*1\n"));
  CHECK(!shard_map::decode("kaiwa-shard-map 1\ncoordinator n1\nmember n1 a 0\nowners 1\nn1*1\n"));
}

TEST_CASE("rebalancing evens shards out with the fewest moves, and empties excluded nodes") {
  shard_map m(1024, "n1");
  auto plan = plan_rebalance(m, {"n1", "n2"});
  CHECK(plan.size() == 512);
  apply_moves(m, plan);
  CHECK(m.count("n1") == 512);
  CHECK(m.count("n2") == 512);

  plan = plan_rebalance(m, {"n1", "n2", "n3"});
  CHECK(plan.size() == 341);  // n3 gets its third; nothing moves between n1 and n2
  for (auto& mv : plan) CHECK(mv.to == "n3");
  apply_moves(m, plan);
  CHECK(std::max({m.count("n1"), m.count("n2"), m.count("n3")}) -
            std::min({m.count("n1"), m.count("n2"), m.count("n3")}) <=
        1);
  CHECK(plan_rebalance(m, {"n1", "n2", "n3"}).empty());  // balanced: a no-op

  // Draining n2: everything it has goes, and only that.
  auto n2_had = m.count("n2");
  plan = plan_rebalance(m, {"n1", "n3"});
  CHECK(plan.size() == n2_had);
  for (auto& mv : plan) CHECK(mv.from == "n2");
  apply_moves(m, plan);
  CHECK(m.count("n2") == 0);
  CHECK(m.count("n1") == 512);
  CHECK(m.count("n3") == 512);
}
