// The metadata agent against a real etcd (started per test on loopback): three agents in one
// process, each reaching etcd through a proxy the test can cut (a killed or partitioned node:
// its renewals stop, nothing is revoked), checked through what their events deliver.

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "cluster/cluster_marker.hpp"
#include "cluster/member_info.hpp"
#include "cluster/metadata_agent.hpp"
#include "cluster/replica_planner.hpp"
#include "tests/cluster/cuttable_proxy.hpp"
#include "tests/cluster/etcd_process.hpp"
#include "tests/cluster/etcd_test_support.hpp"
#include "tests/support/loopback.hpp"
#include "tests/support/netns.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa::cluster;
using kaiwa::shard_t;
using kaiwa::test::at;
using kaiwa::test::cuttable_proxy;
using kaiwa::test::etcd_process;
using kaiwa::test::have_etcd;
using kaiwa::test::temp_dir;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t shard_count = 16;
const std::string prefix = "/kaiwa/t/";

long long ms_since(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count();
}

/// What one agent's events said, for the test thread to wait on.
class recorder {
 public:
  metadata_events events() {
    metadata_events ev{
        [this](std::map<std::string, member_info> m) { update([&] { members_ = std::move(m); }); },
        [this](shard_t s, versioned_assignment a) {
          update([&] {
            auto& cur = shards_[s];
            // Events come in revision order: a delivery never goes back.
            if (a.mod_revision < cur.mod_revision) went_back_ = true;
            cur = std::move(a);
            ++deliveries_;
          });
        },
        [this](std::optional<controller_term> c) { update([&] { controller_ = std::move(c); }); },
        [this] { update([&] { ++lease_losses_; }); },
    };
    ev.drained = [this](std::chrono::milliseconds grace) {
      update([&] { drained_.push_back(grace); });
    };
    return ev;
  }

  /// Waits at most `d` until `pred(*this)` holds (under the recorder's lock).
  template <class Pred>
  bool wait(std::chrono::milliseconds d, Pred pred) {
    std::unique_lock lock(mtx_);
    return cv_.wait_for(lock, d, [&] { return pred(*this); });
  }

  std::map<shard_t, versioned_assignment> shards() {
    std::lock_guard lock(mtx_);
    return shards_;
  }
  std::optional<controller_term> controller() {
    std::lock_guard lock(mtx_);
    return controller_;
  }
  bool went_back() {
    std::lock_guard lock(mtx_);
    return went_back_;
  }

  // Read under the lock, inside wait's predicate.
  std::map<std::string, member_info> members_;
  std::map<shard_t, versioned_assignment> shards_;
  std::optional<controller_term> controller_;
  int lease_losses_ = 0;
  bool went_back_ = false;
  std::size_t deliveries_ = 0;  // assignments delivered
  std::vector<std::chrono::milliseconds> drained_;

 private:
  template <class F>
  void update(F f) {
    {
      std::lock_guard lock(mtx_);
      f();
    }
    cv_.notify_all();
  }

  std::mutex mtx_;
  std::condition_variable cv_;
};

/// One node: its agent, reaching etcd through its own proxy.
struct node {
  node(std::string id, std::uint16_t etcd_port, std::size_t rf = 3,
       std::uint32_t shards = shard_count)
      : proxy(etcd_port) {
    cfg.etcd = {at(proxy.port())};
    cfg.prefix = prefix;
    cfg.node = std::move(id);
    cfg.cluster_address = "127.0.0.1:1";
    cfg.public_address = "127.0.0.1:2";
    cfg.shards = shards;
    cfg.replication_factor = rf;
    cfg.call_timeout = 500ms;
  }
  void start() {
    auto a = metadata_agent::start(cfg, rec.events());
    INFO((a.ok() ? "" : a.err().message));
    REQUIRE(a.ok());
    agent = std::move(*a);
  }

  metadata_config cfg;
  recorder rec;
  cuttable_proxy proxy;
  std::unique_ptr<metadata_agent> agent;
};

/// Three agents started one after the other (n1 first, so n1 campaigns first and controls),
/// each having seen the 16 assignments placed once all three registered.
struct three_nodes {
  /// `data_dirs`: where each node records its cluster id (<dir>/<node>.cluster-id); empty: none.
  explicit three_nodes(std::uint16_t etcd_port, const std::string& data_dirs = "") {
    for (auto id : {"n1", "n2", "n3"}) {
      nodes.push_back(std::make_unique<node>(id, etcd_port));
      if (!data_dirs.empty())
        nodes.back()->cfg.cluster_id_file = data_dirs + "/" + id + ".cluster-id";
    }
    for (auto& n : nodes) n->start();
    for (auto& n : nodes)
      REQUIRE(n->rec.wait(10s, [](recorder& r) {
        return r.shards_.size() == shard_count && r.members_.size() == 3 && r.controller_;
      }));
  }
  node& by_id(const std::string& id) {
    for (auto& n : nodes)
      if (n->cfg.node == id) return *n;
    FAIL("no node " << id);
    return *nodes.front();
  }

  std::vector<std::unique_ptr<node>> nodes;
};

/// The shards `dead` led in `before`, each now led by a node of its old isr other than `dead`, at
/// epoch + 1, without `dead` in the isr.
bool failed_over(const std::map<shard_t, versioned_assignment>& before,
                 const std::map<shard_t, versioned_assignment>& now, const std::string& dead) {
  for (auto& [s, b] : before) {
    if (b.assignment.leader != dead) continue;
    auto it = now.find(s);
    if (it == now.end()) return false;
    auto& a = it->second.assignment;
    if (a.leader == dead || !b.assignment.in_sync(a.leader) || a.epoch != b.assignment.epoch + 1 ||
        a.in_sync(dead))
      return false;
  }
  return true;
}

std::size_t led_by(const std::map<shard_t, versioned_assignment>& shards, const std::string& n) {
  std::size_t k = 0;
  for (auto& [s, a] : shards) k += a.assignment.leader == n;
  return k;
}

/// `agent.propose_isr`, waited for: the new mod revision, nullopt on a conflict.
std::optional<std::int64_t> propose(metadata_agent& agent, shard_t shard,
                                    const shard_assignment& next, std::int64_t expected) {
  struct answer {
    std::mutex mtx;
    std::condition_variable cv;
    bool done = false;
    std::optional<std::int64_t> rev;
  };
  auto ans = std::make_shared<answer>();
  agent.propose_isr(shard, next, expected, [ans](std::optional<std::int64_t> r) {
    std::lock_guard lock(ans->mtx);
    ans->done = true;
    ans->rev = r;
    ans->cv.notify_all();
  });
  std::unique_lock lock(ans->mtx);
  REQUIRE(ans->cv.wait_for(lock, 5s, [&] { return ans->done; }));
  return ans->rev;
}

}  // namespace

