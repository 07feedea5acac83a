// Replicated clusters (issue 13; docs/cluster.md "Replication and failover"): three real node
// processes whose metadata lives in a real etcd, every shard on all three. A shard's leader is
// killed (kill -9) or paused past its lease (SIGSTOP), or a follower is killed; each time the
// test's own checker finds every acked event once, in order, with its text, and the time the
// room took to take writes again is printed for docs/benchmarks.md.

#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <catch2/catch.hpp>

#include <signal.h>
#include <simdjson.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster/etcd_client.hpp"
#include "cluster/replication_wire.hpp"
#include "core/shard.hpp"
#include "tests/cluster/etcd_process.hpp"
#include "tests/support/node_process.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa;
using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t test_shards = 16;
using steady = std::chrono::steady_clock;

/// etcd and three `kaiwa start --etcd` processes sharing one temp dir.
class replicated_cluster {
 public:
  explicit replicated_cluster(std::size_t nodes, std::vector<std::string> extra = {})
      : etcd_(dir_.str() + "/etcd"), extra_(std::move(extra)) {
    for (std::size_t i = 0; i < nodes; ++i) start(i);
  }

  node_process& node(std::size_t i) { return *nodes_.at(i); }
  etcd_process& etcd() { return etcd_; }
  /// etcd's data dir.
  std::string etcd_dir() const { return dir_.str() + "/etcd"; }

  /// Starts node i (again, after a kill) on its data dir.
  void start(std::size_t i) {
    if (nodes_.size() <= i) nodes_.resize(i + 1);
    nodes_[i] = std::make_unique<node_process>(dir(i), flags(i));
  }

  /// The flags node i starts with, after --data-dir.
  std::vector<std::string> flags(std::size_t i) const {
    std::vector<std::string> flags = {
        "--node-id", id(i),
        "--cluster", "127.0.0.1:0",
        "--shards",  std::to_string(test_shards),
        "--etcd",    "127.0.0.1:" + std::to_string(etcd_.client_port())};
    flags.insert(flags.end(), extra_.begin(), extra_.end());
    return flags;
  }

  static std::string id(std::size_t i) { return "n" + std::to_string(i + 1); }
  /// Node i's data dir.
  std::string dir(std::size_t i) const { return dir_.str() + "/" + id(i); }
  static std::size_t index(const std::string& id) { return std::stoul(id.substr(1)) - 1; }

  /// The leader of `room`'s shard as node `via` sees it (empty: none yet).
  std::string leader_of(const std::string& room, std::size_t via) {
    auto body = http_get(node(via).admin_port(), "/admin/v1/shards").second;
    simdjson::dom::parser p;
    simdjson::dom::array owners;
    if (p.parse(body)["owners"].get(owners)) return {};
    std::string_view owner;
    if (owners.at(shard_of(room, test_shards))["owner"].get(owner)) return {};
    return std::string(owner);
  }

  /// The controller as node `via` sees it in etcd (empty: none yet).
  std::string controller(std::size_t via) {
    auto body = http_get(node(via).admin_port(), "/admin/v1/cluster").second;
    simdjson::dom::parser p;
    std::string_view c;
    if (p.parse(body)["etcd"]["controller"].get(c)) return {};
    return std::string(c);
  }

  /// Waits until node `via` names a controller.
  std::string wait_controller(std::size_t via) {
    auto deadline = steady::now() + 30s;
    while (steady::now() < deadline) {
      if (auto c = controller(via); !c.empty()) return c;
      std::this_thread::sleep_for(20ms);  // polling interval of the admin API
    }
    FAIL("no controller seen by " << id(via));
    return {};
  }

  /// A room whose shard `leader` leads, as node `via` sees it.
  std::string room_led_by(const std::string& leader, std::size_t via) {
    for (int k = 0; k < 100; ++k) {
      auto room = "room-" + std::to_string(k);
      if (leader_of(room, via) == leader) return room;
    }
    FAIL(leader << " leads no room's shard, as " << id(via) << " sees it");
    return {};
  }

