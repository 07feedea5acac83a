// The replication actor (actors/detail/replication_actor.hpp) as the node runs it: three actors
// in one actor system, one per node, each over its own journal in a temp dir. Their `send` hooks
// deliver to each other directly (a node "cut off" loses its messages both ways), their isr
// proposals go to an in-memory etcd (compare-and-swap on a mod revision) that hands every change
// to the nodes it reaches, as the metadata agent's watch does.

#include <catch2/catch.hpp>

#include <caf/all.hpp>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "actors/detail/replication_actor.hpp"
#include "cluster/replication_wire.hpp"
#include "cluster/shard_assignment.hpp"
#include "core/log.hpp"
#include "storage/journal.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;
using cluster::replicate_error;
using cluster::shard_assignment;
using detail::replicate_code;

namespace {

const bool quiet = [] {
  configure_logging(log_level::error, log_format::text);
  return true;
}();

/// A hook's call that the test waits for: serving(shard, v) with the journal's position then.
struct serving_event {
  bool serving = false;
  std::uint64_t applied = 0;
  std::uint64_t log_end = 0;
};

class replication_cluster {
 public:
  const room_id room{"lobby"};
  const std::vector<std::string> nodes{"n1", "n2", "n3"};
  shard_t shard = 0;

  explicit replication_cluster(cluster::in_sync_config cfg = {2, 300ms},
                               detail::log_retention retention = {})
      : cfg_(cfg), retention_(retention) {
    for (auto& n : nodes) {
      auto j = storage::journal::open({dirs_[n].str(), true});
      REQUIRE(j.ok());
      journals_[n] = std::move(*j);
      lease_[n] = true;
      metrics_[n] = std::make_shared<detail::replication_metrics>();
    }
    shard = shard_of(room.str(), journals_["n1"]->shards());
    for (auto& n : nodes) start(n);
  }

  ~replication_cluster() {
    {
      std::lock_guard lock(mtx_);
      for (auto& [n, a] : actors_) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
      actors_.clear();
    }
    sys_.await_all_actors_done();
    // What the journals' writers still post goes to actors that are gone.
    for (auto& [n, j] : journals_) j->stop();
  }

  /// Spawns `n`'s replication actor over its journal (as the node starts, or restarts).
  void start(const std::string& n) {
    detail::replication_hooks h;
    h.send = [this, n](const std::string& to, std::string bytes) {
      std::lock_guard lock(mtx_);
      if (cut_.contains(n) || cut_.contains(to) || !actors_.contains(to)) return;
      if (lapse_after_send_ == std::pair{n, to}) {
        lease_[n] = false;
        lapse_after_send_ = {};
      }
      caf::anon_send(actors_[to], detail::peer_msg_atom::value, n, std::move(bytes));
    };
    h.propose_isr = [this](shard_t s, shard_assignment next, std::int64_t expected,
                           std::function<void(std::optional<std::int64_t>)> done) {
      std::optional<std::int64_t> written;
      {
        std::lock_guard lock(mtx_);
        if (revision_of_[s] == expected) {
          written = put_locked(s, next);
          ++isr_writes_;
        }
      }
      done(written);
      if (written) publish(s);
    };
    h.lease_valid = [this, n] { return lease_[n].load(); };
    h.serving = [this, n](shard_t s, bool v) {
      auto at = journals_[n]->replica_position(s);
      std::lock_guard lock(mtx_);
      serving_[n].push_back({v, at->applied, at->log_end});
      cv_.notify_all();
    };
    h.resign = [this, n](shard_t s, cluster::epoch_t epoch) {
      std::lock_guard lock(mtx_);
      resigns_[n].emplace_back(s, epoch);
      cv_.notify_all();
    };
    auto a = detail::spawn_replication(sys_, *journals_[n], n, cfg_, std::move(h),
                                       staging_[n].str(), metrics_[n], retention_);
    std::lock_guard lock(mtx_);
    actors_[n] = a;
  }

  /// kill -9 of the actor: it is gone at once (its journal stays, as its disk would).
  void kill(const std::string& n) {
    caf::actor a;
    {
      std::lock_guard lock(mtx_);
      a = actors_.at(n);
      actors_.erase(n);
    }
    caf::scoped_actor self{sys_};
    self->monitor(a);
    caf::anon_send_exit(a, caf::exit_reason::kill);
    bool down = false;
    self->receive([&](caf::down_msg&) { down = true; }, caf::after(10s) >> [] {});
    REQUIRE(down);
  }

