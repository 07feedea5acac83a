// Clusters of real node processes on loopback: chat across nodes, a node joining and a node
// draining under bench load, a node killed and restarted. In every case the bench's checker (or
// the test's own) must find no event lost, duplicated or reordered.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "core/shard.hpp"
#include "tests/support/node_process.hpp"
#include "tests/support/tls.hpp"
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
  /// Members speaking mutual TLS with the certificates in `certs` (`kaiwa cert`: ca.pem and
  /// n<i>.pem, n<i>-key.pem), each started with `extra` flags too.
  cluster(std::size_t nodes, std::string certs, std::vector<std::string> extra = {})
      : shards_(test_shards), certs_(std::move(certs)), extra_(std::move(extra)) {
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
    if (!certs_.empty())
      flags.insert(flags.end(), {"--cluster-ca", certs_ + "/ca.pem", "--cluster-cert",
                                 certs_ + "/" + id(i) + ".pem", "--cluster-key",
                                 certs_ + "/" + id(i) + "-key.pem"});
    flags.insert(flags.end(), extra_.begin(), extra_.end());
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
  std::string certs_;
  std::vector<std::string> extra_;
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
  return c.request_while_unavailable(send_json(static_cast<int>(id), room, text), id);
}

/// Waits (bounded) until the peer ends the stream on `fd`; false if it is still open after 10 s.
bool closed_by_peer(int fd) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[512];
    if (::recv(fd, buf, sizeof buf, 0) <= 0) return true;
  }
  return false;
}

/// The resident set of process `pid` in bytes, from /proc.
std::uint64_t rss_bytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("VmRSS:")) return std::stoull(line.substr(6)) * 1024;
  return 0;
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
  // Moving it where it is: said so, and a success.
  auto again =
      run_kaiwa({"move", std::to_string(shard), "n2", "--admin", addr(c.node(0).admin_port())});
  CHECK(again.status == 0);
  CHECK(again.output.find("shard " + std::to_string(shard) + " is already on n2") !=
        std::string::npos);
  // Asked of any member, `kaiwa room` names the room's shard and the node serving it.
  auto where = run_kaiwa({"room", room, "--admin", addr(c.node(0).admin_port())});
  CHECK(where.output.find("room '" + room + "' is in shard " + std::to_string(shard) +
                          ", served by node n2") != std::string::npos);

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
  // The only room moved with its shard, and the room counts say so on both sides.
  CHECK(metric(0, "kaiwa_rooms_on_disk") == 0);
  CHECK(metric(1, "kaiwa_rooms_on_disk") == 1);

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

TEST_CASE("a member that reaches a new node late still hands it its shards: moves are retried") {
  cluster c(3);
  c.wait_settled(3);
  // n3 is stopped while n4 joins: the coordinator admits n4 and asks n3 for shards, and n3 reads
  // that request before it has dialled n4 (it dials it on the map that came just before).
  c.node(2).pause();
  c.start(3);
  c.wait_member("n4", "up", 0);
  c.node(2).signal(SIGCONT);
  c.wait_settled(4, 3);
  auto view = c.view(0);
  INFO(view);
  simdjson::dom::parser p;
  auto parsed = p.parse(view);
  CHECK(std::uint64_t(parsed["moves_failed"]) == 0);
  for (auto m : parsed["members"].get_array()) CHECK(std::uint64_t(m["shards"]) == test_shards / 4);
}

TEST_CASE("a node joining through a member that is itself still joining is admitted") {
  cluster c(1);
  c.wait_settled(1);
  // n2 can't reach the stopped coordinator yet, so it answers n3's hello without a map.
  c.node(0).pause();
  c.start(1);
  c.start(2);
  CHECK(c.node(1).wait_output("cluster_member_up node=n3", 30s));
  c.node(0).signal(SIGCONT);
  c.wait_settled(3);
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

TEST_CASE("a dead node's subscriptions to rooms elsewhere end without jamming those rooms") {
  // The owner drops a dead member's sessions' subscriptions with one `disconnect` each; these
  // must count into the room's backlog like every command, or taking them out wraps the count
  // and the room answers "too many commands queued" for good (a tester found it: every room a
  // killed node's sessions had joined, refused until its owner restarted).
  cluster c(2);
  c.wait_settled(2);
  auto room = c.room_on("n1", "busy-");
  ws_client writer(c.node(0).port());
  writer.hello("writer");
  CHECK(writer.request(send_json(1, room, "before"), 1).str("op") == "ack");
  {
    ws_client watcher(c.node(1).port());
    watcher.hello("watcher");
    CHECK(watcher.request(R"({"op":"join","id":1,"room":")" + room + "\"}", 1).str("op") ==
          "joined");
    CHECK(c.node(1).stop(SIGKILL) == 128 + SIGKILL);
  }
  c.wait_member("n2", "down", 0);
  for (int k = 2; k < 12; ++k) {
    auto ack = writer.request(send_json(k, room, "after"), k);
    INFO(ack.json());
    CHECK(ack.str("op") == "ack");
  }
  ws_client reader(c.node(0).port());
  reader.hello("reader");
  CHECK(reader.request(R"({"op":"join","id":1,"room":")" + room + "\"}", 1).str("op") == "joined");
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