  /// The replicas of `room`'s shard as node `via` sees them (empty: not placed yet).
  std::vector<std::string> replicas_of(const std::string& room, std::size_t via) {
    auto body = http_get(node(via).admin_port(), "/admin/v1/shards").second;
    simdjson::dom::parser p;
    simdjson::dom::array owners, replicas;
    std::vector<std::string> out;
    if (p.parse(body)["owners"].get(owners) ||
        owners.at(shard_of(room, test_shards))["replicas"].get(replicas))
      return out;
    for (auto r : replicas) out.emplace_back(std::string_view(r));
    return out;
  }

  /// Waits until node `via` names a leader for `room` other than `not_this`.
  std::string wait_leader(const std::string& room, std::size_t via, const std::string& not_this) {
    auto deadline = steady::now() + 30s;
    while (steady::now() < deadline) {
      auto l = leader_of(room, via);
      if (!l.empty() && l != not_this) return l;
      std::this_thread::sleep_for(20ms);  // polling interval of the admin API
    }
    FAIL("no leader for " << room << " seen by " << id(via));
    return {};
  }

 private:
  temp_dir dir_;
  etcd_process etcd_;
  std::vector<std::string> extra_;  // flags of every node
  std::vector<std::unique_ptr<node_process>> nodes_;
};

/// Whether etcd is missing, in which case the test says so and skips.
bool etcd_missing() {
  if (!etcd_process::binary().empty()) return false;
  WARN("no etcd binary (apt-get install etcd-server): skipping");
  return true;
}

struct acked_event {
  std::int64_t seq;
  std::string text;
};

std::string send_json(std::int64_t id, const std::string& room, const std::string& text,
                      const std::string& cid) {
  return R"({"op":"send","id":)" + std::to_string(id) + R"(,"room":")" + room + R"(","text":")" +
         text + R"(","cid":")" + cid + "\"}";
}

/// A client's sends, as an application makes them: each with a cid, retried (same cid) on
/// `unavailable` (not applied), on `timeout` (the leader changed or went down before it
/// answered: maybe applied, and the cid makes the retry return the first seq) and when no
/// reply comes within a second (sent to a leader that stopped).
class sender {
 public:
  explicit sender(ws_client& c) : c_(c) {}

  /// The ack of `text` (its cid: the text), or the error that ended the retries after `limit`.
  message send(const std::string& room, const std::string& text,
               std::chrono::milliseconds limit = 20s) {
    auto deadline = steady::now() + limit;
    for (;;) {
      auto id = next_id_++;
      c_.send(send_json(id, room, text, "cid-" + text));
      auto reply = reply_to(id, std::min(steady::now() + 1s, deadline));
      if (reply && reply->str("code") != "unavailable" && reply->str("code") != "timeout")
        return *reply;
      if (steady::now() >= deadline)
        return reply.value_or(message(R"({"op":"error","code":"no reply"})"));
      std::this_thread::sleep_for(10ms);  // the client's retry interval
    }
  }

  /// Sends `text`, requires its ack and records it in `acked` (what check_history looks for).
  void send_acked(const std::string& room, const std::string& text, std::vector<acked_event>& acked,
                  std::chrono::milliseconds limit = 20s) {
    auto ack = send(room, text, limit);
    REQUIRE(ack.str("op") == "ack");
    acked.push_back({ack.num("seq"), text});
  }

  /// send_acked() of `prefix` + k for k from `first` to `last`, in order.
  void send_numbered(const std::string& room, const std::string& prefix, int first, int last,
                     std::vector<acked_event>& acked, std::chrono::milliseconds limit = 20s) {
    for (int k = first; k <= last; ++k) send_acked(room, prefix + std::to_string(k), acked, limit);
  }

 private:
  /// The reply to request `id` (others, and pushes, skipped) until `until`.
  std::optional<message> reply_to(std::int64_t id, steady::time_point until) {
    while (steady::now() < until) {
      auto m =
          c_.recv(std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now()));
      if (!m) return std::nullopt;
      if (m->num("id") == id) return m;
    }
    return std::nullopt;
  }

  ws_client& c_;
  std::int64_t next_id_ = 1'000;
};