TEST_CASE("member values are read strictly", "[etcd][agent]") {
  member_info m{"n1", "10.0.0.1:7000", "10.0.0.1:8080", 0};
  auto back = decode_member(encode(m));
  REQUIRE(back);
  CHECK(back->id == "n1");
  CHECK(back->cluster_address == "10.0.0.1:7000");
  CHECK(back->public_address == "10.0.0.1:8080");
  CHECK(decode_member(R"({"id":"n1","cluster_address":"h:1","public_address":""})"));
  CHECK_FALSE(decode_member(R"({"id":"n1","cluster_address":"h:1"})"));
  CHECK_FALSE(decode_member(R"({"id":"n1","id":"n2","cluster_address":"h:1"})"));
  CHECK_FALSE(decode_member(R"({"id":"n1","cluster_address":"h","public_address":""})"));
  CHECK_FALSE(decode_member(R"({"id":"n 1","cluster_address":"h:1","public_address":""})"));
  CHECK_FALSE(decode_member(R"({"id":"n1","cluster_address":"h:1","public_address":"","x":""})"));
  CHECK_FALSE(decode_member(R"({"id":1,"cluster_address":"h:1","public_address":""})"));
  CHECK_FALSE(decode_member("[]"));
  CHECK_FALSE(decode_member(std::string(2000, ' ') + "{}"));
  // Addresses are printable ASCII JSON needn't escape, 255 bytes at most: an encoded member
  // always fits what a decode accepts.
  CHECK_FALSE(decode_member(R"({"id":"n1","cluster_address":"h\"x:1","public_address":""})"));
  CHECK_FALSE(decode_member(R"({"id":"n1","cluster_address":"h\bx:1","public_address":""})"));
  CHECK_FALSE(decode_member(R"({"id":"n1","cluster_address":"h x:1","public_address":""})"));
  member_info longest{std::string(128, 'n'), std::string(249, 'h') + ":65535",
                      std::string(249, 'p') + ":65535", 0};
  REQUIRE(valid(longest));
  CHECK(decode_member(encode(longest)));
  longest.public_address.insert(0, "p");
  CHECK_FALSE(valid(longest));
  // The cluster its data is of: optional, a cluster id when present.
  auto id = new_cluster_id();
  member_info with{"n1", "h:1", "", 0, 0, id};
  auto read = decode_member(encode(with));
  REQUIRE(read);
  CHECK(read->cluster == id);
  CHECK(encode(m).find("cluster\"") == std::string::npos);
  CHECK_FALSE(
      decode_member(R"({"id":"n1","cluster_address":"h:1","public_address":"","cluster":"x"})"));
  CHECK_FALSE(
      decode_member(R"({"id":"n1","cluster_address":"h:1","public_address":"","cluster":1})"));
}

TEST_CASE("the cluster marker and the recorded id are read strictly", "[etcd][agent]") {
  auto id = new_cluster_id();
  CHECK(valid_cluster_id(id));
  CHECK(new_cluster_id() != id);
  auto back = decode_marker(encode(cluster_marker{id, true}));
  REQUIRE(back);
  CHECK(*back == cluster_marker{id, true});
  CHECK_FALSE(decode_marker(R"({"id":")" + id + R"("})"));
  CHECK_FALSE(decode_marker(R"({"id":")" + id + R"(","placed":1})"));
  CHECK_FALSE(decode_marker(R"({"id":")" + id + R"(","placed":true,"placed":true})"));
  CHECK_FALSE(decode_marker(R"({"id":")" + id + R"(","placed":true,"x":1})"));
  CHECK_FALSE(decode_marker(R"({"id":"ABC","placed":true})"));
  CHECK_FALSE(decode_marker(std::string(300, ' ') + "{}"));

  temp_dir dir;
  auto path = dir.str() + "/etcd-cluster-id";
  auto none = read_recorded_id(path);
  REQUIRE(none.ok());
  CHECK(none->empty());
  REQUIRE(record_id(path, id).ok());
  auto recorded = read_recorded_id(path);
  REQUIRE(recorded.ok());
  CHECK(*recorded == id);
  std::ofstream(path) << "not an id\n";
  CHECK_FALSE(read_recorded_id(path).ok());
  std::ofstream(path) << id << id << "\n";
  CHECK_FALSE(read_recorded_id(path).ok());
}

TEST_CASE(
    "three agents: one controller, placement once all registered, failover at once when a "
    "member is reported unreachable",
    "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, 500ms);
  // The default shard count: a dead node leads a third of them, all failed over at once.
  const auto shards = kaiwa::default_shards;
  assignment_store store(client, prefix, shards);
  node n1("n1", etcd.client_port(), 3, shards), n2("n2", etcd.client_port(), 3, shards),
      n3("n3", etcd.client_port(), 3, shards);
  n1.start();
  n2.start();
  REQUIRE(n2.rec.wait(10s, [](recorder& r) { return r.members_.size() == 2 && r.controller_; }));
  CHECK(n2.rec.controller()->node == "n1");  // n1 campaigned first
  // Two members of a replication factor of 3: nothing is placed.
  CHECK(store.load()->shards.empty());

  n3.start();
  for (auto* n : {&n1, &n2, &n3})
    REQUIRE(n->rec.wait(10s, [&](recorder& r) {
      return r.shards_.size() == shards && r.controller_ && r.controller_->node == "n1";
    }));
  // Exactly one controller, seen alike by every node, and the placement plan_initial makes.
  auto term = n1.rec.controller()->term;
  CHECK(n2.rec.controller()->term == term);
  CHECK(n3.rec.controller()->term == term);
  auto placed = n2.rec.shards();
  auto expected = plan_initial(shards, {"n1", "n2", "n3"}, 3);
  for (auto& [s, a] : expected) CHECK(placed.at(s).assignment == a);
  CHECK(n3.agent->lease_valid());
  auto status = n1.agent->status_json();
  INFO(status);
  CHECK(status.find("\"controller\":\"n1\"") != std::string::npos);
  CHECK(status.find("\"id\":\"n3\"") != std::string::npos);

  // n3 dies (its etcd connections cut: nothing renews or revokes its lease); the cluster layer
  // sees its connections close and tells the agents. The controller revokes n3's lease.
  REQUIRE(led_by(placed, "n3") > 0);
  auto killed = steady::now();
  n3.proxy.cut();
  n2.agent->member_unreachable("n3");  // not the controller: nothing
  n1.agent->member_unreachable("n3");
  REQUIRE(n2.rec.wait(2s, [&](recorder& r) { return failed_over(placed, r.shards_, "n3"); }));
  auto took = ms_since(killed);
  std::printf("[figure] failover after member_unreachable: %lld ms (%zu shards)\n", took,
              led_by(placed, "n3"));
  CHECK(took <= 2000);
  // Shards n3 did not lead keep their leader and epoch.
  auto after = n2.rec.shards();
  for (auto& [s, a] : placed)
    if (a.assignment.leader != "n3") CHECK(after.at(s).assignment.epoch == a.assignment.epoch);
  CHECK(n1.rec.wait(5s, [](recorder& r) { return r.members_.size() == 2; }));
  CHECK_FALSE(n1.rec.went_back());
  CHECK_FALSE(n2.rec.went_back());
}

