// Every op of PROTOCOL.md against a real node process over real WebSocket connections.

#include <catch2/catch.hpp>

#include <signal.h>

#include <set>

#include "tests/support/node_process.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

struct running_node {
  temp_dir dir;
  node_process node;
  explicit running_node(std::vector<std::string> extra = {})
      : node(dir.str() + "/data", std::move(extra)) {}
  std::unique_ptr<ws_client> client(const std::string& user) {
    auto c = std::make_unique<ws_client>(node.port());
    c->hello(user);
    return c;
  }
};

std::string send_req(int id, const std::string& room, const std::string& text,
                     const std::string& cid = "") {
  std::string r = R"({"op":"send","id":)" + std::to_string(id) + R"(,"room":")" + room +
                  R"(","text":")" + text + "\"";
  if (!cid.empty()) r += R"(,"cid":")" + cid + "\"";
  return r + "}";
}

bool is_event(const message& m) { return m.str("op") == "event"; }

/// Checks that nothing but presence pushes arrives for `quiet` (a room of up to 100
/// subscriptions pushes presence when users come and go, up to 250 ms later).
void expect_quiet(ws_client& c, std::chrono::milliseconds quiet) {
  while (auto m = c.recv(quiet)) CHECK(m->str("op") == "presence");
}

}  // namespace

TEST_CASE("requests before hello are unauthorized; hello welcomes the user with the node id") {
  running_node n;
  ws_client c(n.node.port());
  c.send(R"({"op":"ping","id":"p"})");
  auto m = c.next();
  CHECK(m.str("op") == "error");
  CHECK(m.str("code") == "unauthorized");
  CHECK(m.str("id") == "p");
  auto w = c.request(R"({"op":"hello","id":1,"user":"alice"})", 1);
  CHECK(w.str("op") == "welcome");
  CHECK(w.str("user") == "alice");
  CHECK(w.str("node") == "kaiwa-1");
  CHECK(w.str("server").rfind("kaiwa/", 0) == 0);
  CHECK(c.request(R"({"op":"ping","id":2})", 2).str("op") == "pong");
}

TEST_CASE("with a secret, hello needs a valid token and dev-mode names are refused") {
  temp_dir secrets;
  auto keys = secrets.file("keys", "k1=s3cret\n");
  running_node n({"--secret-file", keys});
  ws_client c(n.node.port());
  CHECK(c.request(R"({"op":"hello","id":1,"user":"alice"})", 1).str("code") == "unauthorized");
  CHECK(c.request(R"({"op":"hello","id":2,"token":"v1.e30.AAAA"})", 2).str("code") ==
        "unauthorized");
  auto token = run_kaiwa({"token", "--user", "alice", "--ttl", "1h", "--secret-file", keys}).output;
  while (!token.empty() && token.back() == '\n') token.pop_back();
  auto w = c.request(R"({"op":"hello","id":3,"token":")" + token + R"("})", 3);
  CHECK(w.str("op") == "welcome");
  CHECK(w.str("user") == "alice");
  auto other =
      run_kaiwa({"token", "--user", "alice", "--secret-file", secrets.file("other", "k1=other\n")})
          .output;
  ws_client d(n.node.port());
  CHECK(d.request(R"({"op":"hello","id":1,"token":")" + other.substr(0, other.size() - 1) + R"("})",
                  1)
            .str("code") == "unauthorized");
}

TEST_CASE(
    "while keys rotate a node takes tokens of each, and tokens without a kid from KAIWA_SECRET's "
    "days verify against the primary") {
  temp_dir secrets;
  setenv("KAIWA_SECRET", "old", 1);
  auto legacy = run_kaiwa({"token", "--user", "carol"}).output;
  unsetenv("KAIWA_SECRET");
  // The old secret stays first (primary) while its kid-less tokens live; the new key is added.
  auto keys = secrets.file("keys", "k1=old\nk2=new\n");
  running_node n({"--secret-file", keys});
  auto by_k2 = run_kaiwa({"token", "--user", "bob", "--secret-file", keys, "--kid", "k2"}).output;
  auto by_k1 = run_kaiwa({"token", "--user", "alice", "--secret-file", keys}).output;
  CHECK(run_kaiwa({"token", "--user", "x", "--secret-file", keys, "--kid", "k9"}).status != 0);
  for (auto [token, user] : {std::pair{legacy, "carol"}, {by_k2, "bob"}, {by_k1, "alice"}}) {
    INFO(token);
    token.pop_back();  // the newline
    ws_client c(n.node.port());
    auto w = c.request(R"({"op":"hello","id":1,"token":")" + token + R"("})", 1);
    CHECK(w.str("user") == user);
  }
}

