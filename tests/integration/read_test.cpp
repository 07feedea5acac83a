// The read side on a real node over real WebSockets: room lists with unread counts across a
// restart, invitations pushed to live sessions, search end to end (Japanese), a rebuild while
// serving, SIGKILL under writes (every acked message findable exactly once), the projections'
// figures in the admin API and the CLI, and --projections=off.

#include <catch2/catch.hpp>

#include <signal.h>

#include <functional>
#include <map>
#include <set>
#include <thread>

#include "tests/support/node_process.hpp"
#include "tests/support/raw_ws.hpp"
#include "tests/support/ws_client.hpp"
#include "tests/support/ws_frames.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

/// Asks `request` (with id `id`) until `pred` holds for the reply, or fails after `limit`.
/// Projections apply events a little after their ack, so reads are eventually what was written.
message until(ws_client& c, const std::string& request, std::int64_t id,
              const std::function<bool(const message&)>& pred,
              std::chrono::milliseconds limit = 15s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    auto m = c.request(request, id);
    if (pred(m)) return m;
    if (std::chrono::steady_clock::now() > deadline) {
      FAIL("never: " << request << " -> " << m.json());
    }
    std::this_thread::sleep_for(20ms);  // polling interval of the query
  }
}

/// The item of `room` in a rooms reply; a null element when absent.
std::optional<simdjson::dom::element> room_item(const message& m, const std::string& room) {
  for (auto r : m.array("rooms"))
    if (std::string_view(r["room"]) == room) return r;
  return std::nullopt;
}

std::int64_t unread(const message& m, const std::string& room) {
  auto r = room_item(m, room);
  return r ? std::int64_t((*r)["unread"]) : -1;
}

/// Waits until the admin API lists every projection live.
void wait_live(node_process& node) {
  auto deadline = std::chrono::steady_clock::now() + 30s;
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    last = http_get(node.admin_port(), "/admin/v1/projections").second;
    if (last.find("\"state\":\"live\"") != std::string::npos &&
        last.find("catching_up") == std::string::npos &&
        last.find("rebuilding") == std::string::npos)
      return;
    std::this_thread::sleep_for(20ms);  // polling interval of the admin API
  }
  FAIL("projections never live: " << last);
}

std::string send_json(int id, const std::string& room, const std::string& text) {
  return R"({"op":"send","id":)" + std::to_string(id) + R"(,"room":")" + room + R"(","text":")" +
         text + "\"}";
}

}  // namespace

TEST_CASE("rooms lists a user's rooms with unread counts, newest first, and they survive a restart",
          "[read]") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  {
    node_process node(data);
    ws_client alice(node.port()), bob(node.port());
    alice.hello("alice");
    bob.hello("bob");
    for (int i = 0; i < 3; ++i)
      alice.request(send_json(i + 1, "tea", "hello " + std::to_string(i)), i + 1);
    bob.request(send_json(10, "tea", "hi"), 10);          // his own: never unread
    bob.request(send_json(11, "coffee", "anyone?"), 11);  // the newest room
    auto m = until(bob, R"({"op":"rooms","id":20})", 20, [](const message& m) {
      return unread(m, "tea") == 3 && room_item(m, "coffee");
    });
    auto rooms = m.array("rooms");
    // Most recently active first (rooms active in the same millisecond: by name, descending).
    REQUIRE(rooms.size() == 2);
    auto first_ts = std::int64_t(rooms.at(0)["ts"]), second_ts = std::int64_t(rooms.at(1)["ts"]);
    CHECK(first_ts >= second_ts);
    if (first_ts > second_ts) CHECK(std::string_view(rooms.at(0)["room"]) == "coffee");
    CHECK(std::int64_t((*room_item(m, "tea"))["head"]) == 5);  // created + 3 + bob's
    CHECK(m.root()["more"].get_bool().value() == false);
    // A read marker at alice's second message leaves one of hers unread.
    CHECK(bob.request(R"({"op":"read","id":21,"room":"tea","seq":3})", 21).str("op") == "ok");
    until(bob, R"({"op":"rooms","id":22})", 22,
          [](const message& m) { return unread(m, "tea") == 1; });
    CHECK(node.stop(SIGTERM) == 0);
  }
  node_process node(data);
  ws_client bob(node.port());
  bob.hello("bob");
  auto m = until(bob, R"({"op":"rooms","id":1})", 1,
                 [](const message& m) { return m.str("op") == "rooms"; });
  CHECK(unread(m, "tea") == 1);
  CHECK(std::int64_t((*room_item(m, "tea"))["read"]) == 3);
  CHECK(unread(m, "coffee") == 0);
}