  /// `n` loses every message to and from the others, and the metadata's changes.
  void cut(const std::string& n) {
    std::lock_guard lock(mtx_);
    cut_.insert(n);
  }
  void heal(const std::string& n) {
    std::lock_guard lock(mtx_);
    cut_.erase(n);
  }

  /// The controller writes `a` and every node it reaches gets it.
  void assign(const shard_assignment& a) {
    {
      std::lock_guard lock(mtx_);
      put_locked(shard, a);
    }
    publish(shard);
  }
  /// The current assignment reaches `n` alone (a watch catching up after a cut).
  void deliver(const std::string& n) {
    std::lock_guard lock(mtx_);
    caf::anon_send(actors_.at(n), detail::assign_atom::value, shard, cluster::encode(etcd_[shard]),
                   revision_of_[shard]);
  }
  shard_assignment current() {
    std::lock_guard lock(mtx_);
    return etcd_[shard];
  }
  int isr_writes() {
    std::lock_guard lock(mtx_);
    return isr_writes_;
  }

  caf::actor actor(const std::string& n) {
    std::lock_guard lock(mtx_);
    return actors_.at(n);
  }
  storage::journal& journal(const std::string& n) { return *journals_.at(n); }
  detail::replication_metrics& metrics(const std::string& n) { return *metrics_.at(n); }
  void set_lease(const std::string& n, bool valid) { lease_[n] = valid; }
  /// `from`'s lease lapses as its next message to `to` leaves (the answer finds it lapsed).
  void lapse_after_send(const std::string& from, const std::string& to) {
    std::lock_guard lock(mtx_);
    lapse_after_send_ = {from, to};
  }

  std::vector<serving_event> serving(const std::string& n) {
    std::lock_guard lock(mtx_);
    return serving_[n];
  }
  /// `n`'s resign hook calls: (shard, epoch).
  std::vector<std::pair<shard_t, cluster::epoch_t>> resigns(const std::string& n) {
    std::lock_guard lock(mtx_);
    return resigns_[n];
  }
  bool is_serving(const std::string& n) {
    auto ev = serving(n);
    return !ev.empty() && ev.back().serving;
  }

  /// A room's write_set as `n`'s journal makes its replicated payload.
  std::string payload(const std::string& n, seq_t seq, const std::string& text) {
    storage::write_set ws;
    ws.put_event(room, seq, text);
    ws.put_meta(room, "head " + std::to_string(seq));
    return journals_.at(n)->replica_payload(ws);
  }

  /// Waits until `done` holds, at most 20 s.
  bool wait(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    std::unique_lock lock(mtx_);
    while (true) {
      lock.unlock();
      if (done()) return true;
      lock.lock();
      if (std::chrono::steady_clock::now() >= deadline) return false;
      cv_.wait_for(lock, 10ms);
    }
  }

  caf::actor_system& sys() { return sys_; }

  /// `n`'s replication_status_atom answer.
  std::string status(const std::string& n) {
    caf::scoped_actor self{sys_};
    std::string out;
    self->request(actor(n), 10s, detail::replication_status_atom::value)
        .receive([&](std::string& json) { out = std::move(json); }, [](caf::error&) {});
    return out;
  }

 private:
  std::int64_t put_locked(shard_t s, const shard_assignment& a) {
    etcd_[s] = a;
    revision_of_[s] = ++revision_;
    return revision_;
  }
  void publish(shard_t s) {
    std::lock_guard lock(mtx_);
    for (auto& [n, a] : actors_)
      if (!cut_.contains(n))
        caf::anon_send(a, detail::assign_atom::value, s, cluster::encode(etcd_[s]),
                       revision_of_[s]);
  }

  cluster::in_sync_config cfg_;
  detail::log_retention retention_;
  std::map<std::string, test::temp_dir> dirs_;
  std::map<std::string, test::temp_dir> staging_;
  std::map<std::string, std::unique_ptr<storage::journal>> journals_;
  std::map<std::string, std::atomic<bool>> lease_;
  std::map<std::string, std::shared_ptr<detail::replication_metrics>> metrics_;
  caf::actor_system_config sys_cfg_;
  caf::actor_system sys_{sys_cfg_};

