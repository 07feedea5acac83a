// The replication's pure state: leader-epoch histories and where a returning follower's log
// parts from the leader's (KIP-101), and a leader's in-sync set and high watermark.

#include <catch2/catch.hpp>

#include "cluster/follower_state.hpp"
#include "cluster/in_sync_tracker.hpp"
#include "cluster/leader_epochs.hpp"

using namespace kaiwa::cluster;
using namespace std::chrono_literals;
using clock_type = in_sync_tracker::clock;

namespace {

leader_epochs history(std::vector<leader_epochs::entry> e) {
  auto h = leader_epochs::from(std::move(e));
  REQUIRE(h);
  return *h;
}

}  // namespace

TEST_CASE("an epoch history records each epoch's first offset and refuses the past",
          "[replication]") {
  leader_epochs h;
  CHECK(h.latest() == 0);
  CHECK(h.record(1, 1));
  CHECK(h.record(1, 2));  // same epoch: nothing new
  CHECK(h.record(3, 10));
  CHECK_FALSE(h.record(2, 11));  // an older leader's append
  CHECK_FALSE(h.record(4, 10));  // a newer epoch can't start where the last did
  CHECK_FALSE(h.record(3, 9));   // below the epoch's start
  CHECK_FALSE(h.record(5, 0));
  CHECK(h.latest() == 3);
  CHECK(h.entries() == std::vector<leader_epochs::entry>{{1, 1}, {3, 10}});
  CHECK(h.last_of(1, 20) == 9);
  CHECK(h.last_of(3, 20) == 20);
  CHECK_FALSE(h.last_of(2, 20));
  h.truncate_to(9);
  CHECK(h.entries() == std::vector<leader_epochs::entry>{{1, 1}});

  CHECK_FALSE(leader_epochs::from({{1, 0}}));
  CHECK_FALSE(leader_epochs::from({{2, 1}, {1, 5}}));
  CHECK_FALSE(leader_epochs::from({{1, 5}, {2, 5}}));
  CHECK(leader_epochs::from({}));
}

TEST_CASE("a returning follower keeps what it shares with the leader and drops the rest",
          "[replication]") {
  SECTION("just behind in the same epoch: keeps everything") {
    auto f = history({{1, 1}});
    CHECK(divergence(f, 50, f, 80) == 50);
  }
  SECTION("an old leader with writes no one else got: drops them") {
    // It led epoch 1 up to 60; only 1..50 reached the new leader, which leads epoch 2 from 51.
    auto old_leader = history({{1, 1}});
    auto leader = history({{1, 1}, {2, 51}});
    CHECK(divergence(old_leader, 60, leader, 90) == 50);
  }
  SECTION("an epoch the leader never had (KIP-279's case): back to the last common one") {
    // The follower saw epochs 1 and 3; the leader 1 and 2 (epoch 3's leader lost its writes).
    auto f = history({{1, 1}, {3, 50}});
    auto leader = history({{1, 1}, {2, 40}});
    CHECK(divergence(f, 80, leader, 100) == 39);
  }
  SECTION("a new replica has nothing to drop") {
    CHECK(divergence({}, 0, history({{1, 1}}), 100) == 0);
  }
  SECTION("no common epoch: nothing shared if the leader's history is whole") {
    CHECK(divergence(history({{2, 1}}), 10, history({{1, 1}, {3, 5}}), 30) == 0);
  }
  SECTION("no common epoch and the leader's history no longer reaches back: a snapshot") {
    CHECK_FALSE(divergence(history({{2, 1}}), 10, history({{5, 1000}}), 2000));
  }
  SECTION("histories that run past their logs' ends count only up to the ends") {
    // Epoch starts recorded for appends that never landed (a crash, a failed disk).
    auto f = history({{1, 1}, {2, 30}});
    auto leader = history({{1, 1}, {2, 30}, {3, 60}});
    CHECK(divergence(f, 20, leader, 100) == 20);  // epoch 2 is not in f's log: 1 is common
    CHECK(divergence(f, 40, leader, 25) == 25);   // nor in the leader's
    CHECK(divergence(f, 40, leader, 50) == 40);
  }
  SECTION("offsets at the top of the range") {
    constexpr auto top = ~offset_t{0};
    auto f = history({{1, 1}, {2, top - 1}});
    auto leader = history({{1, 1}, {3, top}});
    CHECK(divergence(f, top, leader, top) == top - 2);
    CHECK(divergence(history({{7, 1}}), top, history({{7, 1}}), top) == top);
  }
}

