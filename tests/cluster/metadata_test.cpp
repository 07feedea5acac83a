// The cluster's metadata in a real etcd (Debian's etcd-server, started per test on loopback): a
// node's lease session and its fencing by its own clock, the controller's election and term, and
// the shard assignments' compare-and-swap.

#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cluster/assignment_store.hpp"
#include "cluster/election.hpp"
#include "cluster/etcd_client.hpp"
#include "cluster/lease_session.hpp"
#include "tests/cluster/cuttable_proxy.hpp"
#include "tests/cluster/etcd_process.hpp"
#include "tests/cluster/etcd_test_support.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa::cluster;
using kaiwa::test::at;
using kaiwa::test::cuttable_proxy;
using kaiwa::test::etcd_process;
using kaiwa::test::have_etcd;
using kaiwa::test::netns_host;
using kaiwa::test::temp_dir;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto call_timeout = 500ms;

/// Records when something happened, for the test thread to wait on.
class moment {
 public:
  void mark() {
    std::lock_guard lock(mtx_);
    if (!at_) at_ = steady::now();
    cv_.notify_all();
  }
  /// Waits at most `d`; when it happened, nullopt if it didn't.
  std::optional<steady::time_point> wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mtx_);
    cv_.wait_for(lock, d, [&] { return at_.has_value(); });
    return at_;
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<steady::time_point> at_;
};

}  // namespace

TEST_CASE("a lease session keeps its key alive and revokes it on close", "[etcd][metadata]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);

  moment lost;
  // A TTL of 4 s, renewed each second: three renewals in a row may fail on a loaded machine
  // (a starved etcd) before the lease is at risk.
  auto s = lease_session::open(client, {4s, 4}, [&] { lost.mark(); });
  REQUIRE(s.ok());
  auto& session = **s;
  CHECK(session.granted_ttl() >= 4s);
  REQUIRE(client.put("m/n1", "addr", session.id()).ok());

  // More than a TTL passes without a loss: the session renewed the lease, and says it holds.
  CHECK_FALSE(lost.wait(session.granted_ttl() + 1s));
  CHECK(session.valid());
  CHECK(session.valid_until() > steady::now());
  CHECK(client.get("m/n1")->kvs.size() == 1);

  session.close();
  CHECK_FALSE(session.valid());
  CHECK(client.get("m/n1")->kvs.empty());  // revoked: gone now, not at expiry
  CHECK_FALSE(lost.wait(0ms));             // a close is not a loss
  CHECK(lease_session::open(client, {0s, 4}, {}).err().code == errc::invalid);
}

TEST_CASE("a node cut off from etcd fences itself before etcd expires its lease",
          "[etcd][metadata]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client direct({at(etcd.client_port())}, call_timeout);
  cuttable_proxy proxy(etcd.client_port());
  etcd_client through({at(proxy.port())}, call_timeout);

  moment lost;
  auto s = lease_session::open(through, {}, [&] { lost.mark(); });
  REQUIRE(s.ok());
  REQUIRE(direct.put("m/n1", "addr", (*s)->id()).ok());

  moment deleted;
  auto w = direct.watch("m/", 0, [&](const watch_update& u) {
    for (auto& e : u.events)
      if (e.what == watch_event::type::del) deleted.mark();
  });

  auto cut_at = steady::now();
  proxy.cut();
  auto fenced = lost.wait(10s);
  auto expired = deleted.wait(10s);
  REQUIRE(fenced);
  REQUIRE(expired);
  // The node stopped acting on its lease before etcd could give its roles to another node, and
  // within a TTL of the cut.
  auto deadline = (*s)->valid_until();
  CHECK(deadline < *expired);
  CHECK(deadline - cut_at <= (*s)->granted_ttl());
  CHECK(*fenced - deadline <= call_timeout + 1s);  // a renewal's timeout, and scheduling
  CHECK_FALSE((*s)->valid());
  CHECK(direct.get("m/n1")->kvs.empty());
}

