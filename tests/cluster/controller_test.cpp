#include <catch2/catch.hpp>

#include <set>

#include "cluster/controller.hpp"

using namespace kaiwa;
using namespace kaiwa::cluster;

namespace {

using namespace std::chrono_literals;

/// A map of `shards` shards all owned by n1, with members n1..nN.
shard_map cluster_of(std::uint32_t shards, int n) {
  shard_map m(shards, "n1");
  for (int i = 1; i <= n; ++i) {
    auto id = "n" + std::to_string(i);
    m.members.push_back({id, "h:" + std::to_string(i), false});
  }
  return m;
}

is_up all_up() {
  return [](const std::string&) { return true; };
}

is_up up_except(std::string down) {
  return [down](const std::string& n) { return n != down; };
}

/// Records what a reply was called with.
struct answers {
  std::vector<std::string> got;
  move_reply reply() {
    return [this](std::string e) { got.push_back(std::move(e)); };
  }
};

const auto t0 = controller::clock::time_point{};

}  // namespace

TEST_CASE("controller: balanced nodes are the members up and not draining") {
  auto m = cluster_of(8, 3);
  m.members[1].draining = true;
  CHECK(balanced_nodes(m, all_up()) == std::vector<std::string>{"n1", "n3"});
  CHECK(balanced_nodes(m, up_except("n3")) == std::vector<std::string>{"n1"});
}

TEST_CASE("controller: a drain marks the node draining in a newer map, not the only member") {
  auto m = cluster_of(8, 2);
  auto next = with_draining(m, "n2");
  REQUIRE(std::holds_alternative<shard_map>(next));
  auto& d = std::get<shard_map>(next);
  CHECK(d.members[1].draining);
  CHECK(d.epoch() == m.epoch() + 1);
  CHECK(std::get<std::string>(with_draining(m, "n9")) == "no member n9");
  CHECK(std::get<std::string>(with_draining(cluster_of(8, 1), "n1")) ==
        "the only member can't be drained: nowhere to move its shards");
}

TEST_CASE("controller: a plan runs two moves at once and the batch ends when all are done") {
  auto m = cluster_of(8, 2);
  controller c;
  answers a;
  auto queued = c.plan(m, balanced_nodes(m, all_up()), all_up(), a.reply());
  CHECK(queued == 4);  // n1 keeps 4, n2 gets 4
  auto started = c.start(m, all_up(), t0);
  REQUIRE(started.size() == concurrent_moves);
  CHECK(started[0].move.from == "n1");
  CHECK(started[0].move.to == "n2");
  CHECK(c.queued() == 2);
  CHECK(c.moving());
  CHECK(c.start(m, all_up(), t0).empty());  // two under way already

  // A second plan while these run doesn't plan the same shards again.
  CHECK(c.plan(m, balanced_nodes(m, all_up()), all_up()) == 0);

  std::set<shard_t> moved;
  for (int round = 0; round < 2; ++round) {
    for (auto& s : started) {
      auto end = c.finish(s.move.shard, "", t0 + 5ms);
      CHECK(end.took == 5ms);
      CHECK_FALSE(end.reply);  // planned moves answer no one
      m.assign(s.move.shard, s.move.to);
      moved.insert(s.move.shard);
    }
    started = c.start(m, all_up(), t0);
  }
  CHECK(moved.size() == 4);
  CHECK(c.idle());
  CHECK(c.replan());  // a plan ran: even out again before ending
  CHECK(a.got.empty());
  CHECK(c.plan(m, balanced_nodes(m, all_up()), all_up()) == 0);
  auto b = c.end_batch(t0 + 1s, [](auto&, auto) { FAIL("no drain"); });
  CHECK(b.moves == 4);
  CHECK(b.failed == 0);
  CHECK(b.took == 1s);
  CHECK(a.got == std::vector<std::string>{""});
  CHECK(c.moves_done() == 4);
  CHECK_FALSE(c.replan());  // the batch is over
}

