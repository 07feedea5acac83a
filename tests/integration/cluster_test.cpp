// Clusters of real node processes on loopback: chat across nodes, a node joining and a node
// draining under bench load, a node killed and restarted. In every case the bench's checker (or
// the test's own) must find no event lost, duplicated or reordered.

#include <catch2/catch.hpp>

#include <signal.h>
#include <simdjson.h>

#include <future>
#include <map>
#include <memory>
#include <thread>

#include "core/shard.hpp"
#include "tests/support/node_process.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa;
using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t test_shards = 128;

std::string addr(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

/// A cluster of `kaiwa start` processes sharing one temp dir, node i in data dir "n<i>".
class cluster {
 public:
  explicit cluster(std::size_t nodes, std::uint32_t shards = test_shards) : shards_(shards) {
    for (std::size_t i = 0; i < nodes; ++i) start(i);
  }

  node_process& node(std::size_t i) { return *nodes_.at(i); }
  std::size_t size() const { return nodes_.size(); }

  /// Starts node i (again, after a kill): the first founds the cluster, the others join it.
  void start(std::size_t i) {
    std::vector<std::string> flags = {"--node-id",   id(i),      "--cluster",
                                      "127.0.0.1:0", "--shards", std::to_string(shards_)};
    if (i > 0) {
      flags.push_back("--join");
      flags.push_back(addr(nodes_[i == 1 ? 0 : 1]->cluster_port()));
    }
    if (nodes_.size() <= i) nodes_.resize(i + 1);
    nodes_[i] = std::make_unique<node_process>(dir_.str() + "/" + id(i), flags);
  }

  static std::string id(std::size_t i) { return "n" + std::to_string(i + 1); }

  /// The cluster as node i sees it (GET /admin/v1/cluster).
  std::string view(std::size_t i) {
    return http_get(node(i).admin_port(), "/admin/v1/cluster").second;
  }

  /// Waits until node `via` sees `members` members up (or draining), no move queued or under
  /// way, and the shards spread evenly over the members not draining.
  void wait_settled(std::size_t members, std::size_t via = 0) {
    auto deadline = std::chrono::steady_clock::now() + 60s;
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
      last = view(via);
      if (settled(last, members)) return;
      std::this_thread::sleep_for(50ms);  // polling interval of the admin API
    }
    FAIL("cluster did not settle: " << last);
  }

  /// Waits until node `via` reports member `id` in `state` ("up", "down", "draining").
  void wait_member(const std::string& id, const std::string& state, std::size_t via) {
    auto deadline = std::chrono::steady_clock::now() + 30s;
    auto want = R"({"id":")" + id + R"(",)";
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
      last = view(via);
      auto at = last.find(want);
      if (at != std::string::npos &&
          last.find(R"("state":")" + state + "\"", at) < last.find('}', at))
        return;
      std::this_thread::sleep_for(50ms);  // polling interval of the admin API
    }
    FAIL("member " << id << " not " << state << ": " << last);
  }

  /// The owner of `room`'s shard, from node i's shard map.
  std::string owner_of(const std::string& room, std::size_t i = 0) {
    auto body = http_get(node(i).admin_port(), "/admin/v1/shards").second;
    simdjson::dom::parser p;
    auto owners = p.parse(body)["owners"].get_array();
    auto s = shard_of(room, shards_);
    return std::string(std::string_view(owners.at(s)["owner"]));
  }

  /// A room name whose shard `node_id` owns.
  std::string room_on(const std::string& node_id, const std::string& prefix) {
    for (int k = 0; k < 10'000; ++k) {
      auto room = prefix + std::to_string(k);
      if (owner_of(room) == node_id) return room;
    }
    FAIL("no room found on " << node_id);
    return {};
  }

 private:
  bool settled(const std::string& json, std::size_t members) {
    simdjson::dom::parser p;
    simdjson::dom::element c;
    if (p.parse(json).get(c)) return false;
    if (bool(c["moving"]) || std::uint64_t(c["moves_queued"]) != 0) return false;
    std::size_t seen = 0;
    std::uint64_t lo = ~0ull, hi = 0;
    for (auto m : c["members"].get_array()) {
      auto state = std::string_view(m["state"]);
      if (state == "down") return false;
      ++seen;
      if (state == "draining") continue;
      lo = std::min<std::uint64_t>(lo, m["shards"]);
      hi = std::max<std::uint64_t>(hi, m["shards"]);
    }
    return seen == members && hi - lo <= 1;
  }

  temp_dir dir_;
  std::uint32_t shards_;
  std::vector<std::unique_ptr<node_process>> nodes_;
};