/// Every acked event once, in order, with its text, and nothing else in between: the room's
/// history as `c` reads it must be exactly seqs 1..n with the acked ones where they were acked.
/// Read as a client reads, retried on `unavailable`: a shard's new leader is named (what
/// wait_leader sees) before it serves, which it does once it has applied the log it leads from,
/// and a room may move between an ack and the read. Bounded: a shard that is never served
/// again fails here.
void check_history(ws_client& c, const std::string& room, const std::vector<acked_event>& acked,
                   std::int64_t id) {
  auto h = c.request_while_unavailable(R"({"op":"history","id":)" + std::to_string(id) +
                                           R"(,"room":")" + room + R"(","after":0,"limit":200})",
                                       id, 10s);
  INFO(h.json());
  REQUIRE(h.str("op") == "history");
  std::map<std::int64_t, std::string> seen;
  std::int64_t expect = 0;
  for (auto e : h.array("events")) {
    auto seq = std::int64_t(e["seq"]);
    CHECK(seq == expect + 1);  // gapless, ascending, no duplicate
    expect = seq;
    std::string_view text;
    if (!e["text"].get(text)) seen[seq] = std::string(text);
  }
  for (auto& a : acked) {
    INFO("acked seq " << a.seq);
    REQUIRE(seen.count(a.seq) == 1);
    CHECK(seen[a.seq] == a.text);
  }
}

}  // namespace

TEST_CASE(
    "replicated: kill -9 of a room's leader loses no acked event, and another replica "
    "takes writes within seconds",
    "[replication]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  const std::string room = "lobby";
  auto leader = c.wait_leader(room, 0, "");
  // The client talks to a node that survives; its gateway routes to the leader.
  auto via = (replicated_cluster::index(leader) + 1) % 3;
  ws_client client(c.node(via).port());
  client.hello("alice");
  sender client_sends(client);

  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "before-", 1, 30, acked);

  auto killed_at = steady::now();
  REQUIRE(c.node(replicated_cluster::index(leader)).stop(SIGKILL) == 128 + SIGKILL);
  client_sends.send_acked(room, "after", acked, 30s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed_at);
  WARN("kill -9 of the leader -> the room acked again after " << took.count() << " ms");
  CHECK(took < 10s);  // the issue's target is p99 <= 2 s over `make soak`'s rounds
  CHECK(c.leader_of(room, via) != leader);

  check_history(client, room, acked, 200);

  // The killed node comes back as a follower, catches up, and serves the same history.
  c.start(replicated_cluster::index(leader));
  ws_client back(c.node(replicated_cluster::index(leader)).port());
  back.hello("bob");
  sender back_sends(back);
  back_sends.send_acked(room, "from the returned node", acked);
  check_history(back, room, acked, 301);
}

TEST_CASE("replicated: a killed follower doesn't stop acks (min in-sync 2 of 3)", "[replication]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  const std::string room = "quiet";
  auto leader = c.wait_leader(room, 0, "");
  auto li = replicated_cluster::index(leader);
  auto follower = (li + 1) % 3;
  ws_client client(c.node(li).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "a", 1, 10, acked);
  REQUIRE(c.node(follower).stop(SIGKILL) == 128 + SIGKILL);
  auto killed_at = steady::now();
  client_sends.send_numbered(room, "b", 11, 30, acked);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed_at);
  WARN("a follower killed: 20 sends acked in " << took.count() << " ms");
  // Its connection closed, so the leader drops it from the isr at once: no write waits the
  // 1 s max_lag for a follower that is gone.
  CHECK(took < 900ms);
  CHECK(c.leader_of(room, li) == leader);
  check_history(client, room, acked, 100);

  // Deleting a room would erase the leader's copy alone (a failover would bring it back): refused.
  auto [status, body] = http_call(c.node(li).admin_port(), "DELETE", "/admin/v1/rooms/" + room,
                                  {{"Kaiwa-Admin", "1"}});
  CHECK(status == 503);
  CHECK(body.find("can't be deleted yet") != std::string::npos);
  check_history(client, room, acked, 101);
}