TEST_CASE("a node partitioned from etcd (packets dropped) fences itself before its lease expires",
          "[etcd][metadata][netns]") {
  if (!have_etcd()) return;
  if (!netns_host::available()) {
    WARN("not root or no network namespaces here: skipping the partition test");
    return;
  }
  netns_host node_host;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd", node_host.outside_address());
  etcd_client direct({at(etcd.client_port())}, call_timeout);

  // The node's client and its session's renewal thread live in the namespace: they reach etcd
  // over the link only.
  std::unique_ptr<etcd_client> node_client;
  std::unique_ptr<lease_session> session;
  moment lost;
  std::thread([&] {
    node_host.enter_from_this_thread();
    node_client = std::make_unique<etcd_client>(
        std::vector<endpoint>{{node_host.outside_address(), etcd.client_port()}}, call_timeout);
    auto s = lease_session::open(*node_client, {}, [&] { lost.mark(); });
    if (s.ok()) session = std::move(*s);
  }).join();
  REQUIRE(session);
  REQUIRE(direct.put("m/n1", "addr", session->id()).ok());

  moment deleted;
  auto w = direct.watch("m/", 0, [&](const watch_update& u) {
    for (auto& e : u.events)
      if (e.what == watch_event::type::del) deleted.mark();
  });

  auto cut_at = steady::now();
  node_host.cut();
  auto fenced = lost.wait(10s);
  auto expired = deleted.wait(10s);
  node_host.heal();
  REQUIRE(fenced);
  REQUIRE(expired);
  // Renewals time out now (no reset comes back), yet the node's deadline passes before etcd
  // expires the lease; the loss is reported within a renewal's timeout of the deadline.
  auto ms = [&](steady::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t - cut_at).count();
  };
  auto deadline = session->valid_until();
  INFO("after the cut: deadline " << ms(deadline) << " ms, reported " << ms(*fenced)
                                  << " ms, expired " << ms(*expired) << " ms");
  CHECK(deadline < *expired);
  CHECK(deadline - cut_at <= session->granted_ttl());
  CHECK(*fenced - deadline <= call_timeout + 1s);  // a renewal's timeout, and scheduling
  CHECK_FALSE(session->valid());
}

TEST_CASE("one controller at a time; the next has a larger term and fences the last",
          "[etcd][metadata]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);
  const std::string key = "/kaiwa/c/controller";

  auto l1 = lease_session::open(client, {}, {});
  auto l2 = lease_session::open(client, {}, {});
  REQUIRE(l1.ok());
  REQUIRE(l2.ok());
  election e1(client, key, "n1"), e2(client, key, "n2");

  CHECK_FALSE(*e1.current());
  auto first = e1.campaign((*l1)->id());
  REQUIRE(first.ok());
  CHECK(first->node == "n1");
  CHECK(e2.campaign((*l2)->id())->node == "n1");                // held: n2 sees who holds it
  CHECK(*e1.campaign((*l1)->id()) == *first);                   // n1 again: the same term
  CHECK(e1.campaign((*l2)->id()).err().code == errc::invalid);  // n1's other session: not it
  CHECK(**e2.current() == *first);

  // A write fenced by n1's term goes through while n1 holds the key.
  auto fenced_put = [&](std::int64_t term, const std::string& v) {
    auto r = client.txn({e1.fence(term)}, {txn_op::put("/kaiwa/c/x", v)}, {});
    REQUIRE(r.ok());
    return r->succeeded;
  };
  CHECK(fenced_put(first->term, "by n1"));

  // n1's lease ends (the node stopped): n2 takes over with a larger term, and n1's fenced
  // writes fail from then on, whatever n1 believes.
  (*l1)->close();
  CHECK_FALSE(*e1.current());
  auto second = e2.campaign((*l2)->id());
  REQUIRE(second.ok());
  CHECK(second->node == "n2");
  CHECK(second->term > first->term);
  CHECK_FALSE(fenced_put(first->term, "by the deposed n1"));
  CHECK(fenced_put(second->term, "by n2"));
  CHECK(client.get("/kaiwa/c/x")->kvs.at(0).value == "by n2");

  CHECK_FALSE(*e1.resign(first->term));  // not n1's to give up
  CHECK(*e2.resign(second->term));
  CHECK_FALSE(*e2.current());

  // What the key holds is checked: garbage is an error, not a controller.
  REQUIRE(client.put(key, "not a node id!").ok());
  CHECK(e1.current().err().code == errc::protocol);
}