TEST_CASE(
    "SIGHUP reads the key file again: a retired key's tokens are refused, open sessions stay") {
  temp_dir secrets;
  auto keys = secrets.file("keys", "k1=old\n");
  running_node n({"--secret-file", keys});
  auto hello = [](const std::string& token) {
    return R"({"op":"hello","id":1,"token":")" + token.substr(0, token.size() - 1) + R"("})";
  };
  auto by_k1 = run_kaiwa({"token", "--user", "alice", "--secret-file", keys}).output;
  ws_client alice(n.node.port());
  REQUIRE(alice.request(hello(by_k1), 1).str("op") == "welcome");

  secrets.file("keys", "k2=new\n");
  n.node.signal(SIGHUP);
  REQUIRE(n.node.wait_output("token_keys_reloaded", 10s));
  auto by_k2 = run_kaiwa({"token", "--user", "bob", "--secret-file", keys}).output;
  ws_client bob(n.node.port());
  CHECK(bob.request(hello(by_k2), 1).str("op") == "welcome");
  ws_client late(n.node.port());
  CHECK(late.request(hello(by_k1), 1).str("code") == "unauthorized");
  CHECK(alice.request(R"({"op":"ping","id":2})", 2).str("op") == "pong");

  // A broken file is refused and the keys in use stay.
  secrets.file("keys", "no kid here\n");
  n.node.signal(SIGHUP);
  REQUIRE(n.node.wait_output("token_keys_reload_failed", 10s));
  ws_client again(n.node.port());
  CHECK(again.request(hello(by_k2), 1).str("op") == "welcome");
}

TEST_CASE("a node without a secret refuses to listen beyond loopback") {
  temp_dir dir;
  auto out = run_kaiwa({"start", "--listen", "0.0.0.0:0", "--data-dir", dir.str()});
  CHECK(out.status != 0);
  CHECK(out.output.find("KAIWA_SECRET") != std::string::npos);
}

TEST_CASE("a connection that sends no hello is closed with 4001") {
  running_node n({"--hello-timeout", "0.2"});
  ws_client c(n.node.port());
  CHECK(c.close_code() == 4001);
}

TEST_CASE(
    "join, send and fan-out: every subscriber sees every event once, in order, after joined") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  auto carol = n.client("carol");
  auto j1 = bob->request(R"({"op":"join","id":1,"room":"general"})", 1);
  CHECK(j1.str("op") == "joined");
  CHECK(j1.str("room") == "general");
  carol->request(R"({"op":"join","id":1,"room":"general","since":0})", 1);

  // Pipelined: 300 sends without waiting for acks.
  constexpr int count = 300;
  for (int i = 0; i < count; ++i) alice->send(send_req(i + 10, "general", "m" + std::to_string(i)));
  std::int64_t last_seq = 0;
  for (int i = 0; i < count; ++i) {
    auto ack = alice->next_where([](const message& m) { return m.str("op") == "ack"; });
    CHECK(ack.num("id") == i + 10);
    if (last_seq) CHECK(ack.num("seq") == last_seq + 1);
    last_seq = ack.num("seq");
  }
  for (auto* sub : {bob.get(), carol.get()}) {
    std::int64_t expect = 1;  // seq 1 is the room's `created` event
    while (expect <= last_seq) {
      auto e = sub->next_where(is_event);
      REQUIRE(e.num("seq") == expect);
      if (expect > 1) {
        CHECK(e.str("type") == "message");
        CHECK(e.str("from") == "alice");
        CHECK(e.str("text") == "m" + std::to_string(expect - 2));
        CHECK(e.num("ts") > 0);
      }
      ++expect;
    }
    expect_quiet(*sub, 100ms);  // no duplicates
  }
}

TEST_CASE("leave ends live delivery") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  bob->request(R"({"op":"join","id":1,"room":"r"})", 1);
  CHECK(bob->request(R"({"op":"leave","id":2,"room":"r"})", 2).str("op") == "left");
  alice->request(send_req(3, "r", "after leave"), 3);
  expect_quiet(*bob, 200ms);
}