TEST_CASE("rooms pages with limit and before: every room once, in order", "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client c(node.port());
  c.hello("carol");
  for (int i = 0; i < 7; ++i) c.request(send_json(i + 1, "p" + std::to_string(i), "x"), i + 1);
  until(c, R"({"op":"rooms","id":10})", 10,
        [](const message& m) { return m.array("rooms").size() == 7; });
  std::vector<std::string> seen;
  std::string before;
  for (int page = 0; page < 4; ++page) {
    auto req = R"({"op":"rooms","id":11,"limit":3)" +
               (before.empty() ? std::string() : R"(,"before":")" + before + "\"") + "}";
    auto m = c.request(req, 11);
    INFO(req << " -> " << m.json());
    REQUIRE(m.str("op") == "rooms");  // not an error, whose missing fields can't be read
    for (auto r : m.array("rooms")) seen.emplace_back(std::string_view(r["room"]));
    if (!m.root()["more"].get_bool().value()) break;
    before = m.str("next");
    REQUIRE_FALSE(before.empty());
  }
  CHECK(seen == std::vector<std::string>{"p6", "p5", "p4", "p3", "p2", "p1", "p0"});
}

TEST_CASE("an invitation pushes invited to every live session of the invitee and lists the room",
          "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client alice(node.port()), bob1(node.port()), bob2(node.port());
  alice.hello("alice");
  bob1.hello("bob");
  bob2.hello("bob");
  wait_live(node);
  REQUIRE(
      alice.request(R"({"op":"create","id":1,"room":"secret","private":true,"topic":"plans"})", 1)
          .str("op") == "created");
  REQUIRE(alice.request(R"({"op":"invite","id":2,"room":"secret","user":"bob"})", 2).str("op") ==
          "ack");
  for (auto* c : {&bob1, &bob2}) {
    auto push = c->next_where([](const message& m) { return m.str("op") == "invited"; });
    CHECK(push.str("room") == "secret");
    CHECK(push.str("by") == "alice");
    CHECK(push.str("topic") == "plans");
    CHECK(push.num("seq") == 2);
    CHECK_FALSE(push.has("id"));
  }
  auto m = until(bob1, R"({"op":"rooms","id":3})", 3,
                 [](const message& m) { return room_item(m, "secret").has_value(); });
  CHECK(bool((*room_item(m, "secret"))["private"]));
}

TEST_CASE("search finds Japanese text by substring, with highlights, only where the user may read",
          "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client alice(node.port()), eve(node.port());
  alice.hello("alice");
  eve.hello("eve");
  alice.request(send_json(1, "office", "明日の会議は15時"), 1);
  alice.request(send_json(2, "office", "ランチどうする?"), 2);
  REQUIRE(alice.request(R"({"op":"create","id":3,"room":"hr","private":true})", 3).str("op") ==
          "created");
  alice.request(send_json(4, "hr", "会議室の予約"), 4);
  auto m = until(alice, R"({"op":"search","id":5,"q":"会議"})", 5,
                 [](const message& m) { return m.array("hits").size() == 2; });
  CHECK(m.str("op") == "results");
  auto hits = m.array("hits");
  CHECK(std::string_view(hits.at(0)["room"]) == "hr");  // newest first
  CHECK(std::string_view(hits.at(1)["text"]) == "明日の会議は15時");
  auto hl = hits.at(1)["highlight"].at(0);
  CHECK(std::int64_t(hl.at(0)) == 3);  // 会議 in UTF-16 units
  CHECK(std::int64_t(hl.at(1)) == 5);
  // eve is no member of the private room: she finds only the public message.
  auto e = until(eve, R"({"op":"search","id":6,"q":"会議"})", 6,
                 [](const message& m) { return m.array("hits").size() == 1; });
  CHECK(std::string_view(e.array("hits").at(0)["room"]) == "office");
  // A room filter.
  auto f = alice.request(R"({"op":"search","id":7,"q":"会議","room":"office"})", 7);
  CHECK(f.array("hits").size() == 1);
  // The directory lists public rooms only.
  auto d = until(eve, R"({"op":"directory","id":8})", 8,
                 [](const message& m) { return m.array("rooms").size() == 1; });
  CHECK(std::string_view(d.array("rooms").at(0)["room"]) == "office");
}