/// Runs `kaiwa bench rooms` against node `target` in the background.
std::future<command_result> bench_rooms(node_process& target, double seconds) {
  std::vector<std::string> args = {"bench",      "rooms",
                                   "--rooms",    "100",
                                   "--duration", std::to_string(seconds),
                                   "--warmup",   "0.5",
                                   "--target",   addr(target.port()),
                                   "--admin",    addr(target.admin_port()),
                                   "--quiet"};
  return std::async(std::launch::async, [args] { return run_kaiwa(args); });
}

/// The bench's figure `name` from its text report.
double figure(const std::string& report, const std::string& name) {
  auto at = report.find(name);
  if (at == std::string::npos) return -1;
  return std::stod(report.substr(at + name.size()));
}

void check_clean(const command_result& r) {
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(figure(r.output, "order violations") == 0);
  CHECK(figure(r.output, "subscribers missing acked") == 0);
  CHECK(figure(r.output, "closed connections") == 0);
  CHECK(figure(r.output, "acked msgs/s") > 0);
}

std::string send_json(int id, const std::string& room, const std::string& text) {
  return R"({"op":"send","id":)" + std::to_string(id) + R"(,"room":")" + room + R"(","text":")" +
         text + "\"}";
}

/// Sends until acked, as clients do: `unavailable` (a node that has not yet heard of a move, a
/// room being moved) means "not applied, retry". Returns the ack.
message send_until_acked(ws_client& c, std::int64_t id, const std::string& room,
                         const std::string& text) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  for (;;) {
    auto reply = c.request(send_json(static_cast<int>(id), room, text), id);
    if (reply.str("code") != "unavailable" || std::chrono::steady_clock::now() > deadline)
      return reply;
    std::this_thread::sleep_for(20ms);  // the retry interval, as the bench's
  }
}

}  // namespace

TEST_CASE("clients on three nodes chat in one room: every one sees every event once, in order") {
  cluster c(3);
  c.wait_settled(3);
  std::vector<std::unique_ptr<ws_client>> clients;
  const std::string room = "lobby";
  for (std::size_t i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<ws_client>(c.node(i).port()));
    clients[i]->hello("user" + std::to_string(i));
    CHECK(clients[i]->request(R"({"op":"join","id":1,"room":"lobby"})", 1).str("op") == "joined");
  }
  // Presence is the room's, wherever its members are connected.
  auto presence = clients[0]->request(R"({"op":"presence","id":2,"room":"lobby"})", 2);
  CHECK(presence.array("users").size() == 3);

  constexpr int per_client = 30;
  for (int k = 0; k < per_client; ++k)
    for (std::size_t i = 0; i < 3; ++i)
      clients[i]->send(send_json(100 + k, room, "m" + std::to_string(i) + "-" + std::to_string(k)));
  // Every client sees the same 90 message events with consecutive seqs.
  std::vector<std::vector<std::string>> seen(3);
  for (std::size_t i = 0; i < 3; ++i) {
    std::int64_t last = -1;
    while (seen[i].size() < 3 * per_client) {
      auto m = clients[i]->next_where([](const message& m) { return m.str("op") == "event"; });
      if (m.str("type") != "message") continue;
      if (last >= 0) CHECK(m.num("seq") == last + 1);
      last = m.num("seq");
      seen[i].push_back(m.str("text"));
    }
  }
  CHECK(seen[0] == seen[1]);
  CHECK(seen[1] == seen[2]);
  // Each sender's own messages keep its order.
  for (std::size_t i = 0; i < 3; ++i) {
    int next = 0;
    for (auto& text : seen[0])
      if (text.starts_with("m" + std::to_string(i) + "-"))
        CHECK(text == "m" + std::to_string(i) + "-" + std::to_string(next++));
    CHECK(next == per_client);
  }

  // A kick reaches a session on another node than the room's and the kicker's.
  auto club = c.room_on("n3", "club-");
  CHECK(clients[0]
            ->request(R"({"op":"create","id":300,"room":")" + club +
                          R"(","private":true,"members":["user1"]})",
                      300)
            .str("op") == "created");
  CHECK(clients[1]->request(R"({"op":"join","id":301,"room":")" + club + "\"}", 301).str("op") ==
        "joined");
  CHECK(clients[0]
            ->request(R"({"op":"kick","id":302,"room":")" + club + R"(","user":"user1"})", 302)
            .str("op") == "ack");
  auto left = clients[1]->next_where([](const message& m) { return m.str("op") == "left"; });
  CHECK(left.str("reason") == "kicked");
  CHECK(clients[1]->request(send_json(303, club, "let me in"), 303).str("code") == "forbidden");

  // The admin CLI shows the members and the map through any node.
  auto members = run_kaiwa({"cluster", "--admin", addr(c.node(2).admin_port())});
  CHECK(members.status == 0);
  for (std::size_t i = 0; i < 3; ++i)
    CHECK(members.output.find(cluster::id(i)) != std::string::npos);
  auto shards = run_kaiwa({"shards", "--admin", addr(c.node(1).admin_port())});
  CHECK(shards.status == 0);
  CHECK(shards.output.find("epoch") != std::string::npos);
}