TEST_CASE("the high watermark is what every in-sync replica holds", "[replication]") {
  auto t0 = clock_type::now();
  in_sync_tracker t("n1", {"n1", "n2", "n3"}, {"n1", "n2", "n3"}, 0, {}, t0);
  CHECK(t.writable());
  t.appended(10);
  CHECK(t.high_watermark() == 0);
  t.acked("n2", 10, t0);
  CHECK(t.high_watermark() == 0);  // n3 too: an ack needs the whole isr, not any two
  t.acked("n3", 7, t0);
  CHECK(t.high_watermark() == 7);
  t.acked("n3", 5, t0);  // late, out of order: never backwards
  CHECK(t.end_of("n3") == 7);
  t.acked("n3", 99, t0);  // more than the leader wrote: clamped
  CHECK(t.end_of("n3") == 10);
  CHECK(t.high_watermark() == 10);
  t.acked("n9", 10, t0);  // not a replica: ignored
  CHECK(t.end_of("n9") == 0);
}

TEST_CASE("a follower behind for longer than max_lag leaves the isr; caught up, it joins",
          "[replication]") {
  auto t0 = clock_type::now();
  in_sync_config cfg{2, 1000ms};
  in_sync_tracker t("n1", {"n1", "n2", "n3"}, {"n1", "n2", "n3"}, 0, cfg, t0);
  t.appended(100);
  t.acked("n2", 100, t0 + 100ms);
  t.acked("n3", 40, t0 + 100ms);
  CHECK(t.lagging(t0 + 900ms).empty());
  CHECK(t.lagging(t0 + 1100ms) == std::vector<std::string>{"n3"});

  // The leader writes the smaller isr; until it lands, acks still wait for n3.
  t.proposing({"n1", "n2"});
  CHECK(t.high_watermark() == 40);
  t.set_isr({"n1", "n2"}, t0 + 1200ms);
  CHECK(t.high_watermark() == 100);
  CHECK(t.writable());  // 2 of min_insync 2

  // n3 reaches the high watermark: it may join; while that is written, the high watermark
  // waits for it, so it holds every acked event once in.
  t.acked("n3", 100, t0 + 1300ms);
  CHECK(t.caught_up() == std::vector<std::string>{"n3"});
  t.proposing({"n1", "n2", "n3"});
  t.appended(120);
  t.acked("n2", 120, t0 + 1400ms);
  CHECK(t.high_watermark() == 100);
  t.set_isr({"n1", "n2", "n3"}, t0 + 1500ms);
  CHECK(t.isr().size() == 3);
  CHECK(t.lagging(t0 + 2400ms).empty());  // measured from its joining

  // With n2 and n3 out the shard takes no writes: an ack must mean min_insync disks.
  t.set_isr({"n1"}, t0 + 2500ms);
  CHECK_FALSE(t.writable());
  CHECK(t.high_watermark() == 120);
  // A failed proposal leaves the isr as it was; the leader can't be dropped from it.
  t.proposing({"n1", "n2"});
  t.proposal_failed();
  CHECK(t.isr() == std::vector<std::string>{"n1"});
  t.set_isr({"n2", "n7"}, t0 + 2600ms);
  CHECK(t.isr() == std::vector<std::string>{"n1", "n2"});
}

TEST_CASE(
    "an unreachable follower lags at once, even caught up, and is taken back only once it "
    "answers",
    "[replication]") {
  auto t0 = clock_type::now();
  in_sync_config cfg{2, 1000ms};
  // A new leader of an empty shard: without the mark, a follower that never answered holds all
  // of it (offset 0) and would be taken back in.
  in_sync_tracker t("n1", {"n1", "n2", "n3"}, {"n1", "n2"}, 0, cfg, t0);
  t.unreachable("n3");
  CHECK(t.caught_up().empty());
  t.unreachable("n2");
  CHECK(t.lagging(t0 + 1ms) == std::vector<std::string>{"n2"});  // not after max_lag: now
  t.unreachable("n9");                                           // not a replica: nothing
  t.acked("n3", 0, t0 + 2ms);
  CHECK(t.caught_up() == std::vector<std::string>{"n3"});
  t.acked("n2", 0, t0 + 3ms);
  CHECK(t.lagging(t0 + 4ms).empty());
}