TEST_CASE("controller: a failed try is tried again later, with a growing wait, in the batch") {
  // A join: the old owner n2 is not yet connected to n3 when asked to hand it a shard.
  auto m = cluster_of(6, 3);
  m.assign(2, "n2");
  m.assign(3, "n2");
  m.assign(4, "n2");
  m.assign(5, "n2");  // n1: 0 1, n2: 2 3 4 5, n3: none
  controller c;
  auto up = all_up();
  REQUIRE(c.plan(m, balanced_nodes(m, up), up) == 2);
  auto started = c.start(m, up, t0);
  REQUIRE(started.size() == 2);
  auto s = started[0].move.shard;
  CHECK(started[0].move.from == "n2");
  CHECK(started[0].move.to == "n3");
  auto end = c.finish(s, "node n3 is not connected", t0 + 10ms);
  REQUIRE(end.retry_in);
  CHECK(*end.retry_in == move_retry_delay);
  CHECK(end.move.shard == s);
  CHECK(c.moves_failed() == 0);
  CHECK(c.moves_retried() == 1);
  c.finish(started[1].move.shard, "", t0 + 10ms);
  m.assign(started[1].move.shard, "n3");

  // The batch waits for the try again: not idle, nothing to end; not started before it is due.
  CHECK_FALSE(c.idle());
  CHECK(c.queued() == 1);
  CHECK(c.start(m, up, t0 + 500ms).empty());
  auto again = c.start(m, up, t0 + 10ms + move_retry_delay);
  REQUIRE(again.size() == 1);
  CHECK(again[0].move.shard == s);
  CHECK(again[0].move.from == "n2");  // the owner read from the map again

  // Each failed try doubles the wait.
  end = c.finish(s, "node n3 is not connected", t0 + 2s);
  REQUIRE(end.retry_in);
  CHECK(*end.retry_in == 2 * move_retry_delay);
  REQUIRE(c.start(m, up, t0 + 2s + 2 * move_retry_delay).size() == 1);
  end = c.finish(s, "", t0 + 5s);
  CHECK_FALSE(end.retry_in);
  CHECK(c.idle());
  CHECK(c.replan());  // the batch had no failure: it plans again before it ends
  auto b = c.end_batch(t0 + 5s, [](auto&, auto) {});
  CHECK(b.failed == 0);
  CHECK(c.moves_done() == 2);
  CHECK(c.moves_retried() == 2);
}

TEST_CASE("controller: an operator's move tried again is answered once, when it ends") {
  auto m = cluster_of(4, 2);
  controller c;
  answers a;
  REQUIRE(c.enqueue(m, 4, 1, "n2", a.reply()));
  auto now = t0;
  for (std::uint32_t k = 1; k < move_tries; ++k) {
    auto started = c.start(m, all_up(), now);
    REQUIRE(started.size() == 1);
    auto end = c.finish(1, "handover failed: timeout", now);
    REQUIRE(end.retry_in);
    CHECK_FALSE(end.reply);
    now += *end.retry_in;
  }
  CHECK(a.got.empty());
  REQUIRE(c.start(m, all_up(), now).size() == 1);
  auto end = c.finish(1, "", now);
  REQUIRE(end.reply);
  end.reply("");
  CHECK(a.got == std::vector<std::string>{""});
}

TEST_CASE("controller: a move whose tries are spent fails the batch; a drain is not finished") {
  auto m = cluster_of(4, 2);
  m.assign(0, "n2");
  m.assign(1, "n2");
  m.members[1].draining = true;
  controller c;
  answers a;
  bool drained = false;
  CHECK(c.plan(m, balanced_nodes(m, all_up()), all_up(), a.reply(), "n2", 30s) == 2);
  auto started = c.start(m, all_up(), t0);
  REQUIRE(started.size() == 2);
  c.finish(started[0].move.shard, "", t0);
  auto failing = started[1].move.shard;
  auto now = t0;
  for (std::uint32_t k = 1;; ++k) {
    auto end = c.finish(failing, "disk full", now);
    if (k == move_tries) {
      CHECK_FALSE(end.retry_in);
      break;
    }
    REQUIRE(end.retry_in);
    CHECK_FALSE(c.idle());
    now += *end.retry_in;
    REQUIRE(c.start(m, all_up(), now).size() == 1);
  }
  CHECK(c.moves_retried() == move_tries - 1);
  CHECK(c.idle());
  CHECK_FALSE(c.replan());  // no retry loop after a failure
  c.end_batch(t0, [&](auto&, auto) { drained = true; });
  CHECK_FALSE(drained);
  CHECK(a.got == std::vector<std::string>{"1 moves failed (see the coordinator's log)"});
  CHECK(c.moves_failed() == 1);
  CHECK(c.moves_done() == 1);
}