TEST_CASE(
    "replicated: a leader paused past its lease is replaced, and acks nothing when it "
    "wakes",
    "[replication]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  const std::string room = "sleepy";
  auto leader = c.wait_leader(room, 0, "");
  auto li = replicated_cluster::index(leader);
  auto via = (li + 1) % 3;
  ws_client client(c.node(via).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "a", 1, 10, acked);
  // A client of the paused node itself: its send waits in the paused process.
  ws_client stale(c.node(li).port());
  stale.hello("bob");

  // A client that waits for its answer rather than resending: its send, held by the paused
  // leader, is answered once the shard has another leader, not when the paused node is
  // declared dead (--failure-timeout, 5 s: PROTOCOL.md's clients would wait that long).
  ws_client patient(c.node(via).port());
  patient.hello("carol");

  c.node(li).pause();
  auto paused_at = steady::now();
  stale.send(send_json(500, room, "from the paused leader", "stale-1"));
  patient.send(send_json(700, room, "waits for its answer", "patient-1"));
  auto answer = patient.next_where([](const message& m) { return m.num("id") == 700; }, 10s);
  auto answered_after = steady::now() - paused_at;
  INFO(answer.json());
  CHECK((answer.str("code") == "timeout" || answer.str("op") == "ack"));
  CHECK(answered_after < 4s);
  client_sends.send_acked(room, "after", acked, 30s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - paused_at);
  WARN("SIGSTOP of the leader -> the room acked again after " << took.count() << " ms");
  CHECK(took < 15s);  // the issue's target is p99 <= 4 s over `make soak`'s rounds

  // It wakes: whatever it answers its own client, that send must not be acked with a seq the
  // new leader gave another event.
  c.node(li).signal(SIGCONT);
  auto late = stale.next_where([](const message& m) { return m.num("id") == 500; }, 20s);
  auto h = client.request(
      R"({"op":"history","id":600,"room":")" + room + R"(","after":0,"limit":200})", 600);
  if (late.str("op") == "ack") {
    bool found = false;
    for (auto e : h.array("events"))
      if (std::int64_t(e["seq"]) == late.num("seq"))
        found = std::string_view(e["text"]) == "from the paused leader";
    CHECK(found);  // acked: then it is in the room, at the seq it was acked with
  }
  check_history(client, room, acked, 601);
}

TEST_CASE("replicated: a node whose etcd can't be reached refuses to start, and says why",
          "[replication]") {
  temp_dir dir;
  auto port = free_port();  // nothing listens there
  auto started = steady::now();
  auto r = run_kaiwa({"start", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir",
                      dir.str() + "/n1", "--cluster", "127.0.0.1:0", "--etcd",
                      "127.0.0.1:" + std::to_string(port)},
                     "/dev/null");
  CHECK(r.status != 0);
  CHECK(r.output.find("can't join the cluster's metadata in etcd") != std::string::npos);
  CHECK(steady::now() - started < 10s);
}

TEST_CASE("replicated: a node stopped with SIGTERM hands its shards over and exits",
          "[replication]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  const std::string room = "handover";
  auto leader = c.wait_leader(room, 0, "");
  auto li = replicated_cluster::index(leader);
  auto via = (li + 1) % 3;
  ws_client client(c.node(via).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "a", 1, 5, acked);
  auto stopping = steady::now();
  CHECK(c.node(li).stop(SIGTERM) == 0);
  CHECK(steady::now() - stopping < 10s);
  // Its lease was revoked as it stopped: the room takes writes again at once, not at expiry.
  client_sends.send_acked(room, "after", acked);
  check_history(client, room, acked, 100);
}

