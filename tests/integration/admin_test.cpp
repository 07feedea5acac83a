// The admin API and the admin CLI against a real node.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "tests/support/node_process.hpp"
#include "tests/support/raw_ws.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

std::string admin_url(const node_process& n) {
  return "http://127.0.0.1:" + std::to_string(n.admin_port());
}

}  // namespace

TEST_CASE("kaiwa status shows the node as a table and as JSON") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--node-id", "n-7"});
  auto table = run_kaiwa({"status", "--admin", admin_url(node)});
  CHECK(table.status == 0);
  CHECK(table.output.find("node              n-7") != std::string::npos);
  CHECK(table.output.find("fd_limit") != std::string::npos);
  CHECK(table.output.find(" MiB\n") != std::string::npos);  // rss_bytes, for people
  CHECK(table.output.find("uptime_s          ") != std::string::npos);
  auto json = run_kaiwa({"status", "--admin", admin_url(node), "--json"});
  CHECK(json.status == 0);
  CHECK(json.output.find(R"("node":"n-7")") != std::string::npos);
  CHECK(json.output.find(R"("rss_bytes":)") != std::string::npos);
  CHECK(json.output.find(" MiB") == std::string::npos);  // JSON keeps the raw numbers
}

TEST_CASE("the admin CLI says plainly when the node can't be reached") {
  auto r = run_kaiwa({"status", "--admin", "http://127.0.0.1:1"});
  CHECK(r.status == 1);
  CHECK(r.output.find("can't reach the node's admin API at 127.0.0.1:1: Connection refused") !=
        std::string::npos);
  // Something that is not a kaiwa admin listener: an HTTP error, not "can't reach".
  temp_dir dir;
  node_process node(dir.str() + "/data");
  auto public_port = "http://127.0.0.1:" + std::to_string(node.port());
  auto wrong = run_kaiwa({"status", "--admin", public_port});
  CHECK(wrong.status == 1);
  CHECK(wrong.output.find("answered HTTP 404") != std::string::npos);
  CHECK(wrong.output.find("can't reach") == std::string::npos);
}