TEST_CASE("kaiwa cert makes a CA and node certificates: keys 0600, nothing overwritten") {
  temp_dir dir;
  auto certs = dir.str() + "/ca", n1 = dir.str() + "/n1";
  REQUIRE(run_kaiwa({"cert", "ca", "--out", certs}).status == 0);
  auto node = run_kaiwa({"cert", "node", "--ca", certs, "--name", "n1", "--out", n1});
  INFO(node.output);
  REQUIRE(node.status == 0);
  auto mode = [](const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 0777;
  };
  CHECK(mode(certs + "/ca-key.pem") == 0600);
  CHECK(mode(n1 + "/n1-key.pem") == 0600);
  CHECK(mode(n1 + "/n1.pem") == 0644);
  // The node's directory has the CA certificate, never the CA key.
  CHECK(std::filesystem::exists(n1 + "/ca.pem"));
  CHECK(!std::filesystem::exists(n1 + "/ca-key.pem"));
  // A second run would replace a CA or a node's key: refused.
  auto again = run_kaiwa({"cert", "ca", "--out", certs});
  CHECK(again.status != 0);
  CHECK(again.output.find("never overwrites") != std::string::npos);
  CHECK(run_kaiwa({"cert", "node", "--ca", certs, "--name", "n1", "--out", n1}).status != 0);
  CHECK(run_kaiwa({"cert", "node", "--ca", n1, "--name", "n2", "--out", n1}).status != 0);
}

TEST_CASE("a cluster listener off loopback needs certificates; bad ones stop start-up") {
  temp_dir dir;
  auto a = dir.str() + "/a", b = dir.str() + "/b";
  make_cluster_certs(a, 2);
  make_cluster_certs(b, 1);
  auto start = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"start",       "--data-dir",  dir.str() + "/data",
                                     "--listen",    "127.0.0.1:0", "--admin",
                                     "127.0.0.1:0", "--node-id",   "n1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_kaiwa(args);
  };
  auto open = start({"--cluster", "0.0.0.0:0"});
  CHECK(open.status != 0);
  CHECK(open.output.find("kaiwa cert ca") != std::string::npos);
  auto partial = start({"--cluster", "127.0.0.1:0", "--cluster-ca", a + "/ca.pem"});
  CHECK(partial.status != 0);
  CHECK(partial.output.find("needs all three") != std::string::npos);
  auto other_ca = start({"--cluster", "127.0.0.1:0", "--cluster-ca", a + "/ca.pem",
                         "--cluster-cert", b + "/n1.pem", "--cluster-key", b + "/n1-key.pem"});
  CHECK(other_ca.status != 0);
  CHECK(other_ca.output.find("does not verify") != std::string::npos);
  auto wrong_key = start({"--cluster", "127.0.0.1:0", "--cluster-ca", a + "/ca.pem",
                          "--cluster-cert", a + "/n1.pem", "--cluster-key", a + "/n2-key.pem"});
  CHECK(wrong_key.status != 0);
  CHECK(wrong_key.output.find("is not the key of") != std::string::npos);
  auto missing = start({"--cluster", "127.0.0.1:0", "--cluster-ca", a + "/nope.pem",
                        "--cluster-cert", a + "/n1.pem", "--cluster-key", a + "/n1-key.pem"});
  CHECK(missing.status != 0);
  CHECK(missing.output.find("can't load the cluster CA") != std::string::npos);
}