TEST_CASE("read queries with bad fields get bad_request with a reason", "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client c(node.port());
  c.hello("alice");
  for (auto [req, why] : std::vector<std::pair<std::string, std::string>>{
           {R"({"op":"search","id":1})", "'q' is required"},
           {R"({"op":"search","id":1,"q":""})", "'q' must not be empty"},
           {R"({"op":"search","id":1,"q":")" + std::string(257, 'a') + "\"}", "over 256 bytes"},
           {R"({"op":"search","id":1,"q":"x","limit":101})", "'limit' must be 1 to 100"},
           {R"({"op":"search","id":1,"q":"x","room":"no room"})", "'room' must be"},
           {R"({"op":"rooms","id":1,"limit":0})", "'limit' must be 1 to 200"},
           {R"({"op":"rooms","id":1,"before":"xyz"})", "'before' must be the 'next'"},
           {R"({"op":"directory","id":1,"q":"a b"})", "'q' must be a room name prefix"},
       }) {
    auto m = c.request(req, 1);
    CHECK(m.str("code") == "bad_request");
    CHECK(m.str("message").find(why) != std::string::npos);
  }
}

TEST_CASE("a rebuild while serving: queries say unavailable or answer, then find everything again",
          "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client c(node.port());
  c.hello("alice");
  for (int i = 0; i < 50; ++i)
    c.request(send_json(i + 1, "r" + std::to_string(i % 5), "word" + std::to_string(i) + " lock"),
              i + 1);
  until(c, R"({"op":"search","id":100,"q":"lock","limit":100})", 100,
        [](const message& m) { return m.array("hits").size() == 50; });
  auto r = run_kaiwa(
      {"rebuild", "search", "--admin", "http://127.0.0.1:" + std::to_string(node.admin_port())});
  CHECK(r.status == 0);
  CHECK(r.output.find("search: rebuilt") != std::string::npos);
  // Writes went on meanwhile, and everything is found once.
  c.request(send_json(200, "r0", "word200 lock"), 200);
  auto m = until(c, R"({"op":"search","id":101,"q":"lock","limit":100})", 101,
                 [](const message& m) { return m.array("hits").size() == 51; });
  std::set<std::string> texts;
  for (auto h : m.array("hits")) texts.emplace(std::string_view(h["text"]));
  CHECK(texts.size() == 51);
  CHECK(run_kaiwa(
            {"rebuild", "nope", "--admin", "http://127.0.0.1:" + std::to_string(node.admin_port())})
            .status == 2);
}

TEST_CASE("a query during a rebuild answers unavailable, saying so", "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--room-creations-per-minute", "0"});
  ws_client c(node.port());
  c.hello("alice");
  for (int i = 0; i < 300; ++i) c.send(send_json(i + 1, "room" + std::to_string(i), "x"));
  for (int i = 0; i < 300; ++i) c.next_where([](const message& m) { return m.str("op") == "ack"; });
  wait_live(node);
  auto [status, body] = http_post(node.admin_port(), "/admin/v1/projections/rooms/rebuild");
  REQUIRE(status == 202);
  // Either it is still rebuilding (unavailable, with the progress) or done (rooms).
  auto m = c.request(R"({"op":"rooms","id":1})", 1);
  if (m.str("op") == "error") {
    CHECK(m.str("code") == "unavailable");
    CHECK(m.str("message").find("rebuilding") != std::string::npos);
  }
  wait_live(node);
  until(c, R"({"op":"rooms","id":2,"limit":200})", 2,
        [](const message& m) { return m.array("rooms").size() == 200 && m.has("next"); });
}

TEST_CASE("SIGKILL under writes: after a restart every acked message is found exactly once",
          "[read]") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  std::set<std::int64_t> acked;
  constexpr int sends = 400;
  {
    node_process node(data);
    ws_client c(node.port());
    c.hello("writer");
    for (int i = 0; i < sends; ++i)
      c.send(send_json(i, "k" + std::to_string(i % 8), "kill" + std::to_string(i) + " tail"));
    for (int i = 0; i < sends / 2; ++i) {
      auto m = c.next();
      if (m.str("op") == "ack") acked.insert(m.num("id"));
    }
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
    while (auto m = c.recv(200ms))
      if (m->str("op") == "ack") acked.insert(m->num("id"));
  }
  REQUIRE(acked.size() >= sends / 2);
  node_process node(data);
  ws_client c(node.port());
  c.hello("writer");
  wait_live(node);
  for (auto i : acked) {
    auto q = R"({"op":"search","id":1,"q":"kill)" + std::to_string(i) + "\"}";
    auto m = until(c, q, 1, [](const message& m) { return m.array("hits").size() >= 1; });
    CHECK(m.array("hits").size() == 1);
  }
}