TEST_CASE("every admin failure has one JSON shape and a proper status, unknown paths included") {
  temp_dir dir;
  auto token_file = dir.file("admin-token", "t0p\n");
  node_process node(dir.str() + "/data", {"--admin-token-file", token_file});
  auto port = node.admin_port();
  auto auth = std::pair<std::string, std::string>{"Authorization", "Bearer t0p"};
  auto shape = [](int status, const std::string& body, int want, const std::string& code) {
    INFO(body);
    CHECK(status == want);
    CHECK(body.starts_with(R"({"error":{"code":")" + code + R"(","message":")"));
    CHECK(body.find(R"("op")") == std::string::npos);
  };
  auto [s1, b1] = http_call(port, "GET", "/admin/v1/nosuch", {auth});
  shape(s1, b1, 404, "not_found");
  CHECK(b1.find(R"("hint":"GET / lists the admin endpoints")") != std::string::npos);
  std::vector<std::pair<std::string, std::string>> reply_headers;
  auto [s2, b2] =
      http_call(port, "DELETE", "/admin/v1/status", {auth, {"Kaiwa-Admin", "1"}}, &reply_headers);
  shape(s2, b2, 405, "method_not_allowed");
  // A 405 names the methods the path takes (RFC 9110).
  CHECK(std::find(reply_headers.begin(), reply_headers.end(),
                  std::pair<std::string, std::string>{"Allow", "GET"}) != reply_headers.end());
  auto [s3, b3] = http_call(port, "GET", "/admin/v1/move", {auth});
  shape(s3, b3, 405, "method_not_allowed");
  auto [s4, b4] = http_call(port, "GET", "/admin/v1/rooms/nowhere", {auth});
  shape(s4, b4, 404, "not_found");
  auto [s5, b5] = http_call(port, "GET", "/admin/v1/rooms/bad!name", {auth});
  shape(s5, b5, 400, "bad_request");
  auto [s6, b6] = http_call(port, "GET", "/admin/v1/status", {});
  shape(s6, b6, 401, "unauthorized");
  auto [s7, b7] = http_call(port, "GET", "/admin/v1/status", {auth, {"Origin", "null"}});
  shape(s7, b7, 403, "forbidden");
  auto [s8, b8] = http_call(port, "GET", "/admin/v1/cluster", {auth});
  shape(s8, b8, 404, "not_found");  // not a cluster member
  auto [s9, b9] =
      http_call(port, "POST", "/admin/v1/drain?grace=forever", {auth, {"Kaiwa-Admin", "1"}});
  shape(s9, b9, 400, "bad_request");
  CHECK(b9.find("not 'forever'") != std::string::npos);  // the value refused is named
  auto [s10, b10] =
      http_call(port, "POST", "/admin/v1/projections/nope/rebuild", {auth, {"Kaiwa-Admin", "1"}});
  shape(s10, b10, 404, "not_found");
  CHECK(b10.find("the projections are rooms, search") != std::string::npos);
}

TEST_CASE("admin CLI errors say what went wrong and what to do, by kind, with exit codes") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  auto admin = admin_url(node);
  auto addr = "127.0.0.1:" + std::to_string(node.admin_port());

  auto missing = run_kaiwa({"room", "x", "--admin", admin});
  CHECK(missing.status == 1);
  CHECK(missing.output.find("kaiwa: room 'x' not found on node " + addr) != std::string::npos);
  // Bad input is a usage error, said as such, not "can't reach the node".
  auto bad_name = run_kaiwa({"room", "bad name!", "--admin", admin});
  CHECK(bad_name.status == 2);
  CHECK(bad_name.output.find("'bad name!' is not a room name") != std::string::npos);
  CHECK(bad_name.output.find("can't reach") == std::string::npos);
  auto no_cluster = run_kaiwa({"shards", "--admin", admin});
  CHECK(no_cluster.status == 1);
  CHECK(no_cluster.output.find("this node is not a cluster member (node " + addr + "); ") !=
        std::string::npos);
  CHECK(no_cluster.output.find("--cluster") != std::string::npos);

  // A backup the destination refuses names the destination and the OS's reason.
  auto file = dir.file("a-file", "x");
  auto backup = run_kaiwa({"backup", file + "/sub", "--admin", admin});
  CHECK(backup.status == 1);
  CHECK(backup.output.find("can't create " + file + "/sub: Not a directory") != std::string::npos);
  auto onto_file = run_kaiwa({"backup", file, "--admin", admin});
  CHECK(onto_file.status == 1);
  CHECK(onto_file.output.find("kaiwa: " + file +
                              " is a file, not a directory; back up into a new "
                              "directory") != std::string::npos);

  // A second node on the same data dir: who has it, not RocksDB's lock error.
  auto second = run_kaiwa({"start", "--data-dir", dir.str() + "/data", "--listen", "127.0.0.1:0",
                           "--admin", "127.0.0.1:0"});
  CHECK(second.status == 1);
  CHECK(second.output.find("is in use by another kaiwa (pid " + std::to_string(node.pid()) + ")") !=
        std::string::npos);
  CHECK(second.output.find("LOCK") == std::string::npos);
}

TEST_CASE("bench and other commands name an unknown subcommand and list the valid ones") {
  auto r = run_kaiwa({"bench", "nosuch"});
  CHECK(r.status == 2);
  CHECK(r.output.find("kaiwa bench: unknown scenario 'nosuch'; one of fanout, rooms, conns") !=
        std::string::npos);
  auto none = run_kaiwa({"cert"});
  CHECK(none.status == 2);
  CHECK(none.output.find("kaiwa cert needs a command: one of ca, node") != std::string::npos);
}

TEST_CASE(
    "drain fails readiness, refuses new clients and closes sessions with 4010 after the grace") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client c(node.port());
  c.hello("alice");
  auto r = run_kaiwa({"drain", "--admin", admin_url(node), "--grace", "0.2"});
  CHECK(r.status == 0);
  CHECK(http_get(node.admin_port(), "/readyz").first == 503);
  CHECK(http_get(node.admin_port(), "/admin/v1/status").second.find(R"("draining":true)") !=
        std::string::npos);
  CHECK(c.close_code() == 4010);
  // The public listener keeps answering: a liveness check sees a live node, a readiness check
  // a node to take out of rotation, and a new client is told when to try again.
  CHECK(http_get(node.port(), "/healthz").first == 200);
  CHECK(http_get(node.port(), "/readyz").first == 503);
  raw_ws late(node.port(), false);
  CHECK_FALSE(late.try_upgrade());
  CHECK(late.handshake_reply().starts_with("HTTP/1.1 503"));
  CHECK(late.handshake_reply().find("Retry-After: 5") != std::string::npos);
}