TEST_CASE("a follower that returns with less than it held is not taken back in until it has it",
          "[replication]") {
  // Its connection closed and it came back from an old backup (or lost its page cache under
  // --durability async): its answer says what it holds now, not what it acked before.
  auto t0 = clock_type::now();
  in_sync_config cfg{2, 1000ms};
  in_sync_tracker t("n1", {"n1", "n2", "n3"}, {"n1", "n2", "n3"}, 0, cfg, t0);
  t.appended(100);
  t.acked("n2", 100, t0 + 1ms);
  t.acked("n3", 100, t0 + 1ms);
  REQUIRE(t.high_watermark() == 100);
  t.unreachable("n3");
  t.set_isr({"n1", "n2"}, t0 + 2ms);  // the leader's next tick dropped it
  t.acked("n3", 40, t0 + 3ms);        // back, holding 40
  CHECK(t.end_of("n3") == 40);
  CHECK(t.caught_up().empty());
  t.acked("n3", 100, t0 + 4ms);
  CHECK(t.caught_up() == std::vector<std::string>{"n3"});
}

TEST_CASE("a follower one round trip behind a steady stream of writes is not lagging",
          "[replication]") {
  // Each answer arrives after the leader appended more: the follower is never at the log end
  // when it answers, but it held everything the leader had when it sent the request (Kafka's
  // lastCaughtUpTime: the fetch time of a fetch that reached the leader's end then).
  auto t0 = clock_type::now();
  in_sync_config cfg{2, 1000ms};
  in_sync_tracker t("n1", {"n1", "n2", "n3"}, {"n1", "n2", "n3"}, 0, cfg, t0);
  offset_t end = 0;
  for (int i = 1; i <= 30; ++i) {
    auto sent_at = t0 + i * 100ms;
    auto sent_end = end;  // the batch carries everything written so far
    end += 5;
    t.appended(end);  // more writes while the batch is on its way
    t.acked("n2", sent_end, sent_at + 5ms, sent_end, sent_at);
    t.acked("n3", sent_end, sent_at + 5ms, sent_end, sent_at);
  }
  CHECK(t.lagging(t0 + 3100ms).empty());
  // One that answers with less than the leader had when it sent is behind: it lags out.
  for (int i = 31; i <= 45; ++i) {
    auto sent_at = t0 + i * 100ms;
    auto sent_end = end;
    end += 5;
    t.appended(end);
    t.acked("n2", sent_end, sent_at + 5ms, sent_end, sent_at);
    t.acked("n3", sent_end - 1, sent_at + 5ms, sent_end, sent_at);
  }
  CHECK(t.lagging(t0 + 4600ms) == std::vector<std::string>{"n3"});
}

TEST_CASE("a new leader's follower joins the isr only once it holds the leader's log",
          "[replication]") {
  // A new leader has heard from no follower yet: its high watermark counts them at 0. A replica
  // out of the isr (a stale one, missing acked events) must not look caught up at 0: once in
  // the isr it could be elected and the acked events it lacks would be lost.
  auto t0 = clock_type::now();
  in_sync_tracker t("n3", {"n1", "n2", "n3"}, {"n3", "n1"}, 10, {}, t0);
  CHECK(t.high_watermark() == 0);
  CHECK(t.caught_up().empty());
  t.acked("n2", 4, t0);
  CHECK(t.caught_up().empty());
  t.acked("n1", 10, t0);
  t.acked("n2", 10, t0);
  CHECK(t.caught_up() == std::vector<std::string>{"n2"});
}

namespace {

using kind = append_decision::kind;

append_request req(epoch_t epoch, offset_t first, std::vector<epoch_t> entries, offset_t hw) {
  return {epoch, first, std::move(entries), hw};
}

/// Decides `r` and does what the decision says, as the follower's loop would.
append_decision step(follower_state& f, const append_request& r) {
  auto d = f.decide(r);
  if (d.what == kind::append) {
    f.appended(r, d.skip, d.count);
    if (d.apply_to) f.applied(d.apply_to);
  }
  return d;
}

}  // namespace