TEST_CASE("three agents started at once agree on one controller, which places every shard once",
          "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, 500ms);
  std::vector<std::unique_ptr<node>> nodes;
  for (auto id : {"n1", "n2", "n3"})
    nodes.push_back(std::make_unique<node>(id, etcd.client_port()));
  std::vector<std::thread> starting;
  std::vector<std::optional<kaiwa::cluster::error>> failed(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i)
    starting.emplace_back([&, i] {
      auto a = metadata_agent::start(nodes[i]->cfg, nodes[i]->rec.events());
      if (a.ok())
        nodes[i]->agent = std::move(*a);
      else
        failed[i] = a.err();
    });
  for (auto& t : starting) t.join();
  for (auto& f : failed) REQUIRE_FALSE(f);
  for (auto& n : nodes)
    REQUIRE(n->rec.wait(10s, [](recorder& r) {
      return r.shards_.size() == shard_count && r.controller_ && r.members_.size() == 3;
    }));
  auto controller = *nodes[0]->rec.controller();
  for (auto& n : nodes) CHECK(*n->rec.controller() == controller);
  // Each shard's key was written once (version 1), the same on every node.
  auto keys = client.range(prefix + "shards/");
  REQUIRE(keys.ok());
  REQUIRE(keys->kvs.size() == shard_count);
  for (auto& kv : keys->kvs) CHECK(kv.version == 1);
  auto first = nodes[0]->rec.shards();
  for (auto& n : nodes)
    for (auto& [s, a] : n->rec.shards()) {
      CHECK(a.assignment == first.at(s).assignment);
      CHECK(a.mod_revision == first.at(s).mod_revision);
    }
}

TEST_CASE("a node that was cut off itself doesn't revoke the controller it reports unreachable",
          "[etcd][agent]") {
  // Cut off from the others and from etcd, a node sees every member's connection go silent;
  // its cluster layer reports them once its failure timeout passes, often after the partition
  // healed. Carried out, the report would revoke the healthy controller's lease.
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes c(etcd.client_port());
  auto first = *c.by_id("n2").rec.controller();
  REQUIRE(first.node == "n1");
  auto& n3 = c.by_id("n3");
  n3.proxy.cut();
  REQUIRE(n3.rec.wait(10s, [](recorder& r) { return r.lease_losses_ > 0; }));
  n3.agent->member_unreachable("n1");  // while its own lease is not valid: ignored
  n3.proxy.heal();
  auto deadline = steady::now() + 10s;
  while (!n3.agent->lease_valid() && steady::now() < deadline)
    std::this_thread::sleep_for(20ms);  // polling: the agent has no event for a new lease
  REQUIRE(n3.agent->lease_valid());
  n3.agent->member_unreachable("n1");  // its lease is new: within the failure timeout, ignored
  // A controller change would reach n2 within a watch's round trip; give it a second.
  CHECK_FALSE(c.by_id("n2").rec.wait(1s, [&](recorder& r) { return r.controller_ != first; }));
  CHECK(c.by_id("n1").agent->lease_valid());
}

TEST_CASE("without a report, a dead member's shards fail over once its lease expires",
          "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes c(etcd.client_port());
  auto placed = c.nodes[0]->rec.shards();

  auto killed = steady::now();
  c.by_id("n2").proxy.cut();
  auto limit =
      std::chrono::duration_cast<std::chrono::milliseconds>(c.nodes[0]->cfg.lease.ttl) + 1s;
  REQUIRE(c.by_id("n3").rec.wait(
      limit + 2s, [&](recorder& r) { return failed_over(placed, r.shards_, "n2"); }));
  auto took = ms_since(killed);
  std::printf("[figure] failover at lease expiry: %lld ms\n", took);
  CHECK(took <= limit.count());
  // The cut node's own clock ended its lease: it was told.
  CHECK(c.by_id("n2").rec.wait(5s, [](recorder& r) { return r.lease_losses_ > 0; }));
  CHECK_FALSE(c.by_id("n2").agent->lease_valid());
}

TEST_CASE("the controller gone, another takes over with a larger term and fails its shards over",
          "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes c(etcd.client_port());
  auto first = *c.by_id("n2").rec.controller();
  REQUIRE(first.node == "n1");
  auto placed = c.by_id("n2").rec.shards();

  SECTION("stopped: it resigns and revokes its lease") {
    auto stopped = steady::now();
    c.by_id("n1").agent.reset();
    REQUIRE(c.by_id("n2").rec.wait(2s, [&](recorder& r) {
      return r.controller_ && r.controller_->node != "n1" && failed_over(placed, r.shards_, "n1");
    }));
    std::printf("[figure] controller stopped -> new controller's failover: %lld ms\n",
                ms_since(stopped));
  }
  SECTION("killed: its lease expires") {
    auto killed = steady::now();
    c.by_id("n1").proxy.cut();
    auto limit =
        std::chrono::duration_cast<std::chrono::milliseconds>(c.nodes[0]->cfg.lease.ttl) + 1s;
    REQUIRE(c.by_id("n2").rec.wait(limit + 2s, [&](recorder& r) {
      return r.controller_ && r.controller_->node != "n1" && failed_over(placed, r.shards_, "n1");
    }));
    auto took = ms_since(killed);
    std::printf("[figure] controller killed -> new controller's failover: %lld ms\n", took);
    CHECK(took <= limit.count());
  }
  SECTION("killed, and reported unreachable by a node that doesn't control: replaced at once") {
    auto killed = steady::now();
    c.by_id("n1").proxy.cut();
    // The other nodes' cluster layer sees its connections close.
    c.by_id("n3").agent->member_unreachable("n1");
    c.by_id("n2").agent->member_unreachable("n1");
    REQUIRE(c.by_id("n2").rec.wait(2s, [&](recorder& r) {
      return r.controller_ && r.controller_->node != "n1" && failed_over(placed, r.shards_, "n1");
    }));
    auto took = ms_since(killed);
    std::printf("[figure] controller killed and reported -> new controller's failover: %lld ms\n",
                took);
    CHECK(took < 1000);
    // Long before its lease would have expired.
    CHECK(c.by_id("n1").agent->lease_valid());
  }
  auto second = *c.by_id("n2").rec.controller();
  CHECK(second.term > first.term);
  CHECK(c.by_id("n3").rec.wait(5s, [&](recorder& r) { return r.controller_ == second; }));
}

