#include <catch2/catch.hpp>

#include "cluster/gather.hpp"

using namespace kaiwa;
using namespace kaiwa::cluster;

namespace {

/// What a query ended with, and how often it ended.
struct outcome {
  std::vector<std::string> pages;
  bool partial = false;
  int calls = 0;
  pages_done done() {
    return [this](std::vector<std::string> p, bool part) {
      pages = std::move(p);
      partial = part;
      calls += 1;
    };
  }
};

}  // namespace

TEST_CASE("gather: a query asks the other members that hold shards; one down makes it partial") {
  shard_map m(6, "n1");
  for (auto id : {"n1", "n2", "n3", "n4"}) m.members.push_back({id, "h", false});
  m.assign(1, "n2");
  m.assign(2, "n3");
  // n4 holds no shards: nothing to ask it.
  auto all = targets(m, "n1", [](auto&) { return true; });
  CHECK(all.ask == std::vector<std::string>{"n2", "n3"});
  CHECK_FALSE(all.partial);
  auto some = targets(m, "n1", [](auto& n) { return n != "n3"; });
  CHECK(some.ask == std::vector<std::string>{"n2"});
  CHECK(some.partial);
}

TEST_CASE("gather: the query ends when the last member answers, with every page") {
  gathers g;
  outcome o;
  auto id = g.open({"n2", "n3"}, false, o.done());
  REQUIRE(id);
  g.answer(*id, "n2", "p2");
  g.answer(*id, "n2", "again");  // answered already
  g.answer(*id, "n9", "p9");     // not asked
  CHECK(o.calls == 0);
  g.answer(*id, "n3", "p3");
  CHECK(o.calls == 1);
  CHECK(o.pages == std::vector<std::string>{"p2", "p3"});
  CHECK_FALSE(o.partial);
  CHECK(g.waiting() == 0);
  g.timed_out(*id);  // the timer still fires: nothing happens
  CHECK(o.calls == 1);
}

TEST_CASE("gather: a timeout ends the query partial; later pages are dropped") {
  gathers g;
  outcome o;
  auto id = g.open({"n2", "n3"}, false, o.done());
  REQUIRE(id);
  g.answer(*id, "n2", "p2");
  g.timed_out(*id);
  CHECK(o.calls == 1);
  CHECK(o.partial);
  CHECK(o.pages == std::vector<std::string>{"p2"});
  g.answer(*id, "n3", "p3");
  CHECK(o.calls == 1);
}

TEST_CASE("gather: an empty page (a member that couldn't answer) makes the query partial") {
  gathers g;
  outcome o;
  auto id = g.open({"n2"}, false, o.done());
  REQUIRE(id);
  g.answer(*id, "n2", "");
  CHECK(o.calls == 1);
  CHECK(o.partial);
  CHECK(o.pages.empty());
}

TEST_CASE("gather: with nobody to ask, the query ends at once, partial as it began") {
  gathers g;
  outcome o;
  CHECK_FALSE(g.open({}, true, o.done()));
  CHECK(o.calls == 1);
  CHECK(o.partial);
  outcome o2;
  CHECK_FALSE(g.open({}, false, o2.done()));
  CHECK_FALSE(o2.partial);
  // Queries waiting at once are told apart.
  outcome a, b;
  auto ia = g.open({"n2"}, false, a.done());
  auto ib = g.open({"n2"}, false, b.done());
  REQUIRE((ia && ib));
  CHECK(*ia != *ib);
  g.answer(*ib, "n2", "pb");
  CHECK(a.calls == 0);
  CHECK(b.pages == std::vector<std::string>{"pb"});
}