TEST_CASE("with an admin token the admin API refuses requests without it") {
  temp_dir dir;
  auto token_file = dir.file("admin-token", "t0p\n");
  node_process node(dir.str() + "/data", {"--admin-token-file", token_file});
  auto denied = run_kaiwa({"status", "--admin", admin_url(node)});
  CHECK(denied.status == 1);
  CHECK(denied.output.find("needs an admin token") != std::string::npos);
  CHECK(denied.output.find("--admin-token-file") != std::string::npos);
  CHECK(denied.output.find("KAIWA_ADMIN_TOKEN") != std::string::npos);
  auto wrong = run_kaiwa({"status", "--admin", admin_url(node), "--admin-token-file",
                          dir.file("wrong-token", "t0q\n")});
  CHECK(wrong.status == 1);
  CHECK(wrong.output.find("the admin token is not this node's") != std::string::npos);
  CHECK(wrong.output.find("KAIWA_ADMIN_TOKEN") != std::string::npos);
  CHECK(
      run_kaiwa({"status", "--admin", admin_url(node), "--admin-token-file", token_file}).status ==
      0);
  CHECK(http_call(node.admin_port(), "GET", "/admin/v1/status", {{"Authorization", "Bearer t0p"}})
            .first == 200);
  CHECK(http_call(node.admin_port(), "GET", "/admin/v1/status", {{"Authorization", "Bearer t0q"}})
            .first == 401);
  CHECK(http_get(node.admin_port(), "/healthz").first == 200);  // probes need no token

  auto open_admin =
      run_kaiwa({"start", "--admin", "0.0.0.0:0", "--data-dir", dir.str() + "/other"});
  CHECK(open_admin.status != 0);
  CHECK(open_admin.output.find("KAIWA_ADMIN_TOKEN") != std::string::npos);
}

TEST_CASE(
    "the admin API refuses what a web page could send: a foreign Host, an Origin, a POST without "
    "Kaiwa-Admin") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--admin-hosts", "Ops.Example"});
  auto port = node.admin_port();
  // DNS rebinding: the page's own name, resolved to the node.
  auto rebound = http_call(port, "GET", "/admin/v1/status", {{"Host", "evil.example:8081"}});
  CHECK(rebound.first == 403);
  CHECK(rebound.second.find("--admin-hosts") != std::string::npos);
  CHECK(http_call(port, "GET", "/admin/v1/status", {{"Host", "localhost:8081"}}).first == 200);
  CHECK(http_call(port, "GET", "/admin/v1/status", {{"Host", "[::1]:8081"}}).first == 200);
  CHECK(http_call(port, "GET", "/admin/v1/status", {{"Host", "ops.example"}}).first == 200);
  CHECK(http_call(port, "GET", "/metrics", {{"Host", "ops.example.evil"}}).first == 403);
  // A cross-site form or fetch: browsers add Origin; a plain-text POST is a "simple" request.
  auto drain = http_call(
      port, "POST", "/admin/v1/drain",
      {{"Origin", "http://evil.example"}, {"Content-Type", "text/plain"}, {"Kaiwa-Admin", "1"}});
  CHECK(drain.first == 403);
  CHECK(http_call(port, "POST", "/admin/v1/drain", {{"Content-Type", "text/plain"}}).first == 403);
  CHECK(http_call(port, "GET", "/admin/v1/status", {{"Origin", "null"}}).first == 403);
  CHECK(http_get(port, "/readyz").first == 200);  // none of it drained the node
  CHECK(http_call(port, "GET", "/healthz", {{"Host", "lb.internal"}}).first == 200);
  CHECK(http_post(port, "/admin/v1/drain?grace=0").first == 202);
}