TEST_CASE("the projections' state, lag and counts show in the admin API, metrics and the CLI",
          "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client c(node.port());
  c.hello("alice");
  for (int i = 0; i < 10; ++i) c.request(send_json(i + 1, "m", "x"), i + 1);
  wait_live(node);
  auto deadline = std::chrono::steady_clock::now() + 15s;
  std::string body;
  while (std::chrono::steady_clock::now() < deadline) {
    body = http_get(node.admin_port(), "/admin/v1/projections").second;
    if (body.find(R"("applied":11)") != std::string::npos) break;  // created + 10
    std::this_thread::sleep_for(20ms);  // polling interval of the admin API
  }
  CHECK(body.find(R"("name":"rooms","state":"live")") != std::string::npos);
  CHECK(body.find(R"("name":"search","state":"live")") != std::string::npos);
  CHECK(body.find(R"("applied":11)") != std::string::npos);
  CHECK(body.find(R"("pending":0)") != std::string::npos);
  auto metrics = http_get(node.admin_port(), "/metrics").second;
  CHECK(metrics.find("kaiwa_projection_lag_seconds{projection=\"rooms\"}") != std::string::npos);
  CHECK(metrics.find("kaiwa_projection_pending_events{projection=\"search\"} 0") !=
        std::string::npos);
  CHECK(metrics.find("kaiwa_projection_events_applied_total{projection=\"search\"} 11") !=
        std::string::npos);
  auto cli = run_kaiwa(
      {"projections", "--admin", "http://127.0.0.1:" + std::to_string(node.admin_port())});
  CHECK(cli.status == 0);
  CHECK(cli.output.find("rooms") != std::string::npos);
  CHECK(cli.output.find("live") != std::string::npos);
  // A rebuild is a state change: without the header, refused.
  CHECK(http_call(node.admin_port(), "POST", "/admin/v1/projections/rooms/rebuild", {}).first ==
        403);
}

TEST_CASE("with --projections=off the write path runs alone and read queries answer unavailable",
          "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--projections", "off"});
  ws_client c(node.port());
  c.hello("alice");
  CHECK(c.request(send_json(1, "r", "x"), 1).str("op") == "ack");
  auto m = c.request(R"({"op":"rooms","id":2})", 2);
  CHECK(m.str("code") == "unavailable");
  CHECK(http_get(node.admin_port(), "/admin/v1/projections").second.find(R"("enabled":false)") !=
        std::string::npos);
  CHECK(http_post(node.admin_port(), "/admin/v1/projections/rooms/rebuild").first == 409);
}

TEST_CASE("one connection's read queries beyond --max-pending-queries get rate_limited", "[read]") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--max-pending-queries", "2"});
  raw_ws c(node.port());
  c.hello("alice");
  // Ten searches in one write: the session takes them up in one go, before any answer can come
  // back to its lane, so exactly two are handed to the read side.
  std::string burst;
  for (int i = 1; i <= 10; ++i)
    burst += client_frame(1, R"({"op":"search","id":)" + std::to_string(i) + R"(,"q":"tokyo"})");
  REQUIRE(c.send_raw(burst));
  int limited = 0, answered = 0;
  for (int i = 0; i < 10; ++i) {
    auto t = c.next_text();
    REQUIRE(t);
    if (t->find("\"rate_limited\"") != std::string::npos) {
      CHECK(t->find("--max-pending-queries") != std::string::npos);
      ++limited;
    } else {
      ++answered;
    }
  }
  CHECK(limited == 8);
  CHECK(answered == 2);
}

TEST_CASE("a search that decides nothing within its work bound answers timeout, not nothing",
          "[read]") {
  temp_dir dir;
  // 100 steps (the least allowed) visit a tenth of the node's 1,024 shards.
  node_process node(dir.str() + "/data", {"--search-max-steps", "100"});
  ws_client c(node.port());
  c.hello("alice");
  REQUIRE(c.request(send_json(1, "general", "会議は明日"), 1).str("op") == "ack");
  wait_live(node);
  auto m = c.request(R"({"op":"search","id":2,"q":"会"})", 2);
  CHECK(m.str("op") == "error");
  CHECK(m.str("code") == "timeout");
  CHECK(m.str("message").find("--search-max-steps") != std::string::npos);
  // With the room filter one shard is walked, and 100 steps are plenty.
  auto hit = until(c, R"({"op":"search","id":3,"q":"会議","room":"general"})", 3,
                   [](const message& r) { return r.array("hits").size() == 1; });
  CHECK(hit.str("op") == "results");
}