TEST_CASE("controller: a drain whose moves all end is finished with its grace") {
  auto m = cluster_of(4, 2);
  m.assign(3, "n2");
  m.members[1].draining = true;
  controller c;
  answers a;
  std::string drained;
  std::chrono::milliseconds grace{};
  CHECK(c.plan(m, balanced_nodes(m, all_up()), all_up(), a.reply(), "n2", 30s) == 1);
  auto started = c.start(m, all_up(), t0);
  REQUIRE(started.size() == 1);
  CHECK(started[0].move.shard == 3);
  c.finish(3, "", t0);
  c.end_batch(t0, [&](auto& node, auto g) {
    drained = node;
    grace = g;
    CHECK(a.got.empty());  // the drain is finished before its operator hears
  });
  CHECK(drained == "n2");
  CHECK(grace == 30s);
  CHECK(a.got == std::vector<std::string>{""});
}

TEST_CASE("controller: a plan leaves the shards of a member that is down where they are") {
  auto m = cluster_of(4, 3);
  m.assign(0, "n2");
  m.assign(1, "n2");
  m.assign(2, "n2");
  m.assign(3, "n2");
  controller c;
  // n2 is down: nothing to hand over without it.
  CHECK(c.plan(m, balanced_nodes(m, up_except("n2")), up_except("n2")) == 0);
  CHECK(c.idle());
}

TEST_CASE("controller: an operator's move is checked, answered at once or queued") {
  auto m = cluster_of(4, 2);
  controller c;
  answers a;
  CHECK_FALSE(c.enqueue(m, 4, 4, "n2", a.reply()));
  CHECK_FALSE(c.enqueue(m, 4, 0, "n9", a.reply()));
  CHECK_FALSE(c.enqueue(m, 4, 0, "n1", a.reply()));  // already there
  CHECK(a.got == std::vector<std::string>{"no shard 4 (there are 4)", "no member n9", ""});
  a.got.clear();

  CHECK(c.enqueue(m, 4, 0, "n2", a.reply()));
  CHECK(c.enqueue(m, 4, 0, "n2", a.reply()));  // the same shard again: waits for the first
  auto started = c.start(m, all_up(), t0);
  REQUIRE(started.size() == 1);
  CHECK(c.queued() == 1);
  auto end = c.finish(0, "", t0);
  REQUIRE(end.reply);
  end.reply("");
  m.assign(0, "n2");
  CHECK(c.start(m, all_up(), t0).empty());  // the second finds it there: done at once
  CHECK(a.got == std::vector<std::string>{"", ""});
  CHECK(c.idle());
  CHECK_FALSE(c.replan());  // an operator's move is not evened out afterwards
}

TEST_CASE("controller: a move whose owner or target is down fails without starting") {
  auto m = cluster_of(4, 2);
  controller c;
  answers a;
  CHECK(c.enqueue(m, 4, 0, "n2", a.reply()));
  CHECK(c.start(m, up_except("n2"), t0).empty());
  CHECK(a.got == std::vector<std::string>{"node n2 is down"});
  CHECK(c.idle());
  c.end_batch(t0, [](auto&, auto) {});
  CHECK(c.enqueue(m, 4, 1, "n2", a.reply()));
  CHECK(c.start(m, up_except("n1"), t0).empty());
  CHECK(a.got.back() == "node n1 is down");
}

TEST_CASE("controller: the moves with a member that went down are named") {
  auto m = cluster_of(8, 3);
  controller c;
  CHECK(c.enqueue(m, 8, 0, "n2", nullptr));
  CHECK(c.enqueue(m, 8, 1, "n3", nullptr));
  CHECK(c.start(m, all_up(), t0).size() == 2);
  CHECK(c.moving_with("n3") == std::vector<shard_t>{1});
  CHECK(c.moving_with("n1") == std::vector<shard_t>{0, 1});
  CHECK(c.moving_with("n4").empty());
}