TEST_CASE("with certificates, clients on three nodes chat in one room across nodes") {
  temp_dir certs;
  make_cluster_certs(certs.str(), 3);
  cluster c(3, certs.str());
  c.wait_settled(3);
  std::vector<std::unique_ptr<ws_client>> clients;
  for (std::size_t i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<ws_client>(c.node(i).port()));
    clients[i]->hello("user" + std::to_string(i));
    CHECK(clients[i]->request(R"({"op":"join","id":1,"room":"lobby"})", 1).str("op") == "joined");
  }
  constexpr int per_client = 10;
  for (int k = 0; k < per_client; ++k)
    for (std::size_t i = 0; i < 3; ++i)
      clients[i]->send(send_json(100 + k, "lobby", "m" + std::to_string(i)));
  for (std::size_t i = 0; i < 3; ++i) {
    std::map<std::string, int> from;
    for (int n = 0; n < 3 * per_client;) {
      auto m = clients[i]->next_where([](const message& m) { return m.str("op") == "event"; });
      if (m.str("type") != "message") continue;
      from[m.str("text")] += 1;
      ++n;
    }
    for (std::size_t j = 0; j < 3; ++j) CHECK(from["m" + std::to_string(j)] == per_client);
  }
  // Without --cluster-ca etc. the nodes would have logged that they run without TLS.
  CHECK(c.node(0).output().find("cluster_without_tls") == std::string::npos);
}

TEST_CASE("a node without the cluster's certificate is refused and never gets shards") {
  temp_dir certs, other, data;
  make_cluster_certs(certs.str(), 2);
  make_cluster_certs(other.str(), 3);
  cluster c(2, certs.str());
  c.wait_settled(2);
  auto seed = addr(c.node(0).cluster_port());
  // One with no certificate at all (plain BASP), one with a certificate of another CA.
  node_process plain(data.str() + "/plain",
                     {"--node-id", "plain", "--cluster", "127.0.0.1:0", "--join", seed});
  node_process foreign(data.str() + "/foreign",
                       {"--node-id", "n3", "--cluster", "127.0.0.1:0", "--join", seed,
                        "--cluster-ca", other.str() + "/ca.pem", "--cluster-cert",
                        other.str() + "/n3.pem", "--cluster-key", other.str() + "/n3-key.pem"});
  CHECK(plain.wait_output("cluster_dial_failed", 20s));
  CHECK(foreign.wait_output("cluster_dial_failed", 20s));
  CHECK(c.node(0).wait_output("cluster_tls_refused", 20s));
  // And the members, dialled by them, never took them in: still two members, all shards theirs.
  c.wait_settled(2);
  auto view = c.view(0);
  CHECK(view.find("\"plain\"") == std::string::npos);
  CHECK(view.find("\"n3\"") == std::string::npos);
  auto listed = run_kaiwa({"cluster", "--admin", addr(c.node(1).admin_port())});
  CHECK(listed.output.find("plain") == std::string::npos);
  for (auto* n : {&plain, &foreign}) {
    auto metrics = http_get(n->admin_port(), "/metrics").second;
    CHECK(metrics.find("\nkaiwa_cluster_shards_owned 0") != std::string::npos);
    // Connected to no member (counting itself once it has a map, which it never gets).
    CHECK(metrics.find("\nkaiwa_cluster_members_up 2") == std::string::npos);
    CHECK(metrics.find("\nkaiwa_cluster_map_epoch 0") != std::string::npos);
  }
}