TEST_CASE(
    "a controller partitioned (packets dropped) stops acting before the others take over, "
    "and rejoins after the heal",
    "[etcd][agent][netns]") {
  if (!have_etcd()) return;
  if (!kaiwa::test::netns_host::available()) {
    WARN("not root or no network namespaces here: skipping the partition test");
    return;
  }
  kaiwa::test::netns_host host;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd", host.outside_address());

  // n1 lives in the namespace: every thread its agent starts is the namespace's and reaches etcd
  // over the link only. Started first, it controls.
  node n1("n1", etcd.client_port());
  n1.cfg.etcd = {{host.outside_address(), etcd.client_port()}};
  std::thread([&] {
    host.enter_from_this_thread();
    n1.start();
  }).join();
  REQUIRE(n1.agent);
  node n2("n2", etcd.client_port()), n3("n3", etcd.client_port());
  n2.start();
  n3.start();
  REQUIRE(n2.rec.wait(10s, [](recorder& r) {
    return r.shards_.size() == shard_count && r.controller_ && r.controller_->node == "n1";
  }));
  auto placed = n2.rec.shards();

  auto cut_at = steady::now();
  host.cut();
  auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(n1.cfg.lease.ttl) + 1s;
  REQUIRE(n2.rec.wait(limit + 2s, [&](recorder& r) {
    return r.controller_ && r.controller_->node != "n1" && failed_over(placed, r.shards_, "n1");
  }));
  auto took = ms_since(cut_at);
  // By the time another node controls and leads n1's shards, n1 no longer acts on its lease:
  // its own clock ended it first.
  CHECK_FALSE(n1.agent->lease_valid());
  std::printf("[figure] controller partitioned -> new controller's failover: %lld ms\n", took);
  CHECK(took <= limit.count());
  CHECK(n1.rec.wait(5s, [](recorder& r) { return r.lease_losses_ > 0; }));

  // Healed: n1 comes back under a new lease, follows the new controller.
  host.heal();
  CHECK(n2.rec.wait(10s, [](recorder& r) { return r.members_.size() == 3; }));
  CHECK(n1.rec.wait(10s, [&](recorder& r) {
    return r.controller_ && r.controller_->node != "n1" && failed_over(placed, r.shards_, "n1");
  }));
  CHECK(n1.rec.wait(10s, [](recorder& r) { return r.members_.size() == 3; }));
}

TEST_CASE("one agent of replication factor 1 places alone; isr proposals are CAS on the revision",
          "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  node n1("n1", etcd.client_port(), 1);
  n1.start();
  REQUIRE(n1.rec.wait(10s, [](recorder& r) { return r.shards_.size() == shard_count; }));
  auto a = n1.rec.shards().at(3);
  CHECK(a.assignment == shard_assignment{1, "n1", {"n1"}, {"n1"}});

  auto propose = [&](std::int64_t expected) {
    return ::propose(*n1.agent, 3, a.assignment, expected);
  };
  CHECK_FALSE(propose(a.mod_revision - 1));  // stale: someone changed it since
  auto rev = propose(a.mod_revision);
  REQUIRE(rev);
  CHECK(*rev > a.mod_revision);
  CHECK(n1.rec.wait(5s, [&](recorder& r) { return r.shards_.at(3).mod_revision == *rev; }));
  CHECK_FALSE(propose(a.mod_revision));  // the same change again: the revision moved on

  // Many at once (a follower died: every leader shrinks its isr), one of them stale: each gets
  // its own answer.
  auto now = n1.rec.shards();
  std::mutex mtx;
  std::condition_variable cv;
  std::map<shard_t, std::optional<std::int64_t>> answers;
  for (shard_t s = 4; s < shard_count; ++s)
    n1.agent->propose_isr(s, now.at(s).assignment, now.at(s).mod_revision - (s == 9 ? 1 : 0),
                          [&, s](std::optional<std::int64_t> r) {
                            std::lock_guard lock(mtx);
                            answers[s] = r;
                            cv.notify_all();
                          });
  std::unique_lock lock(mtx);
  REQUIRE(cv.wait_for(lock, 5s, [&] { return answers.size() == shard_count - 4; }));
  for (auto& [s, r] : answers) CHECK(r.has_value() == (s != 9));
}

TEST_CASE(
    "a node cut off past its lease comes back as a member and leads its preferred shards "
    "again once in sync",
    "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes c(etcd.client_port());
  auto& n1 = c.by_id("n1");
  auto& n2 = c.by_id("n2");
  auto placed = n2.rec.shards();
  std::int64_t old_lease = 0;
  REQUIRE(n2.rec.wait(0ms, [&](recorder& r) {
    old_lease = r.members_.at("n1").lease;
    return true;
  }));

  // Cut off past its lease: the others fail its shards over and one of them controls.
  n1.proxy.cut();
  REQUIRE(n2.rec.wait(10s, [&](recorder& r) {
    return r.controller_ && r.controller_->node != "n1" && failed_over(placed, r.shards_, "n1");
  }));
  REQUIRE(n1.rec.wait(5s, [](recorder& r) { return r.lease_losses_ > 0; }));
  CHECK_FALSE(n1.agent->lease_valid());

  // Back: a new lease, registered again, following the metadata, not the controller.
  REQUIRE(n1.proxy.wait_closed(5s));
  n1.proxy.heal();
  REQUIRE(n2.rec.wait(10s, [&](recorder& r) {
    return r.members_.size() == 3 && r.members_.at("n1").lease != old_lease;
  }));
  auto failed = n2.rec.shards();
  REQUIRE(n1.rec.wait(10s, [&](recorder& r) {
    return r.members_.size() == 3 && failed_over(placed, r.shards_, "n1");
  }));
  CHECK(n1.agent->lease_valid());
  INFO(n1.agent->status_json());
  CHECK(n1.rec.controller()->node != "n1");

  // Its leaders take it back into their isr once it has caught up (the replication layer's
  // proposals); the controller then gives it back the shards placed to be led by it.
  std::vector<shard_t> preferred;
  for (auto& [s, a] : placed) {
    if (a.assignment.leader != "n1") continue;
    preferred.push_back(s);
    auto next = failed.at(s).assignment;
    next.isr.push_back("n1");
    CHECK(propose(*n2.agent, s, next, failed.at(s).mod_revision));
  }
  REQUIRE_FALSE(preferred.empty());
  CHECK(c.by_id("n3").rec.wait(5s, [&](recorder& r) {
    for (auto s : preferred) {
      auto& a = r.shards_.at(s).assignment;
      if (a.leader != "n1" || a.epoch != failed.at(s).assignment.epoch + 1) return false;
    }
    return true;
  }));
}