TEST_CASE(
    "SIGKILL under edits and deletes: an edited message is found by its last text only, a "
    "deleted one not at all",
    "[read]") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  constexpr int messages = 240;
  std::map<int, std::int64_t> seq_of;  // message -> its seq in its room
  auto room_of = [](int i) { return "e" + std::to_string(i % 4); };
  {
    node_process node(data);
    ws_client c(node.port());
    c.hello("writer");
    for (int i = 0; i < messages; ++i) c.send(send_json(i, room_of(i), "orig" + std::to_string(i)));
    for (int i = 0; i < messages; ++i) {
      auto m = c.next();
      REQUIRE(m.str("op") == "ack");
      seq_of[static_cast<int>(m.num("id"))] = m.num("seq");
    }
    wait_live(node);
    until(c, R"({"op":"search","id":1,"q":"orig)" + std::to_string(messages - 1) + "\"}", 1,
          [](const message& m) { return m.array("hits").size() == 1; });
    // On disk, so that the crash below meets an index whose records it must edit.
    CHECK(node.stop(SIGTERM) == 0);
  }
  // Per message: 0 untouched, 1 edited once, 2 edited twice, 3 deleted, 4 edited then deleted.
  auto plan = [](int i) { return i % 5; };
  std::set<std::int64_t> acked;  // request ids
  auto edit = [&](int id, int i, const std::string& text) {
    return R"({"op":"edit","id":)" + std::to_string(id) + R"(,"room":")" + room_of(i) +
           R"(","ref":)" + std::to_string(seq_of[i]) + R"(,"text":")" + text + "\"}";
  };
  auto del = [&](int id, int i) {
    return R"({"op":"delete","id":)" + std::to_string(id) + R"(,"room":")" + room_of(i) +
           R"(","ref":)" + std::to_string(seq_of[i]) + "}";
  };
  // Request ids: 1000 + i for the first change of message i, 2000 + i for the second.
  int sent = 0;
  {
    node_process node(data);
    ws_client c(node.port());
    c.hello("writer");
    for (int i = 0; i < messages; ++i) {
      auto p = plan(i);
      if (p == 0) continue;
      if (p == 1 || p == 2 || p == 4) c.send(edit(1000 + i, i, "first" + std::to_string(i)));
      if (p == 3) c.send(del(1000 + i, i));
      if (p == 2) c.send(edit(2000 + i, i, "second" + std::to_string(i)));
      if (p == 4) c.send(del(2000 + i, i));
      sent += p == 2 || p == 4 ? 2 : 1;
    }
    for (int n = 0; n < sent / 2; ++n) {
      auto m = c.next();
      if (m.str("op") == "ack") acked.insert(m.num("id"));
    }
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
    while (auto m = c.recv(200ms))
      if (m->str("op") == "ack") acked.insert(m->num("id"));
  }
  REQUIRE(acked.size() >= static_cast<std::size_t>(sent / 2));
  node_process node(data);
  ws_client c(node.port());
  c.hello("writer");
  wait_live(node);
  auto hits = [&](const std::string& word) {
    auto m = c.request(R"({"op":"search","id":1,"q":")" + word + "\"}", 1);
    REQUIRE(m.str("op") == "results");
    return m.array("hits").size();
  };
  for (int i = 0; i < messages; ++i) {
    INFO("message " << i << ", plan " << plan(i));
    auto id = std::to_string(i);
    auto first = acked.count(1000 + i) > 0, second = acked.count(2000 + i) > 0;
    auto orig = hits("orig" + id), one = hits("first" + id), two = hits("second" + id);
    // Exactly one text of the message is found, unless it is deleted; changes are applied in
    // order, so a second acked change means the first was made too.
    switch (plan(i)) {
      case 0:
        CHECK(orig == 1);
        break;
      case 1:
        CHECK(orig + one == 1);
        if (first) CHECK(one == 1);
        break;
      case 2:
        CHECK(orig + one + two == 1);
        if (second) CHECK(two == 1);
        if (first && !second) CHECK(orig == 0);
        break;
      case 3:
        CHECK(one + two == 0);
        if (first) CHECK(orig == 0);
        break;
      case 4:
        CHECK(orig + one <= 1);
        if (first) CHECK(orig == 0);
        if (second) CHECK(orig + one == 0);
        break;
    }
  }
}