TEST_CASE("send with a cid is idempotent") {
  running_node n;
  auto alice = n.client("alice");
  auto a1 = alice->request(send_req(1, "r", "once", "c-1"), 1);
  auto a2 = alice->request(send_req(2, "r", "once", "c-1"), 2);
  CHECK(a1.num("seq") == a2.num("seq"));
  CHECK(a1.num("ts") == a2.num("ts"));
  auto h = alice->request(R"({"op":"history","id":3,"room":"r"})", 3);
  simdjson::dom::array events;
  REQUIRE_FALSE(h.root()["events"].get(events));
  CHECK(events.size() == 2);  // created + one message
}

TEST_CASE("edit is for the author; delete for the author or the owner") {
  running_node n;
  auto owner = n.client("owner");
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  owner->request(R"({"op":"create","id":1,"room":"r"})", 1);
  auto ack = alice->request(send_req(2, "r", "hello"), 2);
  auto seq = std::to_string(ack.num("seq"));
  CHECK(bob->request(R"({"op":"edit","id":3,"room":"r","ref":)" + seq + R"(,"text":"x"})", 3)
            .str("code") == "forbidden");
  auto edit =
      alice->request(R"({"op":"edit","id":4,"room":"r","ref":)" + seq + R"(,"text":"hello!"})", 4);
  CHECK(edit.str("op") == "ack");
  CHECK(bob->request(R"({"op":"delete","id":5,"room":"r","ref":)" + seq + "}", 5).str("code") ==
        "forbidden");
  CHECK(owner->request(R"({"op":"delete","id":6,"room":"r","ref":)" + seq + "}", 6).str("op") ==
        "ack");
  CHECK(alice->request(R"({"op":"edit","id":7,"room":"r","ref":999})", 7).str("code") ==
        "bad_request");
  CHECK(alice->request(R"({"op":"edit","id":8,"room":"r","ref":999,"text":"x"})", 8).str("code") ==
        "not_found");
  auto h = alice->request(R"({"op":"history","id":9,"room":"r","after":2})", 9);
  simdjson::dom::array events;
  REQUIRE_FALSE(h.root()["events"].get(events));
  std::vector<std::string> types;
  for (auto e : events) types.emplace_back(std::string_view(e["type"]));
  CHECK(types == std::vector<std::string>{"edit", "delete"});
}

TEST_CASE("history and join since serve a deleted message without its text, also after a restart") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  auto check = [](ws_client& c, int id) {
    auto h = c.request(R"({"op":"history","id":)" + std::to_string(id) + R"(,"room":"r"})", id);
    CHECK(h.json().find("secret") == std::string::npos);
    CHECK(h.json().find("second thoughts") == std::string::npos);
    CHECK(h.json().find("kept, edited") != std::string::npos);
    simdjson::dom::array events;
    REQUIRE_FALSE(h.root()["events"].get(events));
    std::vector<std::string> kinds;
    for (auto e : events) {
      bool deleted = e["deleted"].is_bool() && bool(e["deleted"]);
      kinds.push_back(std::string(std::string_view(e["type"])) + (deleted ? "-" : ""));
    }
    CHECK(kinds ==
          std::vector<std::string>{"created", "message", "message-", "edit-", "edit", "delete"});
    c.send(R"({"op":"join","id":)" + std::to_string(id + 1) + R"(,"room":"r","since":0})");
    CHECK(c.next_where([](const message& m) { return m.str("op") == "joined"; }).num("head") == 6);
    for (int seq = 1; seq <= 6; ++seq) {
      auto e = c.next_where(is_event);
      CHECK(e.num("seq") == seq);
      CHECK(e.json().find("secret") == std::string::npos);
      CHECK(e.json().find("second thoughts") == std::string::npos);
    }
  };
  {
    node_process node(data);
    ws_client alice(node.port());
    alice.hello("alice");
    alice.request(send_req(1, "r", "kept"), 1);              // seq 2
    alice.request(send_req(2, "r", "my secret", "c-3"), 2);  // seq 3
    alice.request(R"({"op":"edit","id":3,"room":"r","ref":3,"text":"second thoughts"})", 3);
    alice.request(R"({"op":"edit","id":4,"room":"r","ref":2,"text":"kept, edited"})", 4);
    CHECK(alice.request(R"({"op":"delete","id":5,"room":"r","ref":3})", 5).str("op") == "ack");
    ws_client bob(node.port());
    bob.hello("bob");
    check(bob, 10);
    CHECK(node.stop(SIGTERM) == 0);
  }
  node_process node(data);
  ws_client bob(node.port());
  bob.hello("bob");
  check(bob, 20);
}