TEST_CASE(
    "replicated: kill -9 of the node that is both the controller and a room's leader: the "
    "others revoke its lease at once, and another replica takes writes within a second",
    "[replication]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  c.wait_leader("lobby", 0, "");  // placed
  auto controller = c.wait_controller(0);
  auto ci = replicated_cluster::index(controller);
  auto via = (ci + 1) % 3;
  auto room = c.room_led_by(controller, via);
  ws_client client(c.node(via).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "a", 1, 20, acked);

  auto killed_at = steady::now();
  REQUIRE(c.node(ci).stop(SIGKILL) == 128 + SIGKILL);
  client_sends.send_acked(room, "after", acked, 30s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed_at);
  WARN("kill -9 of the controller and leader -> the room acked again after " << took.count()
                                                                             << " ms");
  // Its lease would expire only 1.5-2.5 s after the kill (its last renewal, etcd's 500 ms
  // tick; measured 1.9 s before the others revoked it): the others revoke it at once.
  CHECK(took < 1s);
  CHECK(c.leader_of(room, via) != controller);
  CHECK(c.wait_controller(via) != controller);
  check_history(client, room, acked, 100);
}

TEST_CASE(
    "replicated: a leader (the controller too) killed and restarted at once, within its lease: "
    "its rooms ack again within seconds, nothing acked is lost, and it takes writes again",
    "[replication]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  c.wait_leader("lobby", 0, "");
  auto controller = c.wait_controller(0);
  auto li = replicated_cluster::index(controller);
  auto via = (li + 1) % 3;
  auto room = c.room_led_by(controller, via);
  ws_client client(c.node(via).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "a", 1, 20, acked);

  auto killed_at = steady::now();
  REQUIRE(c.node(li).stop(SIGKILL) == 128 + SIGKILL);
  c.start(li);  // registers again under a new lease while the old one still runs
  auto restarted = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed_at);
  client_sends.send_acked(room, "after", acked, 30s);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed_at);
  WARN("kill -9 and restart (listening again after "
       << restarted.count() << " ms) of the leader -> acked again after " << took.count() << " ms");
  CHECK(took < 5s);
  check_history(client, room, acked, 100);

  // The restarted node serves the room's whole history and takes writes (through whichever
  // node leads it now, itself again once the controller gives it back).
  ws_client back(c.node(li).port());
  back.hello("bob");
  sender back_sends(back);
  back_sends.send_numbered(room, "back-", 1, 5, acked);
  check_history(back, room, acked, 200);
  check_history(client, room, acked, 201);
}

namespace {

/// A client writing to `room` from its own thread until stopped, each send retried as
/// `sender` does; what it acked, and the first send that failed for good.
class writer {
 public:
  writer(std::uint16_t port, std::string room)
      : client_(port), room_(std::move(room)), thread_([this] { run(); }) {}
  ~writer() { stop(); }
  /// Stops after the send under way; what was acked.
  std::vector<acked_event> stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return acked_;
  }
  std::size_t acked() const { return count_; }
  std::string failure() const { return failure_; }
  ws_client& client() { return client_; }

 private:
  void run() {
    client_.hello("writer");
    sender s(client_);
    for (int k = 1; !stop_; ++k) {
      auto text = "w" + std::to_string(k);
      auto ack = s.send(room_, text, 30s);
      if (ack.str("op") != "ack") {
        failure_ = ack.json();
        return;
      }
      acked_.push_back({ack.num("seq"), text});
      ++count_;
      // The client's pace: about 20 sends a second keeps the room's history within one page
      // of check_history (200 events).
      std::this_thread::sleep_for(50ms);
    }
  }

  ws_client client_;
  std::string room_;
  std::vector<acked_event> acked_;
  std::atomic<std::size_t> count_{0};
  std::atomic<bool> stop_{false};
  std::string failure_;
  std::thread thread_;
};

/// Waits until `w` has acked `n` more events than now (writes go on).
void wait_acks(writer& w, std::size_t n) {
  auto want = w.acked() + n;
  auto deadline = steady::now() + 30s;
  while (w.acked() < want && w.failure().empty() && steady::now() < deadline)
    std::this_thread::sleep_for(10ms);  // polling interval of the writer's count
  INFO(w.failure());
  REQUIRE(w.acked() >= want);
}

}  // namespace