TEST_CASE("a follower appends at its log end and applies up to the high watermark",
          "[replication]") {
  follower_state f(0, 0, {}, 0);
  auto d = step(f, req(1, 1, {1, 1, 1}, 0));
  CHECK(d.what == kind::append);
  CHECK(d.count == 3);
  CHECK(d.apply_to == 0);  // nothing acked yet
  CHECK(f.log_end() == 3);
  CHECK(f.followed() == 1);

  // The next batch carries the high watermark: apply what every in-sync replica holds.
  d = step(f, req(1, 4, {1, 1}, 4));
  CHECK(d.count == 2);
  CHECK(d.apply_to == 4);
  CHECK(f.applied_offset() == 4);
  // A high watermark past the follower's end applies only what it has.
  d = step(f, req(1, 6, {}, 50));
  CHECK(d.apply_to == 5);

  // A resent batch: entries held are skipped, the rest appended once.
  d = step(f, req(1, 4, {1, 1, 1}, 5));
  CHECK(d.what == kind::append);
  CHECK(d.skip == 2);
  CHECK(d.count == 1);
  CHECK(f.log_end() == 6);
  d = f.decide(req(1, 2, {1, 1}, 5));  // all held
  CHECK(d.count == 0);
  CHECK(d.skip == 2);

  // A batch past the end: the leader is told where the log ends, and resends from there.
  d = f.decide(req(1, 9, {1}, 5));
  CHECK(d.what == kind::behind);
  CHECK(d.log_end == 6);
}

TEST_CASE("a deposed leader is refused and told the newer epoch", "[replication]") {
  follower_state f(10, 10, *leader_epochs::from({{1, 1}, {3, 6}}), 3);
  auto d = f.decide(req(2, 11, {2}, 11));
  CHECK(d.what == kind::stale);
  CHECK(d.epoch == 3);
  CHECK(f.log_end() == 10);
}

TEST_CASE("a new leader is followed only after the log is reconciled with it", "[replication]") {
  // Entries 9 and 10 were never applied (never acked): they may be missing at the new leader.
  follower_state f(10, 8, *leader_epochs::from({{1, 1}}), 1);
  auto d = f.decide(req(2, 10, {2}, 9));
  CHECK(d.what == kind::reconcile);

  // The new leader's history says its epoch 2 began at 10: the follower keeps 1..9.
  auto leader = *leader_epochs::from({{1, 1}, {2, 10}});
  auto keep = divergence(f.history(), f.log_end(), leader, 12);
  REQUIRE(keep == 9);
  f.reconciled(*keep, 2);
  CHECK(f.log_end() == 9);
  d = step(f, req(2, 10, {2, 2, 2}, 12));
  CHECK(d.what == kind::append);
  CHECK(d.count == 3);
  CHECK(f.log_end() == 12);
  CHECK(f.applied_offset() == 12);
  CHECK(f.history().entries().back() == leader_epochs::entry{2, 10});

  // Reconciling never drops applied entries, whatever it is told.
  f.reconciled(3, 3);
  CHECK(f.log_end() == 12);
  CHECK(f.followed() == 3);

  // Everything applied: a newer leader is followed at once (nothing unacked to drop).
  follower_state g(5, 5, *leader_epochs::from({{1, 1}}), 1);
  CHECK(g.decide(req(4, 6, {4}, 6)).what == kind::append);
}

TEST_CASE("a request that contradicts itself is refused", "[replication]") {
  follower_state f(4, 4, *leader_epochs::from({{2, 1}}), 2);
  CHECK(f.decide(req(2, 5, {3}, 5)).what == kind::invalid);     // newer than its leader
  CHECK(f.decide(req(2, 5, {2, 1}, 5)).what == kind::invalid);  // epochs going back
  CHECK(f.decide(req(2, 5, {0}, 5)).what == kind::invalid);
  CHECK(f.decide(req(2, 0, {}, 5)).what == kind::invalid);
  CHECK(f.decide(req(3, 5, {1}, 5)).what == kind::invalid);  // older than the log's last epoch
  // A resend of held entries of an older epoch is fine: they are skipped, not appended.
  auto d = f.decide(req(3, 1, {2, 2, 2, 2, 3}, 5));
  CHECK(d.what == kind::append);
  CHECK(d.skip == 4);
  CHECK(d.count == 1);
}