  std::mutex mtx_;  // what follows, and the order of anon_sends made under it
  std::condition_variable cv_;
  std::map<std::string, caf::actor> actors_;
  std::set<std::string> cut_;
  std::pair<std::string, std::string> lapse_after_send_;
  std::map<std::string, std::vector<serving_event>> serving_;
  std::map<std::string, std::vector<std::pair<shard_t, cluster::epoch_t>>> resigns_;
  std::map<shard_t, shard_assignment> etcd_;
  std::map<shard_t, std::int64_t> revision_of_;
  std::int64_t revision_ = 100;
  int isr_writes_ = 0;
};

/// Writes in flight from a client: sent at once, their replies collected as they come.
class writes {
 public:
  writes(replication_cluster& c, const std::string& node, std::vector<std::string> payloads)
      : self_(c.sys()), expected_(payloads.size()) {
    auto a = c.actor(node);
    for (auto& p : payloads) self_->send(a, detail::replicate_atom::value, c.shard, std::move(p));
  }
  /// Every reply (each within 20 s of the previous); fewer when one doesn't come.
  std::vector<std::int32_t> codes() {
    while (codes_.size() < expected_) {
      bool timed_out = false;
      self_->receive([&](std::int32_t code) { codes_.push_back(code); },
                     caf::after(20s) >> [&] { timed_out = true; });
      if (timed_out) break;
    }
    return codes_;
  }
  /// Replies that came within `d` (none of the rest).
  std::vector<std::int32_t> codes_within(std::chrono::milliseconds d) {
    bool timed_out = false;
    while (codes_.size() < expected_ && !timed_out)
      self_->receive([&](std::int32_t code) { codes_.push_back(code); },
                     caf::after(d) >> [&] { timed_out = true; });
    return codes_;
  }