TEST_CASE("assignments change only by compare-and-swap under the writer's fence",
          "[etcd][metadata]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);
  assignment_store store(client, "/kaiwa/c/", 1024);
  auto lease = lease_session::open(client, {}, {});
  REQUIRE(lease.ok());
  election controller(client, "/kaiwa/c/controller", "n1");
  auto term = controller.campaign((*lease)->id());
  REQUIRE(term.ok());
  std::vector<compare> fence{controller.fence(term->term)};

  auto empty = store.load();
  REQUIRE(empty.ok());
  CHECK(empty->shards.empty());
  CHECK(empty->revision > 0);

  shard_assignment a{1, "n1", {"n1", "n2", "n3"}, {"n1", "n2", "n3"}};
  auto created = store.update(7, a, 0, fence);
  REQUIRE(created.ok());
  REQUIRE(*created);
  CHECK(client.get(store.key_of(7))->kvs.at(0).key == "/kaiwa/c/shards/00007");
  CHECK_FALSE(*store.update(7, a, 0, fence));  // exists now: "only if absent" fails

  // Two writers from the same read: the first wins, the second must re-read.
  auto shrunk = a;
  shrunk.isr = {"n1", "n2"};
  auto failover = a;
  failover.epoch = 2;
  failover.leader = "n2";
  auto r1 = store.update(7, shrunk, **created, fence);
  REQUIRE(r1.ok());
  REQUIRE(*r1);
  CHECK_FALSE(*store.update(7, failover, **created, fence));

  auto t = store.load();
  REQUIRE(t.ok());
  REQUIRE(t->shards.size() == 1);
  CHECK(t->shards.at(7).assignment == shrunk);
  CHECK(t->shards.at(7).mod_revision == **r1);

  // A deposed controller's write fails even on the right revision.
  REQUIRE(*controller.resign(term->term));
  CHECK_FALSE(*store.update(7, failover, **r1, fence));
  CHECK(store.load()->shards.at(7).assignment == shrunk);

  // Invalid assignments are never written, shards past the count refused.
  auto bad = shrunk;
  bad.leader = "n3";  // not in sync
  CHECK(store.update(7, bad, **r1, {}).err().code == errc::invalid);
  CHECK(store.update(1024, shrunk, 0, {}).err().code == errc::invalid);

  // Nodes follow by watch: each event is one shard's new assignment (or its deletion).
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<watch_event> seen;
  auto w = client.watch(store.shards_prefix(), t->revision + 1, [&](const watch_update& u) {
    std::lock_guard lock(mtx);
    seen.insert(seen.end(), u.events.begin(), u.events.end());
    cv.notify_all();
  });
  auto next = shrunk;
  next.epoch = 2;
  next.leader = "n2";
  REQUIRE(*store.update(7, next, **r1, {}));
  REQUIRE(client.del(store.key_of(7)).ok());
  {
    std::unique_lock lock(mtx);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return seen.size() >= 2; }));
    auto put = store.parse_event(seen[0]);
    REQUIRE(put.ok());
    CHECK(put->shard == 7);
    REQUIRE(put->now);
    CHECK(put->now->assignment == next);
    auto del = store.parse_event(seen[1]);
    INFO(seen[1].kv.key);
    REQUIRE(del.ok());
    CHECK_FALSE(del->now);
  }

  // A batch is written whole or not at all: one stale revision fails every shard of it.
  auto b1 = a;
  b1.epoch = 5;
  auto batch = store.update_all({{1, a, 0}, {2, a, 0}}, {});
  REQUIRE(batch.ok());
  REQUIRE(*batch);
  CHECK_FALSE(*store.update_all({{1, b1, **batch}, {2, b1, 0}, {3, a, 0}}, {}));
  auto whole = store.load();
  REQUIRE(whole.ok());
  CHECK(whole->shards.at(1).assignment == a);
  CHECK(whole->shards.at(2).mod_revision == **batch);
  CHECK_FALSE(whole->shards.contains(3));
  CHECK(**store.update_all({{1, b1, **batch}, {2, b1, **batch}}, {}) > **batch);
  CHECK(store.update_all({{4, a, 0}, {4, a, 0}}, {}).err().code == errc::invalid);
  CHECK(store.update_all({}, {}).err().code == errc::invalid);
  std::vector<assignment_write> too_many;
  for (kaiwa::shard_t s = 0; s <= assignment_store::max_batch; ++s) too_many.push_back({s, a, 0});
  CHECK(store.update_all(too_many, {}).err().code == errc::invalid);

  // Damaged metadata stops a load rather than being guessed at.
  REQUIRE(client.put(store.key_of(3), "{\"epoch\":1}").ok());
  CHECK(store.load().err().code == errc::protocol);
  REQUIRE(client.del(store.key_of(3)).ok());
  REQUIRE(client.put("/kaiwa/c/shards/x", "{}").ok());
  CHECK(store.load().err().code == errc::protocol);
  REQUIRE(client.put("/kaiwa/c/shards/x", "{}").ok());
  CHECK(store.parse_event({watch_event::type::put, {"/kaiwa/c/shards/01024", "{}"}}).err().code ==
        errc::protocol);
}