TEST_CASE(
    "a leader restarted within its lease's TTL (registered again under a new lease) has its "
    "shards moved to a new epoch",
    "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes c(etcd.client_port());
  auto& old_n2 = c.by_id("n2");
  auto placed = c.by_id("n1").rec.shards();
  std::vector<shard_t> led;
  for (auto& [s, a] : placed)
    if (a.assignment.leader == "n2") led.push_back(s);
  REQUIRE(led.size() >= 2);
  // One of them has n2 alone in sync: no other replica may lead it.
  auto alone = led.front();
  auto only_n2 = placed.at(alone).assignment;
  only_n2.isr = {"n2"};
  auto rev = propose(*old_n2.agent, alone, only_n2, placed.at(alone).mod_revision);
  REQUIRE(rev);
  REQUIRE(c.by_id("n1").rec.wait(
      5s, [&](recorder& r) { return r.shards_.at(alone).mod_revision == *rev; }));
  placed = c.by_id("n1").rec.shards();
  std::int64_t old_lease = 0;
  REQUIRE(c.by_id("n1").rec.wait(0ms, [&](recorder& r) {
    old_lease = r.members_.at("n2").lease;
    return true;
  }));

  // kill -9 and an immediate restart: the old process renews and revokes nothing, the new one
  // puts the member key again under its own lease long before the old lease would expire. No
  // member key goes: no failover runs.
  old_n2.proxy.cut();
  node n2("n2", etcd.client_port());
  auto restarted = steady::now();
  n2.start();
  auto moved = [&](recorder& r) {
    for (auto s : led)
      if (r.shards_.at(s).assignment.epoch <= placed.at(s).assignment.epoch) return false;
    return true;
  };
  REQUIRE(c.by_id("n3").rec.wait(5s, moved));
  auto took = ms_since(restarted);
  std::printf("[figure] leader restarted -> its shards at a new epoch: %lld ms (%zu shards)\n",
              took, led.size());
  CHECK(took < 1000);
  auto now = c.by_id("n3").rec.shards();
  for (auto s : led) {
    INFO("shard " << s << ": " << encode(now.at(s).assignment));
    auto& a = now.at(s).assignment;
    // Still in sync (its log is what it was), so the preferred-leader pass may give it back.
    CHECK(a.in_sync("n2"));
    CHECK(a.replicas == placed.at(s).assignment.replicas);
  }
  // The shard only n2 held in sync: n2 itself, at the next epoch.
  CHECK(now.at(alone).assignment ==
        shard_assignment{only_n2.epoch + 1, "n2", only_n2.replicas, {"n2"}});
  // Shards n2 did not lead are left alone.
  for (auto& [s, a] : placed)
    if (a.assignment.leader != "n2") CHECK(now.at(s).mod_revision == a.mod_revision);
  // The new process is the member now, under its own lease; the old lease's expiry takes
  // nothing away.
  CHECK(c.by_id("n1").rec.wait(0ms, [&](recorder& r) {
    return r.members_.size() == 3 && r.members_.at("n2").lease != old_lease;
  }));
}

TEST_CASE(
    "a leader resigning on a disk error hands its shard to another live in-sync replica at the "
    "next epoch, and leaves the isr",
    "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, 500ms);
  assignment_store store(client, prefix, shard_count);
  three_nodes c(etcd.client_port());
  auto& n2 = c.by_id("n2");
  auto placed = n2.rec.shards();
  std::vector<shard_t> led;
  for (auto& [s, a] : placed)
    if (a.assignment.leader == "n2") led.push_back(s);
  REQUIRE(led.size() >= 3);
  auto revision_in_etcd = [&](shard_t s) {
    auto r = client.get(store.key_of(s));
    REQUIRE(r.ok());
    REQUIRE(r->kvs.size() == 1);
    return r->kvs.front().mod_revision;
  };
  /// Every call n2's agent queued before this has been written (its worker goes in order).
  auto settled = [&] {
    auto s = led.back();
    auto now = n2.rec.shards().at(s);
    REQUIRE(propose(*n2.agent, s, now.assignment, now.mod_revision));
  };

  auto s = led[0];
  auto& before = placed.at(s).assignment;
  n2.agent->resign(s, before.epoch);
  REQUIRE(c.by_id("n3").rec.wait(
      5s, [&](recorder& r) { return r.shards_.at(s).assignment.epoch == before.epoch + 1; }));
  auto after = c.by_id("n3").rec.shards().at(s).assignment;
  CHECK(after.leader != "n2");
  CHECK(before.in_sync(after.leader));
  CHECK_FALSE(after.in_sync("n2"));
  CHECK(after.replicas == before.replicas);  // a replica still: it may come back in sync

  // An epoch it no longer leads (the shard moved on): nothing.
  auto rev = revision_in_etcd(s);
  n2.agent->resign(s, before.epoch);
  settled();
  CHECK(revision_in_etcd(s) == rev);

  // No other replica in sync: nothing written (logged), the shard waits for one.
  auto t = led[1];
  auto alone = placed.at(t).assignment;
  alone.isr = {"n2"};
  REQUIRE(propose(*n2.agent, t, alone, placed.at(t).mod_revision));
  REQUIRE(n2.rec.wait(5s, [&](recorder& r) { return r.shards_.at(t).assignment == alone; }));
  rev = revision_in_etcd(t);
  n2.agent->resign(t, alone.epoch);
  settled();
  CHECK(revision_in_etcd(t) == rev);
  CHECK(n2.rec.shards().at(t).assignment == alone);
}

TEST_CASE("a watch resumed past a compaction loads again and delivers everything",
          "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, 500ms);
  assignment_store store(client, prefix, shard_count);
  node n1("n1", etcd.client_port(), 1);
  n1.start();
  REQUIRE(n1.rec.wait(10s, [](recorder& r) { return r.shards_.size() == shard_count; }));
  auto before = n1.rec.shards();

  // While its watch is down, shard 5 changes and the history is compacted past the change.
  n1.proxy.cut();
  REQUIRE(n1.proxy.wait_closed(5s));
  std::size_t delivered = 0;
  REQUIRE(n1.rec.wait(0ms, [&](recorder& r) {
    delivered = r.deliveries_;
    return true;
  }));
  auto changed = store.update(5, before.at(5).assignment, before.at(5).mod_revision, {});
  REQUIRE(changed.ok());
  REQUIRE(*changed);
  auto later = client.put("/elsewhere", "x");
  REQUIRE(later.ok());
  REQUIRE(client.compact(later->revision).ok());
  n1.proxy.heal();

  // Every assignment delivered again, shard 5 as it is now.
  CHECK(n1.rec.wait(10s, [&](recorder& r) {
    return r.deliveries_ >= delivered + shard_count && r.shards_.at(5).mod_revision == **changed;
  }));
  CHECK(n1.agent->lease_valid());
}