TEST_CASE("kaiwa move hands one shard over; its room keeps its log and its subscribers") {
  cluster c(2);
  c.wait_settled(2);
  auto room = c.room_on("n1", "moving-");
  auto shard = shard_of(room, test_shards);
  ws_client sub(c.node(1).port()), pub(c.node(0).port());
  sub.hello("sub");
  pub.hello("pub");
  CHECK(sub.request(R"({"op":"join","id":1,"room":")" + room + "\"}", 1).str("op") == "joined");
  for (int k = 0; k < 10; ++k)
    CHECK(pub.request(send_json(k, room, "before"), k).str("op") == "ack");

  auto moved =
      run_kaiwa({"move", std::to_string(shard), "n2", "--admin", addr(c.node(1).admin_port())});
  INFO(moved.output);
  REQUIRE(moved.status == 0);
  CHECK(c.owner_of(room, 0) == "n2");
  CHECK(c.owner_of(room, 1) == "n2");

  // The log moved whole, the subscription went along: seqs continue with no gap.
  auto ack = pub.request(send_json(50, room, "after"), 50);
  CHECK(ack.num("seq") == 12);  // 1: created, 2..11: before
  std::int64_t last = 0;
  for (;;) {
    auto m = sub.next_where([](const message& m) { return m.str("op") == "event"; });
    if (last) CHECK(m.num("seq") == last + 1);
    last = m.num("seq");
    if (m.str("text") == "after") break;
  }
  CHECK(last == 12);
  auto history =
      pub.request(R"({"op":"history","id":60,"room":")" + room + R"(","limit":100})", 60);
  CHECK(history.array("events").size() == 12);

  // The metrics count the move on both sides and the commands that crossed.
  auto metric = [&](std::size_t node, const std::string& name) {
    auto text = http_get(c.node(node).admin_port(), "/metrics").second;
    auto at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1.0 : std::stod(text.substr(at + name.size() + 2));
  };
  CHECK(metric(0, "kaiwa_cluster_shards_handed_over_total") >= 1);
  CHECK(metric(1, "kaiwa_cluster_shards_taken_over_total") >= 1);
  CHECK(metric(1, "kaiwa_cluster_remote_commands_sent_total") >= 1);  // sub's join
  CHECK(metric(0, "kaiwa_cluster_remote_commands_sent_total") >= 1);  // pub's sends after
  CHECK(metric(0, "kaiwa_cluster_members_up") == 2);

  auto bad = run_kaiwa({"move", "99999", "n2", "--admin", addr(c.node(0).admin_port())});
  CHECK(bad.status != 0);
  auto nobody = run_kaiwa({"move", "1", "nobody", "--admin", addr(c.node(0).admin_port())});
  CHECK(nobody.status != 0);
  CHECK(nobody.output.find("no member nobody") != std::string::npos);
}

TEST_CASE("a fourth node joins under bench load: shards move to it and nothing is lost") {
  cluster c(3, default_shards);
  c.wait_settled(3);
  auto load = bench_rooms(c.node(0), 6);
  std::this_thread::sleep_for(1500ms);  // let the load run before the join: part of the scenario
  c.start(3);
  auto r = load.get();
  check_clean(r);
  c.wait_settled(4, 3);
  auto view = c.view(3);
  INFO(view);
  CHECK(view.find(R"("id":"n4","address")") != std::string::npos);
  simdjson::dom::parser p;
  for (auto m : p.parse(view)["members"].get_array())
    CHECK(std::uint64_t(m["shards"]) == default_shards / 4);
}