TEST_CASE("history pages with before, after and limit, and says when there is more") {
  running_node n;
  auto alice = n.client("alice");
  for (int i = 0; i < 30; ++i) alice->send(send_req(100 + i, "r", "m" + std::to_string(i)));
  alice->next_where([](const message& m) { return m.num("id") == 129; });
  auto seqs = [&](const message& h) {
    std::vector<std::int64_t> out;
    simdjson::dom::array events;
    REQUIRE_FALSE(h.root()["events"].get(events));
    for (auto e : events) out.push_back(std::int64_t(e["seq"]));
    return out;
  };
  auto newest = alice->request(R"({"op":"history","id":1,"room":"r","limit":5})", 1);
  CHECK(seqs(newest) == std::vector<std::int64_t>{27, 28, 29, 30, 31});
  CHECK(newest.str("op") == "history");
  CHECK(newest.root()["more"].get_bool().value() == true);
  auto before = alice->request(R"({"op":"history","id":2,"room":"r","before":4,"limit":10})", 2);
  CHECK(seqs(before) == std::vector<std::int64_t>{1, 2, 3});
  CHECK(before.root()["more"].get_bool().value() == false);
  auto after = alice->request(R"({"op":"history","id":3,"room":"r","after":28})", 3);
  CHECK(seqs(after) == std::vector<std::int64_t>{29, 30, 31});
  CHECK(after.root()["more"].get_bool().value() == false);
  auto mid = alice->request(R"({"op":"history","id":4,"room":"r","after":10,"limit":2})", 4);
  CHECK(seqs(mid) == std::vector<std::int64_t>{11, 12});
  CHECK(mid.root()["more"].get_bool().value() == true);
  CHECK(alice->request(R"({"op":"history","id":5,"room":"nope"})", 5).str("code") == "not_found");
}

TEST_CASE("private rooms: members only; the owner invites and kicks; kicked subscriptions end") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  auto carol = n.client("carol");
  auto created = alice->request(
      R"({"op":"create","id":1,"room":"secret","private":true,"members":["bob"],"topic":"plans"})",
      1);
  CHECK(created.str("op") == "created");
  CHECK(created.num("seq") == 1);
  CHECK(alice->request(R"({"op":"create","id":2,"room":"secret"})", 2).str("code") ==
        "room_exists");

  CHECK(carol->request(R"({"op":"join","id":1,"room":"secret"})", 1).str("code") == "forbidden");
  CHECK(carol->request(send_req(2, "secret", "hi"), 2).str("code") == "forbidden");
  CHECK(carol->request(R"({"op":"history","id":3,"room":"secret"})", 3).str("code") == "forbidden");
  CHECK(bob->request(R"({"op":"invite","id":1,"room":"secret","user":"carol"})", 1).str("code") ==
        "forbidden");

  CHECK(alice->request(R"({"op":"invite","id":3,"room":"secret","user":"carol"})", 3).str("op") ==
        "ack");
  // Her session hears of it from the room list's projection, after its batch commits: awaited
  // here, it can't arrive in the quiet after the kick (it did, under load).
  auto invited = carol->next_where([](const message& m) { return m.str("op") == "invited"; });
  CHECK(invited.str("room") == "secret");
  CHECK(invited.str("by") == "alice");
  CHECK(carol->request(R"({"op":"join","id":4,"room":"secret","since":0})", 4).str("op") ==
        "joined");
  auto first = carol->next_where(is_event);
  CHECK(first.str("type") == "created");
  CHECK(first.root()["private"].get_bool().value());
  CHECK(first.str("topic") == "plans");
  CHECK(carol->next_where(is_event).str("type") == "member_added");

  CHECK(alice->request(R"({"op":"kick","id":5,"room":"secret","user":"carol"})", 5).str("op") ==
        "ack");
  auto removed = carol->next_where(is_event);
  CHECK(removed.str("type") == "member_removed");
  CHECK(removed.str("user") == "carol");
  auto left = carol->next();
  CHECK(left.str("op") == "left");
  CHECK(left.str("room") == "secret");
  alice->request(send_req(6, "secret", "carol can't see this"), 6);
  expect_quiet(*carol, 200ms);
  CHECK(carol->request(send_req(7, "secret", "hi"), 7).str("code") == "forbidden");
}