TEST_CASE("start refuses, in bounded time, an unreachable etcd and damaged metadata",
          "[etcd][agent]") {
  metadata_config cfg;
  cfg.node = "n1";
  cfg.cluster_address = "127.0.0.1:1";
  cfg.shards = shard_count;
  cfg.call_timeout = 300ms;
  recorder rec;

  SECTION("nothing listens") {
    cfg.etcd = {at(kaiwa::test::free_port())};
    auto t = steady::now();
    auto a = metadata_agent::start(cfg, rec.events());
    REQUIRE_FALSE(a.ok());
    CHECK(a.err().code == errc::unavailable);
    CHECK(ms_since(t) <= 1000);
  }
  SECTION("a listener that never answers") {
    std::uint16_t port = 0;
    int fd = kaiwa::test::listen_on_loopback(port);
    cfg.etcd = {at(port)};
    auto t = steady::now();
    auto a = metadata_agent::start(cfg, rec.events());
    ::close(fd);
    REQUIRE_FALSE(a.ok());
    // The lease grant was sent: it may have been applied.
    CHECK((a.err().code == errc::timeout || a.err().code == errc::unknown_outcome));
    CHECK(ms_since(t) <= 1000);
  }
  SECTION("damaged metadata") {
    if (!have_etcd()) return;
    temp_dir dir;
    etcd_process etcd(dir.str() + "/etcd");
    etcd_client client({at(etcd.client_port())}, 500ms);
    cfg.etcd = {at(etcd.client_port())};
    REQUIRE(client.put(prefix + "members/n9", "{\"id\":\"n9\"}").ok());
    cfg.prefix = prefix;
    auto a = metadata_agent::start(cfg, rec.events());
    REQUIRE_FALSE(a.ok());
    CHECK(a.err().code == errc::protocol);
    // Refused: its own member key went with its revoked lease.
    CHECK(client.get(prefix + "members/n1")->kvs.empty());
  }
  SECTION("a bad configuration") {
    cfg.etcd = {at(1)};
    cfg.node = "not a name";
    CHECK(metadata_agent::start(cfg, rec.events()).err().code == errc::invalid);
  }
}

// -- moves, drains and removals as replica changes (cluster/replica_moves.hpp) --------------