TEST_CASE(
    "replicated: kaiwa move of a room's shard to a node that holds no replica while a client "
    "writes, then a drain of the new leader: every acked event once, in order",
    "[replication][moves]") {
  if (etcd_missing()) return;
  // Replication factor 2 on three nodes: each shard has a node to move to.
  replicated_cluster c(3, {"--replication-factor", "2", "--min-insync", "2"});
  const std::string room = "moving";
  auto leader = c.wait_leader(room, 0, "");
  auto replicas = c.replicas_of(room, 0);
  REQUIRE(replicas.size() == 2);
  std::string target;
  for (std::size_t i = 0; i < 3; ++i)
    if (std::find(replicas.begin(), replicas.end(), replicated_cluster::id(i)) == replicas.end())
      target = replicated_cluster::id(i);
  std::string follower = replicas[0] == leader ? replicas[1] : replicas[0];
  auto fi = replicated_cluster::index(follower);
  auto ti = replicated_cluster::index(target);
  auto admin = [&](std::size_t i) {
    return "http://127.0.0.1:" + std::to_string(c.node(i).admin_port());
  };

  // The client stays on the follower, which leads at the end; a second one on the target, whose
  // sessions the drain closes.
  writer w(c.node(fi).port(), room);
  wait_acks(w, 10);
  auto t0 = steady::now();
  auto moved = run_kaiwa(
      {"move", std::to_string(shard_of(room, test_shards)), target, "--admin", admin(ti)});
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
  INFO(moved.output);
  REQUIRE(moved.status == 0);
  WARN("kaiwa move to a new replica while writing took " << took.count() << " ms");
  CHECK(c.leader_of(room, fi) == target);
  auto now = c.replicas_of(room, fi);
  CHECK(std::find(now.begin(), now.end(), leader) == now.end());  // the old leader dropped
  CHECK(now.size() == 2);
  wait_acks(w, 10);  // writes go on at the new leader

  ws_client on_target(c.node(ti).port());
  on_target.hello("bob");
  t0 = steady::now();
  auto drained = run_kaiwa({"drain", target, "--grace", "0s", "--admin", admin(fi)});
  took = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
  INFO(drained.output);
  REQUIRE(drained.status == 0);
  WARN("kaiwa drain of the new leader while writing took " << took.count() << " ms");
  CHECK(c.leader_of(room, fi) != target);
  // Replication factor 2 and a spare node: the drained node's replica was re-created there.
  now = c.replicas_of(room, fi);
  CHECK(std::find(now.begin(), now.end(), target) == now.end());
  CHECK(now.size() == 2);
  CHECK(on_target.close_code(10s) == 4010);
  wait_acks(w, 10);
  // kaiwa cluster remove is for a member gone for good: refused while it is live.
  auto refused = run_kaiwa({"cluster", "remove", target, "--admin", admin(fi)});
  INFO(refused.output);
  CHECK(refused.status != 0);
  CHECK(refused.output.find(target + " is live") != std::string::npos);
  auto acked = w.stop();
  INFO(w.failure());
  CHECK(w.failure().empty());
  check_history(w.client(), room, acked, 900);
}

// A disk replaced (or a data dir wiped) under a node that keeps its id: etcd may still name it
// in sync (the leader never lowers a follower's acked end), so a failover could make it lead
// with an empty log, every acked event gone and the next send acked at seq 1 again (before the
// fix: every run). It refuses to start instead, and the third replica takes over with
// everything.
TEST_CASE("replicated: a node on a wiped data dir refuses to start while it holds replicas",
          "[replication]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  const std::string room = "lobby";
  auto leader = c.wait_leader(room, 0, "");
  auto li = replicated_cluster::index(leader);
  ws_client client(c.node(li).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "w", 1, 150, acked);  // one history page
  std::size_t fi = (li + 1) % 3;  // every node holds a replica of every shard (factor 3)
  REQUIRE(c.node(fi).stop(SIGKILL) == 128 + SIGKILL);
  std::filesystem::remove_all(c.dir(fi));
  std::vector<std::string> args = {"start",       "--listen",   "127.0.0.1:0", "--admin",
                                   "127.0.0.1:0", "--data-dir", c.dir(fi)};
  for (auto& f : c.flags(fi)) args.push_back(f);
  // Bounded: a node that does start (the bug) is stopped with Ctrl-C after 20 s.
  auto refused = run_kaiwa_on_terminal(args, "listening public=", 20s);
  INFO(refused.output);
  CHECK(refused.status != 0);
  CHECK(refused.output.find("data dir is new") != std::string::npos);

  REQUIRE(c.node(li).stop(SIGKILL) == 128 + SIGKILL);
  std::size_t third = (li + 2) % 3;
  CHECK(c.wait_leader(room, third, leader) == replicated_cluster::id(third));
  ws_client back(c.node(third).port());
  back.hello("bob");
  // One replica of three left: below min_insync, no writes, but every acked event is there.
  check_history(back, room, acked, 400);
}