TEST_CASE(
    "a backup taken under write load restores into a node that serves every event acked before "
    "it") {
  temp_dir dir;
  auto backup = dir.str() + "/backup";
  std::int64_t acked_before_backup = 0;
  {
    node_process node(dir.str() + "/data");
    ws_client writer(node.port());
    writer.hello("writer");
    // Keep 50 sends in flight while the backup runs.
    int next_id = 0;
    for (; next_id < 50; ++next_id)
      writer.send(R"({"op":"send","id":)" + std::to_string(next_id) +
                  R"(,"room":"busy","text":"m"})");
    for (int i = 0; i < 500; ++i) {
      auto ack = writer.next_where([](const message& m) { return m.str("op") == "ack"; });
      acked_before_backup = ack.num("seq");
      writer.send(R"({"op":"send","id":)" + std::to_string(next_id++) +
                  R"(,"room":"busy","text":"m"})");
    }
    auto r = run_kaiwa({"backup", "--admin", admin_url(node), backup});
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK(r.output.find("backup: done") != std::string::npos);
    CHECK(run_kaiwa({"backup", "--admin", admin_url(node), backup}).status != 0);  // not empty
  }
  auto restored = dir.str() + "/restored";
  auto r = run_kaiwa({"restore", backup, "--data-dir", restored, "--json"});
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find(R"("dir":")" + restored + R"(","files":)") != std::string::npos);
  CHECK(run_kaiwa({"restore", backup, "--data-dir", restored}).status != 0);  // not empty

  node_process node(restored);
  ws_client reader(node.port());
  reader.hello("reader");
  auto head = reader.request(R"({"op":"join","id":1,"room":"busy"})", 1).num("head");
  REQUIRE(head >= acked_before_backup);
  std::int64_t expect = 1;
  for (std::int64_t after = 0; after < acked_before_backup;) {
    auto h = reader.request(R"({"op":"history","id":2,"room":"busy","limit":200,"after":)" +
                                std::to_string(after) + "}",
                            2);
    for (auto e : h.array("events")) {
      REQUIRE(std::int64_t(e["seq"]) == expect++);
      after = std::int64_t(e["seq"]);
    }
  }
}

TEST_CASE("kaiwa room shows head, owner, members and live subscribers; snapshot writes one") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client alice(node.port());
  alice.hello("alice");
  alice.request(
      R"({"op":"create","id":1,"room":"ops","private":true,"members":["bob"],"topic":"t"})", 1);
  alice.request(R"({"op":"join","id":2,"room":"ops"})", 2);
  auto r = run_kaiwa({"room", "ops", "--admin", admin_url(node)});
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("owner             alice") != std::string::npos);
  CHECK(r.output.find("members           alice, bob") != std::string::npos);
  CHECK(r.output.find("subscribers       alice") != std::string::npos);
  CHECK(r.output.find("room 'ops' is in shard ") != std::string::npos);
  CHECK(r.output.find(", served by node kaiwa-1") != std::string::npos);
  CHECK(r.output.find(" ago\n") != std::string::npos);  // last_activity_ms, for people
  auto json = run_kaiwa({"room", "ops", "--admin", admin_url(node), "--json"});
  // The room's fields, not the protocol's.
  CHECK(json.output.starts_with(R"({"room":"ops","shard":)"));
  CHECK(json.output.find(R"("head":1)") != std::string::npos);
  CHECK(json.output.find(R"("node":"kaiwa-1")") != std::string::npos);
  CHECK(json.output.find(R"("op")") == std::string::npos);
  CHECK(json.output.find(R"("id")") == std::string::npos);
  ws_client writer(node.port());  // one more event, then a snapshot on demand
  writer.hello("alice");
  writer.request(R"({"op":"send","id":3,"room":"ops","text":"x"})", 3);
  auto snap = http_post(node.admin_port(), "/admin/v1/snapshot/ops");
  CHECK(snap.first == 200);
  CHECK(snap.second.find(R"("head":2)") != std::string::npos);
  CHECK(http_post(node.admin_port(), "/admin/v1/snapshot/nowhere").first == 404);
  CHECK(http_get(node.admin_port(), "/admin/v1/snapshot/ops").first == 405);
  auto missing = run_kaiwa({"room", "nowhere", "--admin", admin_url(node)});
  CHECK(missing.status == 1);
  CHECK(missing.output.find("room 'nowhere' not found") != std::string::npos);
}

TEST_CASE("kaiwa top, not on a terminal, prints plain snapshots: no escape codes, human units") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  auto r = run_kaiwa({"top", "--admin", admin_url(node), "--iterations", "2"});
  INFO(r.output);
  CHECK(r.status == 0);
  auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (auto at = r.output.find(what); at != std::string::npos; at = r.output.find(what, at + 1))
      ++n;
    return n;
  };
  CHECK(count("kaiwa top  node 127.0.0.1:") == 2);
  CHECK(count("FRAMES IN/S") == 2);
  CHECK(count(" MiB\n") == 2);  // the RSS
  CHECK(r.output.find('\x1b') == std::string::npos);
  auto json = run_kaiwa({"top", "--admin", admin_url(node), "--iterations", "1", "--json"});
  CHECK(json.status == 0);
  CHECK(json.output.find(R"({"connections":0,"frames_in_per_s":)") == 0);
  CHECK(json.output.find(R"("rss_bytes":)") != std::string::npos);  // raw numbers in JSON
}