namespace {

/// An operator's request, waited for: "" when it finished, else the error.
class request_answer {
 public:
  request_done callback() {
    return [this](std::string err) {
      std::lock_guard lock(mtx_);
      answer_ = std::move(err);
      cv_.notify_all();
    };
  }
  std::optional<std::string> wait(std::chrono::milliseconds d) {
    std::unique_lock lock(mtx_);
    cv_.wait_for(lock, d, [&] { return answer_.has_value(); });
    return answer_;
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::optional<std::string> answer_;
};

/// Plays the shards' leaders (no replication actor here): a replica added out of sync is
/// "caught up" at once, and added to the isr by CAS through `via`'s agent, as a leader would.
class leaders {
 public:
  leaders(node& via) : via_(via), thread_([this] { run(); }) {}
  ~leaders() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    while (!stop_) {
      for (auto& [s, a] : via_.rec.shards()) {
        if (a.assignment.isr.size() == a.assignment.replicas.size()) continue;
        auto next = a.assignment;
        next.isr = next.replicas;
        auto done = std::make_shared<std::atomic<bool>>(false);
        via_.agent->propose_isr(s, next, a.mod_revision,
                                [done](std::optional<std::int64_t>) { *done = true; });
        for (int i = 0; i < 100 && !*done; ++i) std::this_thread::sleep_for(10ms);
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  node& via_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE(
    "a move adds the target, hands it leadership and drops the old leader; a new "
    "controller finishes a move the last one started",
    "[etcd][agent][moves]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes three(etcd.client_port());
  node n4("n4", etcd.client_port());
  n4.start();
  REQUIRE(n4.rec.wait(10s, [](recorder& r) { return r.shards_.size() == shard_count; }));
  auto& n1 = three.by_id("n1");
  auto& n2 = three.by_id("n2");
  REQUIRE(n1.rec.controller()->node == "n1");

  // Refused at once: a node that isn't a member, a shard past the count.
  {
    request_answer a;
    n2.agent->request_move(0, "n9", 5s, a.callback());
    CHECK(a.wait(5s) == "n9 is not a live member");
    request_answer b;
    n2.agent->request_move(shard_count, "n4", 5s, b.callback());
    REQUIRE(b.wait(5s));
    CHECK_FALSE(b.wait(0ms)->empty());
  }

  // A move asked on n2 (not the controller) of a shard n1 leads, to n4 (not a replica yet).
  auto before = n2.rec.shards();
  shard_t s = 0;
  for (auto& [k, a] : before)
    if (a.assignment.leader == "n1") s = k;
  REQUIRE(before.at(s).assignment.leader == "n1");
  {
    leaders play(n1);
    request_answer a;
    auto t0 = steady::now();
    n2.agent->request_move(s, "n4", 10s, a.callback());
    auto err = a.wait(10s);
    REQUIRE(err);
    CHECK(*err == "");
    std::printf("[figure] move of a shard to a new replica (agent, no data): %lld ms\n",
                ms_since(t0));
  }
  REQUIRE(n2.rec.wait(5s, [&](recorder& r) { return r.shards_.at(s).assignment.leader == "n4"; }));
  auto moved = n2.rec.shards().at(s).assignment;
  CHECK(moved.epoch == before.at(s).assignment.epoch + 1);
  CHECK(moved.replicas.front() == "n4");
  CHECK_FALSE(moved.holds("n1"));
  CHECK(moved.replicas.size() == before.at(s).assignment.replicas.size());
  // The preferred-leader pass leaves it where the move put it.
  std::this_thread::sleep_for(1500ms);  // two passes of the preferred-leader round (1 s)
  CHECK(n2.rec.shards().at(s).assignment.leader == "n4");

  // A second move, of a shard n2 leads: the controller adds n4 and dies before n4 catches up.
  shard_t s2 = shard_count;
  for (auto& [k, a] : n2.rec.shards())
    if (a.assignment.leader == "n2" && !a.assignment.holds("n4")) s2 = k;
  REQUIRE(s2 < shard_count);
  request_answer second;
  n2.agent->request_move(s2, "n4", 15s, second.callback());
  REQUIRE(n2.rec.wait(5s, [&](recorder& r) { return r.shards_.at(s2).assignment.holds("n4"); }));
  CHECK_FALSE(n2.rec.shards().at(s2).assignment.in_sync("n4"));
  n1.agent.reset();  // resigns: n2, n3 or n4 takes over
  REQUIRE(
      n2.rec.wait(5s, [](recorder& r) { return r.controller_ && r.controller_->node != "n1"; }));
  leaders play(n2);
  auto err = second.wait(15s);
  REQUIRE(err);
  CHECK(*err == "");
  auto after = n2.rec.shards().at(s2).assignment;
  CHECK(after.leader == "n4");
  CHECK_FALSE(after.holds("n2"));
  CHECK_FALSE(n2.rec.went_back());
}

TEST_CASE(
    "a drain hands a node's leadership away, re-creates its replicas on a spare node, "
    "and tells the node; the preferred-leader pass leaves it alone",
    "[etcd][agent][moves]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes three(etcd.client_port());
  node n4("n4", etcd.client_port());
  n4.start();
  REQUIRE(n4.rec.wait(10s, [](recorder& r) { return r.shards_.size() == shard_count; }));
  auto& n1 = three.by_id("n1");
  auto& n3 = three.by_id("n3");
  auto n3_leads = led_by(n3.rec.shards(), "n3");
  REQUIRE(n3_leads > 0);
  leaders play(n1);
  request_answer a;
  auto t0 = steady::now();
  n1.agent->request_drain("n3", 250ms, 20s, a.callback());
  auto err = a.wait(20s);
  REQUIRE(err);
  CHECK(*err == "");
  std::printf("[figure] drain of a node leading %zu of %u shards (agent, no data): %lld ms\n",
              n3_leads, shard_count, ms_since(t0));
  REQUIRE(n3.rec.wait(5s, [](recorder& r) { return r.drained_.size() == 1; }));
  CHECK(n3.rec.drained_.front() == 250ms);
  REQUIRE(n1.rec.wait(5s, [](recorder& r) {
    for (auto& [s, a] : r.shards_)
      if (a.assignment.holds("n3")) return false;
    return true;
  }));
  for (auto& [s, a] : n1.rec.shards()) {
    INFO("shard " << s << ": " << encode(a.assignment));
    CHECK(a.assignment.replicas.size() == 3);
    CHECK(a.assignment.holds("n4"));
  }
  // Still drained: no leadership comes back to n3 (it holds no replica), and asking again
  // joins the finished drain.
  request_answer again;
  n1.agent->request_drain("n3", 250ms, 5s, again.callback());
  CHECK(again.wait(5s) == "");
}

TEST_CASE("a removed member's replicas are re-created on live nodes; a live one is refused",
          "[etcd][agent][moves]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes three(etcd.client_port());
  node n4("n4", etcd.client_port());
  n4.start();
  REQUIRE(n4.rec.wait(10s, [](recorder& r) { return r.shards_.size() == shard_count; }));
  auto& n1 = three.by_id("n1");
  auto& n3 = three.by_id("n3");
  {
    request_answer a;
    n1.agent->request_removal("n3", 5s, a.callback());
    auto err = a.wait(5s);
    REQUIRE(err);
    CHECK(err->find("n3 is live") == 0);
  }
  n3.agent.reset();  // stops: its lease is revoked, failover follows
  REQUIRE(n1.rec.wait(5s, [](recorder& r) {
    if (r.members_.size() != 3) return false;
    for (auto& [s, a] : r.shards_)
      if (a.assignment.leader == "n3") return false;
    return true;
  }));
  leaders play(n1);
  request_answer a;
  n1.agent->request_removal("n3", 10s, a.callback());
  auto err = a.wait(10s);
  REQUIRE(err);
  CHECK(*err == "");
  REQUIRE(n1.rec.wait(5s, [](recorder& r) {
    for (auto& [s, a] : r.shards_)
      if (a.assignment.holds("n3") || a.assignment.isr.size() != 3) return false;
    return true;
  }));
}

TEST_CASE("a node on a new data dir doesn't register while etcd names it a replica",
          "[etcd][agent]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  three_nodes c(etcd.client_port());
  c.by_id("n2").agent.reset();  // its process gone; its disk replaced

  node wiped("n2", etcd.client_port());
  wiped.cfg.fresh_data = true;
  auto refused = metadata_agent::start(wiped.cfg, wiped.rec.events());
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.err().message,
             Catch::Contains("data dir is new") && Catch::Contains("kaiwa cluster remove n2"));

  // Its old data dir back, it registers; and a new node id on a new data dir holds no replica.
  node back("n2", etcd.client_port());
  back.start();
  node fresh("n4", etcd.client_port());
  fresh.cfg.fresh_data = true;
  fresh.start();
}

namespace {

/// Every agent of `c` says etcd's data is lost (metadata_lost, and in its status).
bool all_lost(three_nodes& c, std::chrono::milliseconds within) {
  auto until = steady::now() + within;
  for (auto& n : c.nodes)
    while (!n->agent->metadata_lost()) {
      if (steady::now() > until) return false;
      std::this_thread::sleep_for(10ms);  // polls a flag the agent's worker sets
    }
  return true;
}

/// Waits until `pred()` holds, at most `within`.
template <class Pred>
bool eventually(std::chrono::milliseconds within, Pred pred) {
  auto until = steady::now() + within;
  while (!pred()) {
    if (steady::now() > until) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// The keys etcd holds under `p` (its data, as a test's backup).
std::vector<key_value> keys_under(etcd_client& client, const std::string& p) {
  auto r = client.range(p);
  REQUIRE(r.ok());
  return r->kvs;
}

/// Each node is registered (a member key, naming `cluster`) and one of them controls, as etcd
/// says.
bool registered_again(etcd_client& client, const std::string& cluster) {
  auto members = client.range(prefix + "members/");
  auto controller = client.get(prefix + "controller");
  if (!members.ok() || !controller.ok() || members->kvs.size() != 3 || controller->kvs.empty())
    return false;
  for (auto& kv : members->kvs) {
    auto m = decode_member(kv.value);
    if (!m || m->cluster != cluster) return false;
  }
  return true;
}

}  // namespace

TEST_CASE(
    "etcd's keys deleted while the agents run: each says so, they register and elect again, "
    "nothing is placed anew; the keys put back, failover works at the epochs the shards had",
    "[etcd][agent][wipe]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, 500ms);
  three_nodes c(etcd.client_port(), dir.str());
  auto placed = c.nodes[0]->rec.shards();
  // The first placement done, the marker says so.
  auto marker = client.get(prefix + "cluster");
  REQUIRE(eventually(3s, [&] {
    marker = client.get(prefix + "cluster");
    auto m = marker.ok() && marker->kvs.size() == 1 ? decode_marker(marker->kvs.front().value)
                                                    : std::nullopt;
    return m && m->placed;
  }));
  auto m = decode_marker(marker->kvs.front().value);
  // Every node recorded the cluster's id in its data dir.
  for (auto id : {"n1", "n2", "n3"}) {
    auto rec = read_recorded_id(dir.str() + "/" + id + ".cluster-id");
    REQUIRE(rec.ok());
    CHECK(*rec == m->id);
  }
  auto backup = keys_under(client, prefix + "shards/");
  REQUIRE(backup.size() == shard_count);

  // An operator deletes the cluster's keys (etcdctl del --prefix).
  auto wiped = steady::now();
  REQUIRE(client.del_prefix(prefix).ok());
  REQUIRE(all_lost(c, 3s));
  std::printf("[figure] keys deleted -> every agent says metadata lost: %lld ms\n",
              ms_since(wiped));
  auto status = c.nodes[1]->agent->status_json();
  INFO(status);
  CHECK(status.find("\"metadata_lost\":true") != std::string::npos);
  CHECK(status.find("is gone from etcd") != std::string::npos);
  CHECK(status.find("\"cluster_id\":\"" + m->id + "\"") != std::string::npos);
  // They register again (naming their cluster) and one controls: the controller runs, and
  // places nothing over the replicas' data, nor writes a new marker.
  REQUIRE(eventually(5s, [&] { return registered_again(client, m->id); }));
  // A negative check needs time to pass: two controller rounds (one a second).
  std::this_thread::sleep_for(2500ms);
  CHECK(keys_under(client, prefix + "shards/").empty());
  CHECK(client.get(prefix + "cluster")->kvs.empty());
  for (auto& n : c.nodes) CHECK(n->agent->metadata_lost());

  // The backup put back (as a restore does): the agents find their cluster again.
  REQUIRE(client.put(prefix + "cluster", marker->kvs.front().value).ok());
  for (auto& kv : backup) REQUIRE(client.put(kv.key, kv.value).ok());
  for (auto& n : c.nodes) REQUIRE(eventually(5s, [&] { return !n->agent->metadata_lost(); }));
  for (auto& n : c.nodes) CHECK(n->agent->shards_held() == 0);

  // Failover works again, from the epochs the shards had: n3 dies.
  c.by_id("n3").proxy.cut();
  for (auto& n : c.nodes)
    if (n->cfg.node != "n3") n->agent->member_unreachable("n3");
  CHECK(c.by_id("n1").rec.wait(5s,
                               [&](recorder& r) { return failed_over(placed, r.shards_, "n3"); }));
  for (auto& [s, a] : c.by_id("n2").rec.shards())
    CHECK(a.assignment.epoch >= placed.at(s).assignment.epoch);
}

TEST_CASE(
    "etcd restarted on an empty data dir while the agents run: the revision gone back is "
    "noticed, nothing is placed; restored from an older backup, the agents resynchronise and "
    "hold the shards changed since it",
    "[etcd][agent][wipe]") {
  if (!have_etcd()) return;
  temp_dir dir;
  auto data = dir.str() + "/etcd", backup_dir = dir.str() + "/etcd-backup";
  etcd_process etcd(data);
  etcd_client client({at(etcd.client_port())}, 500ms);
  three_nodes c(etcd.client_port(), dir.str());
  // A backup of etcd's data (as etcdctl snapshot save and restore would give): a copy of its
  // data dir while it is stopped.
  etcd.stop();
  std::filesystem::copy(data, backup_dir, std::filesystem::copy_options::recursive);
  etcd.start();
  // Since the backup: shard 0's leader drops a follower from its isr (a CAS, as leaders do).
  auto& n2 = c.by_id("n2");
  REQUIRE(n2.rec.wait(10s, [](recorder& r) { return r.members_.size() == 3; }));
  auto zero = c.nodes[0]->rec.shards().at(0);
  auto shrunk = zero.assignment;
  std::string dropped;
  for (auto& r : shrunk.isr)
    if (r != shrunk.leader) dropped = r;
  std::erase(shrunk.isr, dropped);
  REQUIRE(propose(*c.by_id(zero.assignment.leader).agent, 0, shrunk, zero.mod_revision));
  for (auto& n : c.nodes)
    REQUIRE(n->rec.wait(5s, [&](recorder& r) { return r.shards_.at(0).assignment == shrunk; }));

  // etcd's data dir is lost: it starts empty, at revision 1.
  etcd.stop();
  std::filesystem::remove_all(data);
  auto wiped = steady::now();
  etcd.start();
  REQUIRE(all_lost(c, 5s));
  std::printf("[figure] etcd restarted empty -> every agent says metadata lost: %lld ms\n",
              ms_since(wiped));
  auto known = read_recorded_id(dir.str() + "/n1.cluster-id");
  REQUIRE(known.ok());
  REQUIRE(eventually(5s, [&] { return registered_again(client, *known); }));
  std::this_thread::sleep_for(2500ms);  // a negative check: two controller rounds pass
  CHECK(keys_under(client, prefix + "shards/").empty());
  CHECK(keys_under(client, prefix + "cluster").empty());

  // Restored from the backup (older than shard 0's isr change).
  etcd.stop();
  std::filesystem::remove_all(data);
  std::filesystem::copy(backup_dir, data, std::filesystem::copy_options::recursive);
  etcd.start();
  for (auto& n : c.nodes) REQUIRE(eventually(10s, [&] { return !n->agent->metadata_lost(); }));
  // Shard 0's restored assignment is older than what the nodes saw: held, not acted on, and
  // not delivered (the nodes go on with the newer one they follow).
  for (auto& n : c.nodes) CHECK(n->agent->shards_held() == 1);
  for (auto& n : c.nodes) CHECK(n->rec.shards().at(0).assignment == shrunk);
  auto status = c.nodes[0]->agent->status_json();
  INFO(status);
  CHECK(status.find("\"shards_held\":[0]") != std::string::npos);
  CHECK(status.find("\"metadata_lost\":false") != std::string::npos);

  // The controller acts on the others again: its leader dies, and every shard it led but the
  // held one fails over from its restored epoch; shard 0 keeps what the backup says.
  auto restored = keys_under(client, prefix + "shards/");
  REQUIRE(restored.size() == shard_count);
  auto& n1 = c.by_id("n1");
  REQUIRE(n1.rec.wait(10s, [](recorder& r) { return r.members_.size() == 3 && r.controller_; }));
  auto before = n1.rec.shards();
  auto zero_before = client.get(prefix + "shards/00000");
  REQUIRE(zero_before.ok());
  auto leader = before.at(1).assignment.leader;
  c.by_id(leader).proxy.cut();
  for (auto& n : c.nodes)
    if (n->cfg.node != leader) n->agent->member_unreachable(leader);
  auto& other = c.by_id(leader == "n1" ? "n2" : "n1");
  CHECK(other.rec.wait(5s, [&](recorder& r) {
    for (auto& [s, a] : r.shards_)
      if (s != 0 && a.assignment.leader == leader) return false;
    return true;
  }));
  auto zero_after = client.get(prefix + "shards/00000");
  REQUIRE(zero_after.ok());
  CHECK(zero_after->kvs.front().mod_revision == zero_before->kvs.front().mod_revision);
}