TEST_CASE("the owner sets a room's topic: subscribers get the topic event; others are refused") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  CHECK(alice->request(R"({"op":"join","id":1,"room":"porch"})", 1).str("op") == "joined");
  CHECK(bob->request(R"({"op":"join","id":1,"room":"porch"})", 1).str("op") == "joined");
  CHECK(bob->request(R"({"op":"topic","id":2,"room":"porch","topic":"mine"})", 2).str("code") ==
        "forbidden");
  auto ack = alice->request(R"({"op":"topic","id":2,"room":"porch","topic":"tea at five"})", 2);
  CHECK(ack.str("op") == "ack");
  // (bob may get the room's `created` first: alice's join created it.)
  auto e =
      bob->next_where([](const message& m) { return is_event(m) && m.str("type") == "topic"; });
  CHECK(e.str("topic") == "tea at five");
  CHECK(e.str("from") == "alice");
  CHECK(e.num("seq") == ack.num("seq"));
  CHECK(alice->request(R"({"op":"topic","id":3,"room":"nowhere","topic":"x"})", 3).str("code") ==
        "not_found");
}

TEST_CASE("typing reaches the other subscribers only and is not persisted") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  alice->request(R"({"op":"join","id":1,"room":"r"})", 1);
  alice->next_where(is_event);  // created: the room exists and is durable
  bob->request(R"({"op":"join","id":1,"room":"r"})", 1);
  alice->send(R"({"op":"typing","room":"r"})");
  auto t = bob->next();
  CHECK(t.str("op") == "typing");
  CHECK(t.str("user") == "alice");
  CHECK(t.str("room") == "r");
  CHECK_FALSE(t.has("id"));
  expect_quiet(*alice, 200ms);
  auto h = alice->request(R"({"op":"history","id":2,"room":"r"})", 2);
  simdjson::dom::array events;
  REQUIRE_FALSE(h.root()["events"].get(events));
  CHECK(events.size() == 1);
}

TEST_CASE("read markers are stored, never move backwards, and send receipts to others") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  bob->request(R"({"op":"join","id":1,"room":"r"})", 1);
  alice->request(send_req(1, "r", "a"), 1);
  alice->request(send_req(2, "r", "b"), 2);
  CHECK(alice->request(R"({"op":"read","id":3,"room":"r","seq":3})", 3).str("op") == "ok");
  auto r = bob->next_where([](const message& m) { return m.str("op") == "receipt"; });
  CHECK(r.str("user") == "alice");
  CHECK(r.num("seq") == 3);
  CHECK(alice->request(R"({"op":"read","id":4,"room":"r","seq":2})", 4).str("op") == "ok");
  CHECK(alice->request(R"({"op":"read","id":5,"room":"r","seq":99})", 5).str("code") ==
        "bad_request");
  bob->request(R"({"op":"ping","id":9})", 9);  // everything before this reply has arrived
  expect_quiet(*bob, 100ms);                   // the backwards read sent no receipt
}

TEST_CASE("presence lists the users with a live subscription, sorted") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  auto bob2 = n.client("bob");
  bob->request(R"({"op":"join","id":1,"room":"r"})", 1);
  bob2->request(R"({"op":"join","id":1,"room":"r"})", 1);
  alice->request(R"({"op":"join","id":1,"room":"r"})", 1);
  auto p = alice->request(R"({"op":"presence","id":2,"room":"r"})", 2);
  std::vector<std::string> users;
  for (auto u : p.array("users")) users.emplace_back(std::string_view(u));
  CHECK(users == std::vector<std::string>{"alice", "bob"});
  bob.reset();
  bob2->request(R"({"op":"leave","id":3,"room":"r"})", 3);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (int id = 10;; ++id) {  // bob's disconnect reaches the room asynchronously
    auto q =
        alice->request(R"({"op":"presence","id":)" + std::to_string(id) + R"(,"room":"r"})", id);
    if (q.array("users").size() == 1) break;
    REQUIRE(std::chrono::steady_clock::now() < deadline);
  }
}