TEST_CASE(
    "kaiwa top on a terminal redraws in place on the alternate screen and restores it on "
    "Ctrl-C") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  // A frame drawn, then Ctrl-C.
  auto r = run_kaiwa_on_terminal({"top", "--admin", admin_url(node)}, "HOTTEST ROOMS", 20s);
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.starts_with("\x1b[?1049h"));  // the alternate screen
  auto home = r.output.find("\x1b[H");         // each frame from the top-left corner
  REQUIRE(home != std::string::npos);
  CHECK(r.output.find("FRAMES IN/S", home) != std::string::npos);
  CHECK(r.output.find("\x1b[J") != std::string::npos);  // what was below cleared
  auto restored = r.output.rfind("\x1b[?1049l");
  REQUIRE(restored != std::string::npos);
  CHECK(restored > r.output.rfind("\x1b[H"));  // after the last frame
  CHECK(r.output.find("\x1b[?25h", r.output.rfind("\x1b[H")) != std::string::npos);  // cursor

  // An unreachable node: the screen says so and keeps trying until Ctrl-C.
  auto gone = run_kaiwa_on_terminal({"top", "--admin", "http://127.0.0.1:1"}, "last error", 20s);
  CHECK(gone.status == 0);
  CHECK(gone.output.find("node unreachable, retrying") != std::string::npos);
  CHECK(gone.output.find("\x1b[?1049l") != std::string::npos);
}

TEST_CASE("kaiwa top keeps retrying a node that can't be reached, saying so with the error") {
  auto r = run_kaiwa({"top", "--admin", "http://127.0.0.1:1", "--iterations", "2"});
  INFO(r.output);
  CHECK(r.status == 1);  // the last refresh found no node
  std::size_t n = 0;
  for (auto at = r.output.find("node unreachable, retrying"); at != std::string::npos;
       at = r.output.find("node unreachable, retrying", at + 1))
    ++n;
  CHECK(n == 2);
  CHECK(r.output.find("last error: can't reach the node's admin API at 127.0.0.1:1") !=
        std::string::npos);
}

TEST_CASE("each connection's open and close is logged, as JSON when asked, with the close reason") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--log-format", "json"});
  {
    ws_client c(node.port());
    c.hello("alice");
    for (int i = 0; i < 12; ++i) c.send("garbage");  // closed with 4000
    CHECK(c.close_code() == 4000);
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (node.output().find(R"("event":"connection_closed")") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  auto out = node.output();
  CHECK(out.find(R"("level":"info","event":"connection_opened","conn":1,"peer":"127.0.0.1:)") !=
        std::string::npos);
  CHECK(out.find(R"("event":"connection_closed","conn":1,"user":"alice","reason":"abuse")") !=
        std::string::npos);
}

TEST_CASE("hot rooms lists the rooms appending the most events in the last second") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client c(node.port());
  c.hello("alice");
  auto deadline = std::chrono::steady_clock::now() + 10s;
  std::string hot;
  for (int id = 1; std::chrono::steady_clock::now() < deadline; ++id) {
    c.request(R"({"op":"send","id":)" + std::to_string(id) + R"(,"room":"busy","text":"x"})", id);
    hot = http_get(node.admin_port(), "/admin/v1/hot-rooms").second;
    if (hot.find(R"("room":"busy")") != std::string::npos) break;
  }
  CHECK(hot.find(R"("room":"busy","events_per_s":)") != std::string::npos);
}

TEST_CASE("the admin listener's root lists its endpoints (the banner prints that URL)") {
  temp_dir dir;
  node_process node(dir.str());
  auto [status, body] = http_get(node.admin_port(), "/");
  CHECK(status == 200);
  for (auto endpoint : {"/admin/v1/status", "/admin/v1/projections", "/metrics", "Kaiwa-Admin"})
    CHECK(body.find(endpoint) != std::string::npos);
}