TEST_CASE("a node drained under load hands every shard away, then closes its sessions") {
  cluster c(3);
  c.wait_settled(3);
  ws_client on_drained(c.node(2).port());
  on_drained.hello("leaving");
  auto load = bench_rooms(c.node(0), 5);
  std::this_thread::sleep_for(1500ms);  // the drain lands mid-run
  auto drained =
      run_kaiwa({"drain", "n3", "--grace", "0", "--admin", addr(c.node(0).admin_port())});
  INFO(drained.output);
  CHECK(drained.status == 0);
  // The drain asked for no grace: the sessions go at once, not after a default.
  CHECK(on_drained.close_code(std::chrono::milliseconds(3000)) == 4010);
  check_clean(load.get());
  c.wait_settled(3);
  auto view = c.view(1);
  INFO(view);
  CHECK(view.find(R"("id":"n3","address":")") != std::string::npos);
  CHECK(view.find(R"("state":"draining","shards":0)") != std::string::npos);
}

TEST_CASE(
    "a killed node's rooms are unavailable until it restarts; then every acked event is there") {
  cluster c(3);
  c.wait_settled(3);
  auto doomed = c.room_on("n3", "doomed-");
  auto safe = c.room_on("n2", "safe-");
  ws_client writer(c.node(0).port()), watcher(c.node(1).port());
  writer.hello("writer");
  watcher.hello("watcher");
  CHECK(watcher.request(R"({"op":"join","id":1,"room":")" + doomed + "\"}", 1).str("op") ==
        "joined");
  std::vector<std::int64_t> acked;
  for (int k = 0; k < 20; ++k)
    acked.push_back(writer.request(send_json(k, doomed, "t" + std::to_string(k)), k).num("seq"));

  // A subscription that followed its room onto n3 is n3's too.
  auto wanderer = c.room_on("n2", "wanderer-");
  for (int k = 0; shard_of(wanderer, test_shards) == shard_of(safe, test_shards); ++k)
    wanderer = c.room_on("n2", "wanderer-" + std::to_string(k) + "-");
  ws_client follower(c.node(0).port());
  follower.hello("follower");
  CHECK(follower.request(R"({"op":"join","id":1,"room":")" + wanderer + "\"}", 1).str("op") ==
        "joined");
  auto moved = run_kaiwa({"move", std::to_string(shard_of(wanderer, test_shards)), "n3", "--admin",
                          addr(c.node(0).admin_port())});
  REQUIRE(moved.status == 0);

  CHECK(c.node(2).stop(SIGKILL) == 128 + SIGKILL);
  // The watchers' subscriptions died with the node: they are told to resume.
  CHECK(watcher.close_code() == 4010);
  CHECK(follower.close_code() == 4010);
  // Once its node is seen down the room answers unavailable; other nodes' rooms carry on.
  c.wait_member("n3", "down", 0);
  CHECK(writer.request(send_json(100, doomed, "lost?"), 100).str("code") == "unavailable");
  auto still = writer.request(send_json(200, safe, "still here"), 200);
  INFO(still.json());
  CHECK(still.str("op") == "ack");

  c.start(2);
  c.wait_settled(3);
  ws_client reader(c.node(1).port());
  reader.hello("reader");
  auto joined = reader.request(R"({"op":"join","id":1,"room":")" + doomed + R"(","since":0})", 1);
  CHECK(joined.num("head") == acked.back());
  std::int64_t expect = 1;
  while (expect <= acked.back()) {
    auto m = reader.next_where([](const message& m) { return m.str("op") == "event"; });
    CHECK(m.num("seq") == expect++);
  }
  auto next = writer.request(send_json(300, doomed, "again"), 300);
  CHECK(next.num("seq") == acked.back() + 1);
}

TEST_CASE("without its coordinator the cluster serves on; changes wait until it is back") {
  cluster c(3);
  c.wait_settled(3);
  auto room = c.room_on("n3", "steady-");
  ws_client writer(c.node(1).port());
  writer.hello("writer");
  CHECK(writer.request(send_json(1, room, "before"), 1).str("op") == "ack");

  CHECK(c.node(0).stop(SIGKILL) == 128 + SIGKILL);
  c.wait_member("n1", "down", 1);
  // Traffic between the other members goes on with their copies of the map.
  CHECK(writer.request(send_json(2, room, "during"), 2).str("op") == "ack");
  auto refused = run_kaiwa({"move", std::to_string(shard_of(room, test_shards)), "n2", "--admin",
                            addr(c.node(1).admin_port())});
  CHECK(refused.status != 0);
  CHECK(refused.output.find("coordinator n1 is down") != std::string::npos);

  c.start(0);  // same id, same data dir: it reloads the map and dials the members
  c.wait_settled(3, 1);
  auto moved = run_kaiwa({"move", std::to_string(shard_of(room, test_shards)), "n2", "--admin",
                          addr(c.node(1).admin_port())});
  INFO(moved.output);
  CHECK(moved.status == 0);
  CHECK(send_until_acked(writer, 3, room, "after").num("seq") == 4);  // created, 3 messages
}