TEST_CASE("a plain TCP peer declaring a 4 GiB BASP payload is refused before CAF reads it") {
  temp_dir certs;
  make_cluster_certs(certs.str(), 2);
  cluster c(2, certs.str(), {"--failure-timeout", "1"});
  c.wait_settled(2);
  auto& n1 = c.node(0);
  auto before = rss_bytes(n1.pid());
  REQUIRE(before > 0);

  // A BASP client handshake header (32 bytes) whose payload length is 2^32 - 1. Over plain
  // BASP the node would size its read buffer to it; over TLS it is not a ClientHello.
  int fd = tcp_connect(n1.cluster_port());
  REQUIRE(fd >= 0);
  unsigned char header[32] = {0x01, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
  REQUIRE(::send(fd, header, sizeof header, MSG_NOSIGNAL) == sizeof header);
  // The node hangs up on it (TLS alert or close).
  CHECK(closed_by_peer(fd));
  ::close(fd);
  CHECK(n1.wait_output("cluster_tls_refused", 20s));
  auto after = rss_bytes(n1.pid());
  INFO("RSS before " << before << " after " << after);
  CHECK(after < before + 64 * 1024 * 1024);
  INFO(n1.output());

  // The members stay up through two failure timeouts (an observation window, not a wait), and
  // traffic still crosses between them.
  auto window = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < window) {
    auto view = c.view(0);
    CHECK(view.find(R"("state":"down")") == std::string::npos);
    std::this_thread::sleep_for(100ms);  // sampling interval of the observation
  }
  auto room = c.room_on("n1", "after-");
  ws_client far(c.node(1).port());
  far.hello("far");
  CHECK(send_until_acked(far, 1, room, "still here").str("op") == "ack");
  CHECK(n1.output().find("cluster_member_down") == std::string::npos);
  CHECK(c.node(1).output().find("cluster_member_down") == std::string::npos);
}

TEST_CASE("silent connections to the cluster port are closed past the handshake timeout or cap") {
  temp_dir certs;
  make_cluster_certs(certs.str(), 1);
  cluster c(1, certs.str(), {"--failure-timeout", "1"});
  auto port = c.node(0).cluster_port();
  // One that stays silent past the handshake timeout (the failure timeout, 1 s here) is closed
  // when the next connection arrives. The wait is the timeout under test.
  int silent = tcp_connect(port);
  REQUIRE(silent >= 0);
  std::this_thread::sleep_for(1500ms);
  int next = tcp_connect(port);
  REQUIRE(next >= 0);
  CHECK(closed_by_peer(silent));
  ::close(silent);
  // Past 64 pending handshakes the oldest goes: 64 more silent ones close `next`.
  std::vector<int> many;
  for (int i = 0; i < 64; ++i) many.push_back(tcp_connect(port));
  CHECK(closed_by_peer(next));
  ::close(next);
  for (int fd : many) ::close(fd);
}

namespace {

/// Asks `request` until `pred` holds for the reply (read models apply events a little after
/// their ack, and a moved shard's rooms are caught up on their new node).
message read_until(ws_client& c, const std::string& request, std::int64_t id,
                   const std::function<bool(const message&)>& pred) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (true) {
    auto m = c.request(request, id);
    if (pred(m)) return m;
    if (std::chrono::steady_clock::now() > deadline)
      FAIL("never: " << request << " -> " << m.json());
    std::this_thread::sleep_for(20ms);  // polling interval of the query
  }
}

bool partial(const message& m) { return m.has("partial"); }

}  // namespace

