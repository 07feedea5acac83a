#include <catch2/catch.hpp>

#include <string>

#include "cluster/routing.hpp"

using namespace kaiwa::cluster;

namespace {

struct session {
  int n = 0;
};
struct stand_in {
  std::string name;
};
using table = routes<session, stand_in>;

}  // namespace

TEST_CASE("routing: the request id a reply answers, string or number; none for events") {
  CHECK(answered_id(R"({"op":"sent","id":"a1","seq":4})") == R"("a1")");
  CHECK(answered_id(R"({"op":"sent","id":17})") == "17");
  CHECK(answered_id(R"({"op":"error","id":"q\"x","code":"x"})") == R"("q\"x")");
  CHECK_FALSE(answered_id(R"({"op":"message","room":"lobby","seq":4})"));
  // An id far into the frame is a message's text, not the reply's id.
  CHECK_FALSE(answered_id(R"({"op":"message","room":"lobby","text":"x,\"id\":1"})"));
  CHECK_FALSE(answered_id(R"({"op":"sent","id":12)"));    // cut short
  CHECK_FALSE(answered_id(R"({"op":"sent","id":"ab\)"));  // an escape at the end
}

TEST_CASE("routing: a session is found while it lives, forgotten once it ended") {
  table t;
  auto s = std::make_shared<session>(session{1});
  t.remember(5, s);
  CHECK(t.local(5) == s);
  CHECK_FALSE(t.local(6));
  s.reset();
  CHECK_FALSE(t.local(5));
  CHECK(t.links() == 0);  // looking it up forgot it
}

TEST_CASE("routing: sessions that ended are pruned once per 4096 commands routed") {
  table t;
  auto live = std::make_shared<session>();
  t.remember(1, live);
  for (std::uint64_t i = 2; i < 12; ++i) t.remember(i, std::make_shared<session>());
  CHECK(t.links() == 11);
  for (std::uint64_t i = 1; i < table::prune_every; ++i) t.routed();
  CHECK(t.links() == 11);
  t.routed();
  CHECK(t.links() == 1);
  CHECK(t.local(1) == live);
}

TEST_CASE("routing: a request is held until its answer; the same id twice needs two") {
  table t;
  auto s = std::make_shared<session>();
  t.expect(5, R"("a")", "n2", 1, s);
  t.expect(5, R"("a")", "n2", 1, s);
  t.expect(5, "7", "n3", 2, s);
  CHECK(t.awaiting() == 2);
  t.answered(5, R"({"op":"sent","id":"a"})");
  CHECK(t.awaiting() == 2);
  t.answered(6, R"({"op":"sent","id":"a"})");  // another session's
  t.answered(5, R"({"op":"sent","id":"a"})");
  CHECK(t.awaiting() == 1);
  t.answered(5, R"({"op":"message","room":"r","seq":1})");  // not an answer
  CHECK(t.awaiting() == 1);
}

TEST_CASE("routing: the requests of a node that went down are returned once, held links too") {
  table t;
  std::weak_ptr<session> weak;
  {
    auto s = std::make_shared<session>(session{3});
    weak = s;
    t.expect(5, R"("a")", "n2", 1, s);
    t.expect(5, R"("a")", "n2", 1, s);
    t.expect(9, "1", "n3", 2, s);
  }
  CHECK_FALSE(weak.expired());  // held for its answer
  auto lost = t.unanswered_by("n2");
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].request_id == R"("a")");
  CHECK(lost[0].count == 2);
  CHECK(lost[0].link->n == 3);
  CHECK(t.unanswered_by("n2").empty());
  CHECK(t.awaiting() == 1);
}

TEST_CASE(
    "routing: requests held by a shard's former leader are answered now, once; its late answer "
    "is dropped") {
  table t;
  auto s = std::make_shared<session>(session{3});
  t.expect(5, R"("a")", "n2", 1, s);  // shard 1 on n2, which is paused
  t.expect(5, "7", "n2", 2, s);       // shard 2 on n2 too, still led there
  t.expect(9, "1", "n3", 1, s);       // shard 1, sent to n3 (already its leader)
  auto moved = [](std::uint32_t shard, const std::string& node) {
    return shard == 1 && node != "n3";  // shard 1 is led by n3 now
  };
  auto lost = t.abandon(moved);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].request_id == R"("a")");
  CHECK(t.abandon(moved).empty());                         // answered once
  CHECK_FALSE(t.answered(5, R"({"op":"ack","id":"a"})"));  // n2 wakes: its answer is dropped
  CHECK(t.answered(5, R"({"op":"ack","id":7})"));
  CHECK(t.answered(9, R"({"op":"ack","id":1})"));
  CHECK(t.awaiting() == 0);

  // The client resends "a" after its timeout: it waits afresh, and its answer goes through.
  t.expect(5, R"("b")", "n2", 1, s);
  t.abandon(moved);
  t.expect(5, R"("b")", "n3", 1, s);
  CHECK(t.answered(5, R"({"op":"ack","id":"b"})"));
  // n2 went down before its late answer: nothing more to answer.
  t.expect(5, R"("c")", "n2", 1, s);
  t.abandon(moved);
  CHECK(t.unanswered_by("n2").empty());
  CHECK(t.awaiting() == 0);
}

TEST_CASE("routing: subscriptions to rooms of a node that went down are lost, others kept") {
  table t;
  auto s1 = std::make_shared<session>(session{1});
  auto s2 = std::make_shared<session>(session{2});
  t.remember(1, s1);
  t.remember(2, s2);
  t.joined(1, "on-n2");
  t.joined(1, "on-n3");
  t.joined(2, "on-n2");
  t.left(2, "on-n2");
  t.joined(2, "on-n2b");
  auto lost = t.lose([](const std::string& room) { return room.starts_with("on-n2"); });
  REQUIRE(lost.size() == 2);
  CHECK(lost[0].first->n + lost[1].first->n == 3);
  CHECK_FALSE(t.subscribed(1, "on-n2"));
  CHECK(t.subscribed(1, "on-n3"));
  CHECK_FALSE(t.subscribed(2, "on-n2b"));
}

TEST_CASE("routing: a session that ended loses all its subscriptions, unreported") {
  table t;
  auto s = std::make_shared<session>();
  t.remember(1, s);
  t.joined(1, "a");
  t.joined(1, "b");
  s.reset();
  CHECK(t.lose([](const std::string& room) { return room == "a"; }).empty());
  CHECK_FALSE(t.subscribed(1, "b"));
}

TEST_CASE("routing: stand-ins are kept per (node, link id) and dropped with their node") {
  table t;
  t.proxy("n2", 1) = std::make_shared<stand_in>(stand_in{"n2/1"});
  t.proxy("n2", 9) = std::make_shared<stand_in>(stand_in{"n2/9"});
  t.proxy("n3", 1) = std::make_shared<stand_in>(stand_in{"n3/1"});
  CHECK(t.proxy("n2", 1)->name == "n2/1");
  t.drop_proxy("n2", 9);
  CHECK(t.proxies() == 2);
  auto gone = t.take_proxies("n2");
  REQUIRE(gone.size() == 1);
  CHECK(gone[0]->name == "n2/1");
  CHECK(t.proxies() == 1);
  CHECK(t.proxy("n3", 1)->name == "n3/1");
  CHECK_FALSE(t.proxy("n2", 1));  // made empty, for the caller to fill
}