namespace {

/// A process on the cluster port that is no member (without TLS, any local process can reach
/// it): it says hello as `as` and sends every shard an empty append of epoch 99.
void forge_appends(std::uint16_t cluster_port, const std::string& as) {
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  caf::actor_system sys{cfg};
  auto node = sys.middleman().remote_actor("127.0.0.1", cluster_port);
  REQUIRE(node);
  caf::scoped_actor self{sys};
  bool answered = false;
  self->request(*node, 5s, caf::atom("hello"), as, std::string("127.0.0.1:1"))
      .receive([&](std::string&, std::string&) { answered = true; }, [](caf::error&) {});
  CHECK(answered);
  for (std::uint32_t s = 0; s < test_shards; ++s) {
    cluster::append_message m;
    m.shard = s;
    m.epoch = 99;
    m.first = 1;
    self->send(*node, caf::atom("replin"), cluster::encode(m));
  }
  // Sent before the connection closes (the node handles a connection's messages in order).
  self->request(*node, 5s, caf::atom("hello"), as, std::string("127.0.0.1:1"))
      .receive([](std::string&, std::string&) {}, [](caf::error&) {});
}

}  // namespace

// Before: one such burst, under a new id, made every follower take epoch 99 (refusing the real
// leaders as stale, which stepped down: no shard took writes again until an epoch past 99);
// under a member's id, it also took that member's place, and closing the connection had its
// lease revoked and its shards failed over.
TEST_CASE("replicated: a process on the cluster port that is no member can't stop writes",
          "[replication][hostile]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  const std::string room = "lobby";
  auto leader = c.wait_leader(room, 0, "");
  auto li = replicated_cluster::index(leader);
  ws_client client(c.node(li).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_acked(room, "before", acked, 5s);
  for (std::size_t i = 0; i < 3; ++i) forge_appends(c.node(i).cluster_port(), "x9");
  forge_appends(c.node(li).cluster_port(), replicated_cluster::id((li + 1) % 3));
  client_sends.send_numbered(room, "after-", 0, 19, acked, 5s);
  CHECK(c.leader_of(room, li) == leader);
  check_history(client, room, acked, 100);
}

namespace {

/// Whether node `n`'s admin status says etcd's data is lost, and its metric agrees.
bool says_metadata_lost(node_process& n) {
  auto status = http_get(n.admin_port(), "/admin/v1/status").second;
  auto metrics = http_get(n.admin_port(), "/metrics").second;
  bool in_status = status.find("\"metadata_lost\":true") != std::string::npos;
  bool in_metric = metrics.find("\nkaiwa_cluster_metadata_lost 1\n") != std::string::npos;
  return in_status && in_metric;
}

bool says_metadata_fine(node_process& n) {
  auto status = http_get(n.admin_port(), "/admin/v1/status").second;
  auto metrics = http_get(n.admin_port(), "/metrics").second;
  return status.find("\"metadata_lost\":false") != std::string::npos &&
         metrics.find("\nkaiwa_cluster_metadata_lost 0\n") != std::string::npos;
}

/// Waits until `pred()` holds, at most `limit`.
template <class Pred>
bool within(std::chrono::milliseconds limit, Pred pred) {
  auto deadline = steady::now() + limit;
  while (!pred()) {
    if (steady::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);  // polling interval of the admin API
  }
  return true;
}

}  // namespace

TEST_CASE(
    "replicated: etcd restarted on an empty data dir while the nodes run is noticed and "
    "logged, no shard is placed anew over their data, and a restore from the backup brings "
    "failover back with every acked event",
    "[replication][wipe]") {
  if (etcd_missing()) return;
  replicated_cluster c(3);
  const std::string room = "wiped";
  auto leader = c.wait_leader(room, 0, "");
  auto li = replicated_cluster::index(leader);
  auto via = (li + 1) % 3;
  ws_client client(c.node(via).port());
  client.hello("alice");
  sender client_sends(client);
  std::vector<acked_event> acked;
  client_sends.send_numbered(room, "a", 1, 20, acked);

  // The routine backup (etcdctl snapshot save; here a copy of its data dir while stopped).
  auto data = c.etcd_dir(), backup = data + "-backup";
  c.etcd().stop();
  std::filesystem::copy(data, backup, std::filesystem::copy_options::recursive);
  c.etcd().start();
  client_sends.send_numbered(room, "b", 1, 5, acked);

  // etcd's data is lost: it starts again on an empty data dir.
  c.etcd().stop();
  std::filesystem::remove_all(data);
  auto wiped = steady::now();
  c.etcd().start();
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("node " << replicated_cluster::id(i));
    REQUIRE(within(10s, [&] { return says_metadata_lost(c.node(i)); }));
    CHECK(c.node(i).wait_output("metadata_lost", 1s));
    CHECK(c.node(i).output().find("restore etcd from its latest snapshot") != std::string::npos);
  }
  // And `kaiwa cluster` says it first.
  auto shown = run_kaiwa(
      {"cluster", "--admin", "http://127.0.0.1:" + std::to_string(c.node(via).admin_port())});
  INFO(shown.output);
  CHECK(shown.status == 0);
  CHECK(shown.output.find("METADATA LOST") != std::string::npos);
  WARN("etcd restarted empty -> every node says metadata lost after "
       << std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - wiped).count()
       << " ms");
  // The nodes register again and elect a controller in the new etcd, which places nothing.
  cluster::etcd_client etcd({{"127.0.0.1", c.etcd().client_port()}}, 1s);
  REQUIRE(within(10s, [&] {
    auto m = etcd.range("/kaiwa/members/");
    auto k = etcd.get("/kaiwa/controller");
    return m.ok() && m->kvs.size() == 3 && k.ok() && k->kvs.size() == 1;
  }));
  // The room's leader keeps its shard (its in-sync replicas are all up): writes go on.
  client_sends.send_numbered(room, "c", 1, 5, acked);
  std::this_thread::sleep_for(2s);  // a negative check: two controller rounds pass
  auto shards = etcd.range("/kaiwa/shards/");
  REQUIRE(shards.ok());
  CHECK(shards->kvs.empty());
  CHECK(etcd.get("/kaiwa/cluster")->kvs.empty());

  // Restored from the backup: the nodes find their cluster again by themselves.
  c.etcd().stop();
  std::filesystem::remove_all(data);
  std::filesystem::copy(backup, data, std::filesystem::copy_options::recursive);
  c.etcd().start();
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("node " << replicated_cluster::id(i));
    REQUIRE(within(15s, [&] { return says_metadata_fine(c.node(i)); }));
  }
  client_sends.send_numbered(room, "d", 1, 5, acked);
  // Failover works again: the room's leader is killed and another replica takes its writes
  // with every acked event.
  leader = c.wait_leader(room, via, "");
  li = replicated_cluster::index(leader);
  if (li == via) via = (li + 1) % 3;  // the client's node must survive the kill
  ws_client after(c.node(via).port());
  after.hello("bob");
  sender after_sends(after);
  REQUIRE(c.node(li).stop(SIGKILL) == 128 + SIGKILL);
  after_sends.send_acked(room, "after", acked, 30s);
  check_history(after, room, acked, 500);
}