 private:
  caf::scoped_actor self_;
  std::size_t expected_;
  std::vector<std::int32_t> codes_;
};

std::vector<std::string> payloads(replication_cluster& c, const std::string& node, seq_t from,
                                  seq_t to, const std::string& prefix) {
  std::vector<std::string> out;
  for (auto seq = from; seq <= to; ++seq)
    out.push_back(c.payload(node, seq, prefix + std::to_string(seq)));
  return out;
}

std::size_t count(const std::vector<std::int32_t>& codes, std::int32_t code) {
  return static_cast<std::size_t>(std::count(codes.begin(), codes.end(), code));
}

/// The shard's log and records on `n`, to compare replicas: log end, applied, every entry's
/// epoch and payload, the room's events.
struct replica_image {
  std::uint64_t log_end = 0, applied = 0;
  std::vector<std::pair<std::uint64_t, std::string>> entries;
  std::vector<std::string> events;
  friend bool operator==(const replica_image&, const replica_image&) = default;
};

replica_image image(replication_cluster& c, const std::string& n) {
  auto& j = c.journal(n);
  replica_image out;
  auto at = j.replica_position(c.shard);
  REQUIRE(at.ok());
  out.log_end = at->log_end;
  out.applied = at->applied;
  auto log = j.replica_entries(c.shard, 0, 100'000, std::size_t{1} << 30);
  REQUIRE(log.ok());
  for (auto& e : *log) out.entries.emplace_back(e.epoch, e.payload);
  auto events = j.events_after(c.room, 0, 100'000);
  REQUIRE(events.ok());
  out.events = *events;
  return out;
}

bool applied_everywhere(replication_cluster& c, std::uint64_t n) {
  for (auto& node : c.nodes)
    if (c.journal(node).replica_position(c.shard)->applied != n) return false;
  return true;
}

}  // namespace

TEST_CASE("replication actors: 100 writes acked, every replica's log and records alike",
          "[replication][actor]") {
  replication_cluster c;
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  auto codes = writes(c, "n1", payloads(c, "n1", 1, 100, "e")).codes();
  REQUIRE(codes.size() == 100);
  CHECK(count(codes, detail::replicate_acked) == 100);
  REQUIRE(c.wait([&] { return applied_everywhere(c, 100); }));
  auto leader = image(c, "n1");
  CHECK(leader.log_end == 100);
  CHECK(leader.events.size() == 100);
  CHECK(leader.events.back() == "e100");
  CHECK(image(c, "n2") == leader);
  CHECK(image(c, "n3") == leader);
  CHECK(c.metrics("n1").writes_acked == 100);
  CHECK(c.metrics("n1").appends_sent >= 2);
  CHECK(c.metrics("n1").append_bytes_sent > 100 * 10);
  CHECK(c.metrics("n2").messages_received >= 1);
  CHECK_FALSE(c.is_serving("n2"));
  CHECK_FALSE(c.is_serving("n3"));
  auto shard = std::to_string(c.shard);
  CHECK(c.status("n1") == "[{\"shard\":" + shard +
                              ",\"epoch\":1,\"leader\":\"n1\",\"leading\":true,\"serving\":true,"
                              "\"log_end\":100,\"applied\":100,\"high_watermark\":100,"
                              "\"isr\":[\"n1\",\"n2\",\"n3\"],\"revision\":101}]");
  CHECK(c.status("n2").find("\"leading\":false,\"serving\":false,\"log_end\":100") !=
        std::string::npos);
}

TEST_CASE(
    "replication actors: a killed leader's in-sync follower leads the next epoch once it "
    "applied its log, and a restarted old leader catches up as a follower",
    "[replication][actor]") {
  replication_cluster c;
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  auto first = writes(c, "n1", payloads(c, "n1", 1, 30, "a")).codes();
  REQUIRE(count(first, detail::replicate_acked) == 30);
  c.kill("n1");

  c.assign({2, "n2", c.nodes, {"n2", "n3"}});
  REQUIRE(c.wait([&] { return c.is_serving("n2"); }));
  // Serving only once its records hold every write acked before: all it held at the promotion.
  auto ev = c.serving("n2");
  REQUIRE(ev.size() == 1);
  CHECK(ev[0].log_end == 30);
  CHECK(ev[0].applied == 30);

  auto second = writes(c, "n2", payloads(c, "n2", 31, 50, "b")).codes();
  CHECK(count(second, detail::replicate_acked) == 20);

  // n1 returns (its epoch history rebuilt from its log) and follows; n2 takes it back in sync.
  c.start("n1");
  c.deliver("n1");
  REQUIRE(c.wait([&] { return c.current().isr.size() == 3; }));
  REQUIRE(c.wait([&] { return applied_everywhere(c, 50); }));
  CHECK(c.metrics("n2").isr_expands == 1);
  auto leader = image(c, "n2");
  CHECK(leader.events.size() == 50);
  CHECK(leader.entries[29].first == 1);
  CHECK(leader.entries[30].first == 2);
  CHECK(image(c, "n1") == leader);
  CHECK(image(c, "n3") == leader);
  CHECK_FALSE(c.is_serving("n1"));
}

TEST_CASE(
    "replication actors: a cut-off leader's late writes fail once it hears of the new "
    "epoch, and its unacked entries go",
    "[replication][actor]") {
  replication_cluster c;
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  REQUIRE(count(writes(c, "n1", payloads(c, "n1", 1, 10, "a")).codes(), detail::replicate_acked) ==
          10);

  auto cut_at = std::chrono::steady_clock::now();
  c.cut("n1");
  c.assign({2, "n2", c.nodes, {"n2", "n3"}});  // n1 doesn't hear of it
  writes late(c, "n1", payloads(c, "n1", 11, 15, "late"));
  REQUIRE(c.wait([&] { return c.is_serving("n2"); }));
  CHECK(count(writes(c, "n2", payloads(c, "n2", 11, 20, "b")).codes(), detail::replicate_acked) ==
        10);
  // n1's isr change (dropping the followers it can't reach) loses its compare-and-swap.
  REQUIRE(c.wait([&] { return c.metrics("n1").isr_proposals_failed >= 1; }));
  CHECK(late.codes_within(500ms).empty());  // while it goes on proposing
  // Each lost compare-and-swap holds the next one back 200 ms (not one a tick).
  auto cut_for = std::chrono::steady_clock::now() - cut_at;
  CHECK(c.metrics("n1").isr_proposals_failed <= 1 + cut_for / 200ms);

  c.heal("n1");  // its resent appends are answered stale: it steps down
  auto codes = late.codes();
  REQUIRE(codes.size() == 5);
  CHECK(count(codes, replicate_code(replicate_error::deposed)) == 5);
  REQUIRE(c.wait([&] { return !c.is_serving("n1"); }));

  c.deliver("n1");
  REQUIRE(c.wait([&] { return applied_everywhere(c, 20); }));
  auto leader = image(c, "n2");
  CHECK(leader.events[10] == "b11");
  CHECK(image(c, "n1") == leader);
  CHECK(image(c, "n3") == leader);
}

TEST_CASE(
    "replication actors: a follower that doesn't answer leaves the isr and writes go on "
    "with min_insync 2; back, it joins again",
    "[replication][actor]") {
  replication_cluster c;
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  c.cut("n3");
  auto codes = writes(c, "n1", payloads(c, "n1", 1, 20, "a")).codes();
  CHECK(count(codes, detail::replicate_acked) == 20);
  CHECK(c.current().isr == std::vector<std::string>{"n1", "n2"});
  CHECK(c.current().epoch == 1);
  CHECK(c.metrics("n1").isr_shrinks == 1);
  CHECK(count(writes(c, "n1", payloads(c, "n1", 21, 30, "b")).codes(), detail::replicate_acked) ==
        10);

  c.heal("n3");
  c.deliver("n3");
  REQUIRE(c.wait([&] { return c.current().isr.size() == 3; }));
  CHECK(c.metrics("n1").isr_expands == 1);
  REQUIRE(c.wait([&] { return applied_everywhere(c, 30); }));
  CHECK(image(c, "n3") == image(c, "n1"));
}

TEST_CASE(
    "replication actors: a write to a node that doesn't lead the shard answers not_leader; "
    "bad and stale assignments change nothing",
    "[replication][actor]") {
  replication_cluster c;
  auto not_leader = replicate_code(replicate_error::not_leader);
  // Before any assignment.
  CHECK(writes(c, "n1", {c.payload("n1", 1, "x")}).codes() == std::vector{not_leader});

  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  CHECK(writes(c, "n2", {c.payload("n2", 1, "x")}).codes() == std::vector{not_leader});

  // Not JSON of a valid assignment, a shard the journal doesn't have, an older revision that
  // would make n2 lead: refused or ignored.
  caf::anon_send(c.actor("n2"), detail::assign_atom::value, c.shard, std::string("{\"epoch\":"),
                 std::int64_t{1000});
  caf::anon_send(c.actor("n2"), detail::assign_atom::value, shard_t{65535},
                 cluster::encode({1, "n2", c.nodes, c.nodes}), std::int64_t{1000});
  caf::anon_send(c.actor("n2"), detail::assign_atom::value, c.shard,
                 cluster::encode({5, "n2", c.nodes, c.nodes}), std::int64_t{1});
  REQUIRE(c.wait([&] { return c.metrics("n2").invalid_assignments == 2; }));
  CHECK(writes(c, "n2", {c.payload("n2", 1, "x")}).codes() == std::vector{not_leader});
  CHECK(count(writes(c, "n1", {c.payload("n1", 1, "y")}).codes(), detail::replicate_acked) == 1);

  // A message for a shard no replica here holds is counted and dropped.
  auto before = c.metrics("n3").unknown_shard.load();
  auto other = static_cast<shard_t>((c.shard + 1) % c.journal("n3").shards());
  caf::anon_send(c.actor("n3"), detail::peer_msg_atom::value, std::string("n1"),
                 cluster::encode(cluster::append_answer{other, {}, 1, 0}));
  caf::anon_send(c.actor("n3"), detail::peer_msg_atom::value, std::string("n1"), std::string());
  REQUIRE(c.wait([&] { return c.metrics("n3").unknown_shard == before + 2; }));
}

TEST_CASE(
    "replication actors: a leader whose lease doesn't surely hold acks nothing, steps "
    "down, and leads again once it holds",
    "[replication][actor]") {
  replication_cluster c({2, 5s});  // n3 stays in the isr while cut
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  REQUIRE(count(writes(c, "n1", payloads(c, "n1", 1, 5, "a")).codes(), detail::replicate_acked) ==
          5);

  c.set_lease("n1", false);
  CHECK(writes(c, "n1", {c.payload("n1", 6, "x")}).codes() ==
        std::vector{replicate_code(replicate_error::not_leader)});
  REQUIRE(c.wait([&] { return !c.is_serving("n1"); }));
  CHECK(c.metrics("n1").lease_step_downs == 1);

  // Writes pending when the lease lapses (n3 cut off holds their acks) fail, none acked.
  c.set_lease("n1", true);
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  c.cut("n3");
  writes held(c, "n1", payloads(c, "n1", 6, 10, "held"));
  CHECK(held.codes_within(100ms).empty());
  c.set_lease("n1", false);
  auto codes = held.codes();
  REQUIRE(codes.size() == 5);
  CHECK(count(codes, replicate_code(replicate_error::deposed)) == 5);
  CHECK(c.metrics("n1").writes_acked == 5);
  REQUIRE(c.wait([&] { return !c.is_serving("n1"); }));

  c.heal("n3");
  c.set_lease("n1", true);
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  CHECK(count(writes(c, "n1", payloads(c, "n1", 11, 15, "b")).codes(), detail::replicate_acked) ==
        5);
  CHECK(c.current().epoch == 1);
}

TEST_CASE("replication actors: acks that arrive after the lease lapsed are not given",
          "[replication][actor]") {
  replication_cluster c({2, 5s});  // n3 stays in the isr while cut
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  c.cut("n3");
  writes held(c, "n1", payloads(c, "n1", 1, 5, "held"));
  CHECK(held.codes_within(100ms).empty());
  // The append resent to n3 is the last thing n1 does with its lease: n3's answer, which would
  // complete the writes, finds it lapsed (or the tick does first).
  c.lapse_after_send("n1", "n3");
  c.heal("n3");
  auto codes = held.codes();
  REQUIRE(codes.size() == 5);
  CHECK(count(codes, replicate_code(replicate_error::deposed)) == 5);
  CHECK(c.metrics("n1").writes_acked == 0);
  REQUIRE(c.wait([&] { return !c.is_serving("n1"); }));
  CHECK(c.metrics("n1").lease_step_downs == 1);
}

TEST_CASE(
    "replication actors: past 4,096 writes of a shard waiting for their ack, more are "
    "refused at once",
    "[replication][actor]") {
  replication_cluster c({2, 5s});
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  c.cut("n2");
  c.cut("n3");  // nothing is acked
  auto n = detail::max_pending_replicates + 100;
  writes held(c, "n1", payloads(c, "n1", 1, n, "w"));
  auto codes = held.codes_within(500ms);
  CHECK(codes.size() == 100);
  CHECK(count(codes, replicate_code(replicate_error::not_enough_in_sync)) == 100);
  CHECK(c.metrics("n1").writes_refused_full == 100);
}

TEST_CASE(
    "replication actors: a restarted leader reads its epochs back and leads only the "
    "controller's next epoch, not its own again",
    "[replication][actor]") {
  replication_cluster c;
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  REQUIRE(count(writes(c, "n1", payloads(c, "n1", 1, 10, "a")).codes(), detail::replicate_acked) ==
          10);
  c.kill("n1");
  c.start("n1");
  c.deliver("n1");  // still epoch 1, led by n1: its log holds epoch 1, which it may not lead
  CHECK(writes(c, "n1", {c.payload("n1", 11, "x")}).codes() ==
        std::vector{replicate_code(replicate_error::not_leader)});
  CHECK(c.status("n1").find("\"epoch\":1,\"leader\":\"n1\",\"leading\":false") !=
        std::string::npos);

  c.assign({2, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  CHECK(count(writes(c, "n1", payloads(c, "n1", 11, 20, "b")).codes(), detail::replicate_acked) ==
        10);
  REQUIRE(c.wait([&] { return applied_everywhere(c, 20); }));
  auto leader = image(c, "n1");
  CHECK(leader.entries[9].first == 1);
  CHECK(leader.entries[10].first == 2);
  CHECK(image(c, "n2") == leader);
  CHECK(image(c, "n3") == leader);
}

TEST_CASE(
    "replication actors: a follower dropped from the replicas and added back while writes "
    "stream catches up to the same log",
    "[replication][actor]") {
  replication_cluster c;
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  writes stream(c, "n1", payloads(c, "n1", 1, 300, "w"));
  // The controller removes n3 and adds it back (out of sync) a few times, at the same epoch:
  // n3's replica goes and is made again from its log, whatever its journal is still writing.
  for (int i = 0; i < 5; ++i) {
    c.assign({1, "n1", {"n1", "n2"}, {"n1", "n2"}});
    c.assign({1, "n1", c.nodes, {"n1", "n2"}});
  }
  auto codes = stream.codes();
  CHECK(count(codes, detail::replicate_acked) == 300);
  REQUIRE(c.wait([&] { return c.current().isr.size() == 3; }));
  REQUIRE(c.wait([&] { return applied_everywhere(c, 300); }));
  CHECK(image(c, "n3") == image(c, "n1"));
  CHECK(image(c, "n2") == image(c, "n1"));
}

TEST_CASE(
    "replication actors: a leader whose disk fails an apply steps down and asks, through its "
    "resign hook, for another leader",
    "[replication][actor]") {
  replication_cluster c;
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  auto codes = writes(c, "n1", payloads(c, "n1", 1, 5, "e")).codes();
  REQUIRE(count(codes, detail::replicate_acked) == 5);
  CHECK(c.resigns("n1").empty());
  // An entry the journal refuses to apply (not one a room's write_set makes) fails the leader's
  // apply once the isr holds it: its disk "failed".
  auto failed = writes(c, "n1", {"not records"}).codes();
  REQUIRE(failed.size() == 1);
  CHECK(failed[0] == replicate_code(replicate_error::storage));
  REQUIRE(c.wait([&] { return !c.resigns("n1").empty(); }));
  using resign = std::pair<shard_t, cluster::epoch_t>;
  CHECK(c.resigns("n1").front() == resign{c.shard, 1});
  CHECK(c.metrics("n1").storage_resigns == 1);
  CHECK_FALSE(c.is_serving("n1"));
  // It does not lead epoch 1 again, and asks again (its first request may have lost its
  // compare-and-swap) while the assignment still names it.
  REQUIRE(c.wait([&] { return c.resigns("n1").size() >= 2; }));
  for (auto& r : c.resigns("n1")) CHECK(r == resign{c.shard, 1});
  CHECK(c.metrics("n1").storage_resigns == 1);
  CHECK(count(writes(c, "n1", payloads(c, "n1", 6, 6, "e")).codes(),
              replicate_code(replicate_error::not_leader)) == 1);
  // The followers never led: they asked nothing.
  CHECK(c.resigns("n2").empty());
  CHECK(c.resigns("n3").empty());
}

TEST_CASE(
    "replication actors: retention keeps every replica's log bounded, and a follower cut off "
    "within it catches up from the log",
    "[replication][actor][retention]") {
  // 200 entries kept; trimmed once the log is a sixteenth past that.
  replication_cluster c({2, 300ms}, {200, std::uint64_t{64} << 20});
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  for (seq_t from = 1; from <= 2000; from += 250) {
    auto codes = writes(c, "n1", payloads(c, "n1", from, from + 249, "e")).codes();
    REQUIRE(count(codes, detail::replicate_acked) == 250);
  }
  REQUIRE(c.wait([&] { return applied_everywhere(c, 2000); }));
  auto bounded = [&] {
    for (auto& n : c.nodes) {
      auto size = c.journal(n).replica_log_size(c.shard);
      if (!size.ok() || size->entries > 200 + 200 / 16) return false;
    }
    return true;
  };
  REQUIRE(c.wait(bounded));
  for (auto& n : c.nodes) {
    INFO(n);
    auto at = c.journal(n).replica_position(c.shard);
    CHECK(at->log_start > 1'700);
    CHECK(at->log_end == 2000);
    // The records are whole: only the log's copy of them went.
    CHECK(c.journal(n).events_after(c.room, 0, 10'000)->size() == 2000);
    CHECK(c.metrics(n).entries_trimmed.load() >= 1'700);
    CHECK(c.wait([&] { return c.metrics(n).log_entries.load() <= 212; }));
  }

  // n3 misses 100 writes (it leaves the isr), fewer than the log keeps: on its return the leader
  // sends them from the log and n3 rejoins the isr.
  c.cut("n3");
  auto codes = writes(c, "n1", payloads(c, "n1", 2001, 2100, "f")).codes();
  REQUIRE(count(codes, detail::replicate_acked) == 100);
  REQUIRE(c.current().isr.size() == 2);
  c.heal("n3");
  c.deliver("n3");
  REQUIRE(c.wait([&] { return applied_everywhere(c, 2100) && c.current().isr.size() == 3; }));
  for (auto& n : c.nodes) {
    INFO(n);
    auto events = c.journal(n).events_after(c.room, 1990, 1'000);
    REQUIRE(events->size() == 110);
    CHECK(events->back() == "f2100");
  }
  CHECK(c.metrics("n1").followers_behind_log_start.load() == 0);
}

TEST_CASE(
    "replication actors: a follower cut off while the leader writes past its retention rejoins "
    "from a snapshot of the shard, and every replica's records are equal",
    "[replication][actor][retention][snapshot]") {
  replication_cluster c({2, 300ms}, {100, std::uint64_t{64} << 20});
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  REQUIRE(count(writes(c, "n1", payloads(c, "n1", 1, 50, "e")).codes(), detail::replicate_acked) ==
          50);
  c.cut("n3");
  // Out of the isr, n3 no longer holds retention back: the leader's log moves past it.
  for (seq_t from = 51; from <= 650; from += 200)
    REQUIRE(count(writes(c, "n1", payloads(c, "n1", from, from + 199, "e")).codes(),
                  detail::replicate_acked) == 200);
  REQUIRE(c.wait([&] { return c.journal("n1").replica_position(c.shard)->log_start > 51; }));
  CHECK(c.journal("n3").replica_position(c.shard)->log_end == 50);
  CHECK(c.current().isr == std::vector<std::string>{"n1", "n2"});

  c.heal("n3");
  c.deliver("n3");
  REQUIRE(c.wait([&] { return applied_everywhere(c, 650) && c.current().isr.size() == 3; }));
  CHECK(c.metrics("n1").snapshots_sent.load() == 1);
  CHECK(c.metrics("n3").snapshots_installed.load() == 1);
  CHECK(c.metrics("n1").followers_behind_log_start.load() <= 1);  // the gauge lags a second
  // n3 took the leader's log with the snapshot: its start, and the history of it.
  CHECK(c.journal("n3").replica_position(c.shard)->log_start > 51);
  CHECK(c.journal("n3").replica_history(c.shard)->size() == 1);

  // The shard goes on with three in sync.
  REQUIRE(count(writes(c, "n1", payloads(c, "n1", 651, 660, "g")).codes(),
                detail::replicate_acked) == 10);
  REQUIRE(c.wait([&] { return applied_everywhere(c, 660); }));
  auto records = [&](const std::string& n) {
    auto& j = c.journal(n);
    return std::tuple{*j.events_after(c.room, 0, 10'000), *j.room_meta(c.room),
                      j.replica_position(c.shard)->log_end};
  };
  auto leader = records("n1");
  CHECK(std::get<0>(leader).size() == 660);
  CHECK(std::get<0>(leader).back() == "g660");
  CHECK(records("n2") == leader);
  CHECK(records("n3") == leader);
}

TEST_CASE(
    "replication actors: a follower of an epoch its restarted leader's trimmed log no longer "
    "holds catches up from a snapshot after failovers",
    "[replication][actor][retention][snapshot]") {
  // n3 has only epoch 1, with 5 entries never acked; n2 leads epoch 2, trims epoch 1 away,
  // restarts (its history read back without epoch 1) and leads epoch 3: n3 must reconcile,
  // its log and n2's share no epoch, and n2's doesn't start at 1, so it asks for a snapshot.
  // A minute's max lag: a follower leaves the isr only when the controller's assignment says.
  replication_cluster c({2, 60s}, {100, std::uint64_t{64} << 20});
  c.assign({1, "n1", c.nodes, c.nodes});
  REQUIRE(c.wait([&] { return c.is_serving("n1"); }));
  REQUIRE(count(writes(c, "n1", payloads(c, "n1", 1, 40, "a")).codes(), detail::replicate_acked) ==
          40);
  REQUIRE(c.wait([&] { return applied_everywhere(c, 40); }));
  c.cut("n2");  // n1's next writes reach n3 only: never acked
  writes unacked(c, "n1", payloads(c, "n1", 41, 45, "x"));
  REQUIRE(c.wait([&] { return c.journal("n3").replica_position(c.shard)->log_end == 45; }));
  c.cut("n3");
  c.heal("n2");
  c.assign({2, "n2", c.nodes, {"n1", "n2"}});
  REQUIRE(c.wait([&] { return c.is_serving("n2"); }));
  CHECK(count(unacked.codes(), detail::replicate_acked) == 0);
  CHECK(c.journal("n3").replica_position(c.shard)->applied == 40);
  for (seq_t from = 41; from <= 440; from += 200)
    REQUIRE(count(writes(c, "n2", payloads(c, "n2", from, from + 199, "b")).codes(),
                  detail::replicate_acked) == 200);
  REQUIRE(c.wait([&] { return c.journal("n2").replica_position(c.shard)->log_start > 41; }));
  c.kill("n2");
  c.start("n2");
  c.assign({3, "n2", c.nodes, {"n1", "n2"}});
  REQUIRE(c.wait([&] { return c.is_serving("n2"); }));
  auto history = c.journal("n2").replica_history(c.shard);
  REQUIRE(history.ok());
  CHECK(history->front().epoch == 2);  // epoch 1 was trimmed away
  REQUIRE(count(writes(c, "n2", payloads(c, "n2", 441, 450, "c")).codes(),
                detail::replicate_acked) == 10);

  c.heal("n3");
  c.deliver("n3");
  REQUIRE(c.wait([&] { return applied_everywhere(c, 450) && c.current().isr.size() == 3; }));
  CHECK(c.metrics("n3").snapshots_installed.load() == 1);
  auto records = [&](const std::string& n) {
    auto& j = c.journal(n);
    return std::tuple{*j.events_after(c.room, 0, 10'000), *j.room_meta(c.room),
                      j.replica_position(c.shard)->log_end};
  };
  auto leader = records("n2");
  CHECK(std::get<0>(leader).size() == 450);
  CHECK(records("n1") == leader);
  CHECK(records("n3") == leader);
}