TEST_CASE("a small room pushes its presence list to its subscribers when it changes") {
  running_node n;
  auto alice = n.client("alice");
  auto bob = n.client("bob");
  auto is_push = [](const message& m) { return m.str("op") == "presence" && !m.has("id"); };
  auto users_of = [](const message& m) {
    std::vector<std::string> users;
    for (auto u : m.array("users")) users.emplace_back(std::string_view(u));
    return users;
  };
  alice->request(R"({"op":"join","id":1,"room":"small"})", 1);
  CHECK(users_of(alice->next_where(is_push)) == std::vector<std::string>{"alice"});
  bob->request(R"({"op":"join","id":1,"room":"small"})", 1);
  CHECK(users_of(alice->next_where(is_push)) == std::vector<std::string>{"alice", "bob"});
  bob->request(R"({"op":"leave","id":2,"room":"small"})", 2);
  CHECK(users_of(alice->next_where(is_push)) == std::vector<std::string>{"alice"});
}

TEST_CASE("join with since replays what was missed; past 1000 it says gap_until") {
  running_node n;
  auto alice = n.client("alice");
  constexpr int count = 1100;
  for (int i = 0; i < count; ++i) alice->send(send_req(i + 1, "r", "m"));
  alice->next_where([](const message& m) { return m.num("id") == count; }, 60s);
  auto bob = n.client("bob");
  auto j = bob->request(R"({"op":"join","id":1,"room":"r","since":1090})", 1);
  CHECK(j.num("head") == count + 1);
  CHECK_FALSE(j.has("gap_until"));
  for (int s = 1091; s <= count + 1; ++s) CHECK(bob->next_where(is_event).num("seq") == s);

  auto carol = n.client("carol");
  auto g = carol->request(R"({"op":"join","id":1,"room":"r","since":0})", 1);
  CHECK(g.num("gap_until") == count + 1 - 1000 + 1);
  CHECK(carol->next_where(is_event).num("seq") == g.num("gap_until"));
  alice->request(send_req(5000, "r", "live"), 5000);
  std::int64_t last = 0;
  for (int i = 0; i < 1000; ++i) last = carol->next_where(is_event).num("seq");
  CHECK(last == count + 2);
}

TEST_CASE("the node serves health, readiness, a page, status and metrics over HTTP") {
  running_node n;
  CHECK(http_get(n.node.port(), "/healthz").first == 200);
  CHECK(http_get(n.node.port(), "/readyz").first == 200);
  CHECK(http_get(n.node.port(), "/").second.find("<title>kaiwa</title>") != std::string::npos);
  CHECK(http_get(n.node.port(), "/app.js").second.find("/ws") != std::string::npos);
  CHECK(http_get(n.node.port(), "/nope").first == 404);
  auto status = http_get(n.node.admin_port(), "/admin/v1/status");
  CHECK(status.first == 200);
  CHECK(status.second.find(R"("durability":"sync")") != std::string::npos);
  {
    auto c = n.client("alice");  // one hello, one send, one bad request
    c->request(R"({"op":"send","id":1,"room":"r","text":"x"})", 1);
    c->send("nope");
    c->next();
  }
  auto metrics = http_get(n.node.admin_port(), "/metrics").second;
  CHECK(metrics.find("kaiwa_connections ") != std::string::npos);
  CHECK(metrics.find(R"(kaiwa_requests_total{op="hello"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(kaiwa_requests_total{op="send"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(kaiwa_errors_total{code="bad_request"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(kaiwa_journal_commit_write_sets_bucket{le="+Inf"})") != std::string::npos);
  CHECK(metrics.find(R"(kaiwa_journal_write_seconds_bucket{le="0.0002"})") != std::string::npos);
  CHECK(metrics.find("kaiwa_events_appended_total 2") != std::string::npos);
  CHECK(metrics.find("kaiwa_room_commands_queued 0") != std::string::npos);

  CHECK(metrics.find(R"(kaiwa_messages_out_total{op="welcome"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(kaiwa_messages_out_total{op="ack"} 1)") != std::string::npos);
  CHECK(metrics.find(R"(kaiwa_messages_out_total{op="error"} 1)") != std::string::npos);
}