TEST_CASE("rooms and search gather from three nodes; one node down makes the reply partial") {
  cluster c(3);
  c.wait_settled(3);
  ws_client alice(c.node(0).port()), bob(c.node(1).port());
  alice.hello("alice");
  bob.hello("bob");
  std::vector<std::string> rooms;
  for (std::size_t i = 0; i < 3; ++i) {
    rooms.push_back(c.room_on(cluster::id(i), "span-"));
    CHECK(send_until_acked(alice, 10 + static_cast<int>(i), rooms.back(),
                           "spanning 会議 " + rooms.back())
              .str("op") == "ack");
  }
  // An invitation to a room on the third node reaches bob's session on the second.
  auto club = c.room_on("n3", "club-");
  CHECK(alice.request(R"({"op":"create","id":20,"room":")" + club + R"(","private":true})", 20)
            .str("op") == "created");
  CHECK(alice.request(R"({"op":"invite","id":21,"room":")" + club + R"(","user":"bob"})", 21)
            .str("op") == "ack");
  auto push = bob.next_where([](const message& m) { return m.str("op") == "invited"; });
  CHECK(push.str("room") == club);
  CHECK(push.str("by") == "alice");

  auto all_hits = [](const message& m) { return m.array("hits").size() == 3 && !partial(m); };
  read_until(alice, R"({"op":"search","id":30,"q":"会議"})", 30, all_hits);
  read_until(alice, R"({"op":"rooms","id":31})", 31,
             [](const message& m) { return m.array("rooms").size() == 4 && !partial(m); });
  read_until(bob, R"({"op":"rooms","id":32})", 32,
             [](const message& m) { return m.array("rooms").size() == 1 && !partial(m); });
  // Paging across nodes: one hit a page, every room once.
  std::set<std::string> paged;
  std::string before;
  for (int k = 0; k < 3; ++k) {
    auto m = alice.request(R"({"op":"search","id":33,"q":"spanning","limit":1)" +
                               (before.empty() ? "" : R"(,"before":")" + before + "\"") + "}",
                           33);
    REQUIRE(m.array("hits").size() == 1);
    paged.emplace(std::string_view(m.array("hits").at(0)["room"]));
    CHECK(m.root()["more"].get_bool().value() == (k < 2));
    before = m.str("next");
  }
  CHECK(paged.size() == 3);

  // A shard moved to another node brings its read data: nothing missing, nothing twice.
  auto shard = shard_of(rooms[0], test_shards);
  auto moved =
      run_kaiwa({"move", std::to_string(shard), "n2", "--admin", addr(c.node(0).admin_port())});
  INFO(moved.output);
  REQUIRE(moved.status == 0);
  read_until(alice, R"({"op":"search","id":34,"q":"会議"})", 34, all_hits);

  // The third node stops answering (stopped, its connections open): after the gather timeout
  // (2 s, within the failure timeout) the reply comes without its part.
  c.node(2).pause();
  auto started = std::chrono::steady_clock::now();
  auto slow = alice.request(R"({"op":"search","id":35,"q":"会議"})", 35);
  auto waited = std::chrono::steady_clock::now() - started;
  c.node(2).signal(SIGCONT);
  CHECK(partial(slow));
  CHECK(slow.array("hits").size() == 2);
  CHECK(waited >= 1900ms);
  CHECK(waited < 4s);

  // The third node dies: what it owns is missing, and the replies say so.
  c.node(2).stop(SIGKILL);
  c.wait_member("n3", "down", 0);
  auto s = alice.request(R"({"op":"search","id":40,"q":"会議"})", 40);
  CHECK(s.str("op") == "results");
  CHECK(partial(s));
  CHECK(s.array("hits").size() == 2);
  auto r = alice.request(R"({"op":"rooms","id":41})", 41);
  CHECK(r.str("op") == "rooms");
  CHECK(partial(r));
  CHECK(r.array("rooms").size() == 2);
}

TEST_CASE(
    "a room is listed, archived and deleted through any member; its remote subscribers are "
    "told") {
  cluster c(2);
  c.wait_settled(2);
  auto room = c.room_on("n2", "managed-");
  ws_client sub(c.node(0).port()), pub(c.node(0).port());
  sub.hello("sub");
  pub.hello("pub");
  REQUIRE(pub.request(send_json(1, room, "hello"), 1).str("op") == "ack");
  REQUIRE(sub.request(R"({"op":"join","id":1,"room":")" + room + "\"}", 1).str("op") == "joined");

  // Each node lists the shards it owns: the room is n2's.
  auto listed_on = [&](std::size_t i) {
    return http_get(c.node(i).admin_port(), "/admin/v1/rooms?limit=1000").second;
  };
  auto deadline = std::chrono::steady_clock::now() + 15s;
  while (listed_on(1).find(room) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);  // the projector applies a little after the ack
  CHECK(listed_on(1).find(R"("owner_node":"n2")") != std::string::npos);
  CHECK(listed_on(0).find(room) == std::string::npos);

  // Commands to it go to its owner, whichever member is asked.
  CHECK(run_kaiwa({"room", "archive", room, "--admin", addr(c.node(0).admin_port())}).status == 0);
  auto archived = sub.next_where([](const message& m) { return m.str("op") == "archived"; });
  CHECK(archived.str("room") == room);
  CHECK(pub.request(send_json(2, room, "refused"), 2).str("code") == "archived");

  auto del = run_kaiwa({"room", "delete", room, "--yes", "--admin", addr(c.node(0).admin_port())});
  INFO(del.output);
  CHECK(del.status == 0);
  CHECK(sub.next_where([](const message& m) { return m.str("op") == "deleted"; }).str("room") ==
        room);
  CHECK(sub.next_where([](const message& m) { return m.str("op") == "left"; }).str("reason") ==
        "deleted");
  auto h = pub.request(R"({"op":"history","id":3,"room":")" + room + "\"}", 3);
  CHECK(h.str("code") == "not_found");
  CHECK(pub.request(send_json(4, room, "new"), 4).num("seq") == 2);  // a new room, not archived
}
