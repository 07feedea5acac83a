// Managing what a node holds through the real admin API and CLI: rooms and users listed in
// pages, a room deleted under a live subscriber (and created again fresh), a room archived
// across a restart, and hostile listing and room inputs.

#include <catch2/catch.hpp>

#include <signal.h>
#include <simdjson.h>

#include <functional>
#include <map>
#include <set>
#include <thread>

#include "core/shard.hpp"
#include "storage/journal.hpp"
#include "tests/support/node_process.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

std::string admin_url(const node_process& n) {
  return "http://127.0.0.1:" + std::to_string(n.admin_port());
}

std::string send_msg(int id, const std::string& room, const std::string& text) {
  return R"({"op":"send","id":)" + std::to_string(id) + R"(,"room":")" + room + R"(","text":")" +
         text + R"("})";
}

/// Calls `fn` until it returns true, or fails after `limit`: projections apply events a little
/// after their ack, so listings are eventually what was written.
void eventually(const std::function<bool()>& fn, const std::string& what,
                std::chrono::milliseconds limit = 15s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!fn()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL("never: " << what);
    std::this_thread::sleep_for(20ms);  // polling interval
  }
}

/// Every room the admin API lists, following `next` with pages of `limit`; each page's rooms
/// are appended in order (so duplicates show).
std::vector<std::string> all_rooms(const node_process& node, int limit, int* pages = nullptr) {
  std::vector<std::string> out;
  std::string after;
  for (int page = 1;; ++page) {
    auto target = "/admin/v1/rooms?limit=" + std::to_string(limit);
    if (!after.empty()) target += "&after=" + after;
    auto [status, body] = http_get(node.admin_port(), target);
    REQUIRE(status == 200);
    simdjson::dom::parser p;
    auto doc = p.parse(body);
    REQUIRE(doc.error() == simdjson::SUCCESS);
    auto rooms = doc["rooms"].get_array();
    REQUIRE(rooms.error() == simdjson::SUCCESS);
    CHECK(rooms.size() <= static_cast<std::size_t>(limit));
    for (auto r : rooms.value()) out.emplace_back(std::string_view(r["room"]));
    std::string_view next;
    if (doc["next"].get(next)) {
      if (pages) *pages = page;
      return out;
    }
    after = std::string(next);
  }
}

bool listed(const node_process& node, const std::string& room) {
  auto rooms = all_rooms(node, 1000);
  return std::find(rooms.begin(), rooms.end(), room) != rooms.end();
}

}  // namespace

TEST_CASE("the admin API lists the node's rooms in pages, each exactly once, and its users",
          "[rooms-admin]") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--node-id", "n-3"});
  ws_client alice(node.port()), bob(node.port());
  alice.hello("alice");
  bob.hello("bob");
  std::set<std::string> made;
  for (int i = 0; i < 23; ++i) {
    auto room = "room-" + std::to_string(i);
    REQUIRE(alice.request(send_msg(i + 1, room, "hi"), i + 1).str("op") == "ack");
    made.insert(room);
  }
  REQUIRE(bob.request(send_msg(100, "room-0", "me too"), 100).str("op") == "ack");
  REQUIRE(alice.request(R"({"op":"create","id":101,"room":"club","private":true,"topic":"t"})", 101)
              .str("op") == "created");
  REQUIRE(
      alice.request(R"({"op":"invite","id":102,"room":"club","user":"carol"})", 102).str("op") ==
      "ack");
  made.insert("club");
  eventually([&] { return all_rooms(node, 1000).size() == made.size(); }, "24 rooms listed");

  int pages = 0;
  auto paged = all_rooms(node, 5, &pages);
  CHECK(pages == 5);
  CHECK(paged.size() == made.size());
  CHECK(std::set<std::string>(paged.begin(), paged.end()) == made);  // each exactly once

  auto [status, body] = http_get(node.admin_port(), "/admin/v1/rooms?limit=1000");
  REQUIRE(status == 200);
  simdjson::dom::parser p;
  for (auto r : p.parse(body)["rooms"]) {
    if (std::string_view(r["room"]) != "club") continue;
    CHECK(std::uint64_t(r["head"]) == 2);  // created, member_added
    CHECK(std::uint64_t(r["members"]) == 2);
    CHECK(bool(r["private"]));
    CHECK(std::string_view(r["topic"]) == "t");
    CHECK(std::string_view(r["owner"]) == "alice");
    CHECK(std::string_view(r["owner_node"]) == "n-3");
    CHECK(std::int64_t(r["last_activity_ms"]) > 0);
    CHECK(std::string_view(r["last_activity"]).ends_with("Z"));
  }

  // Users: alice (24 rooms), bob (room-0), carol (club), by name, one a page.
  std::vector<std::pair<std::string, std::uint64_t>> users;
  std::string after;
  for (int i = 0; i < 10; ++i) {
    auto target = std::string("/admin/v1/users?limit=1") + (after.empty() ? "" : "&after=" + after);
    auto [st, b] = http_get(node.admin_port(), target);
    REQUIRE(st == 200);
    auto doc = p.parse(b);
    for (auto u : doc["users"])
      users.emplace_back(std::string_view(u["user"]), std::uint64_t(u["rooms"]));
    std::string_view next;
    if (doc["next"].get(next)) break;
    after = std::string(next);
  }
  CHECK(users == std::vector<std::pair<std::string, std::uint64_t>>{
                     {"alice", 24}, {"bob", 1}, {"carol", 1}});

  // The CLI: a table with human units, every page with --all, raw numbers with --json.
  auto table = run_kaiwa({"rooms", "--admin", admin_url(node), "--limit", "7", "--all"});
  CHECK(table.status == 0);
  for (auto& room : made) CHECK(table.output.find(room + " ") != std::string::npos);
  CHECK(table.output.find(" ago") != std::string::npos);  // last activity, for people
  auto first = run_kaiwa({"rooms", "--admin", admin_url(node), "--limit", "7"});
  CHECK(first.status == 0);
  CHECK(first.output.find("more: --after ") != std::string::npos);
  auto json = run_kaiwa({"rooms", "--admin", admin_url(node), "--limit", "3", "--json"});
  CHECK(json.status == 0);
  CHECK(json.output.find(R"("last_activity_ms":)") != std::string::npos);
  auto u = run_kaiwa({"users", "--admin", admin_url(node), "--all"});
  CHECK(u.status == 0);
  CHECK(u.output.find("carol") != std::string::npos);
  CHECK(run_kaiwa({"rooms", "--admin", admin_url(node), "--limit", "0"}).status == 2);
  CHECK(run_kaiwa({"rooms", "--admin", admin_url(node), "--limit", "5000"}).status == 2);
}

TEST_CASE("listings and room commands refuse hostile inputs with a clear 400", "[rooms-admin]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client alice(node.port());
  alice.hello("alice");
  REQUIRE(alice.request(send_msg(1, "tea", "hi"), 1).str("op") == "ack");
  for (auto* target :
       {"/admin/v1/rooms?limit=0", "/admin/v1/rooms?limit=1001", "/admin/v1/rooms?limit=abc",
        "/admin/v1/rooms?limit=99999999999999999999999", "/admin/v1/rooms?limit=-1",
        "/admin/v1/rooms?after=garbage", "/admin/v1/rooms?after=1:", "/admin/v1/rooms?after=:tea",
        "/admin/v1/rooms?after=99999999999:tea", "/admin/v1/users?limit=1e3",
        "/admin/v1/users?after=no%20such", "/admin/v1/rooms/bad%20name"}) {
    auto [status, body] = http_get(node.admin_port(), target);
    INFO(target << " -> " << body);
    CHECK(status == 400);
    CHECK(body.find(R"("error":)") != std::string::npos);
  }
  // A cursor naming a room in another shard than the one it says; the right one is fine.
  auto shard = kaiwa::shard_of("tea", kaiwa::default_shards);
  auto wrong = std::to_string((shard + 1) % kaiwa::default_shards) + ":tea";
  CHECK(http_get(node.admin_port(), "/admin/v1/rooms?after=" + wrong).first == 400);
  auto right =
      http_get(node.admin_port(), "/admin/v1/rooms?after=" + std::to_string(shard) + ":tea");
  CHECK(right.first == 200);
  CHECK(right.second.find(R"("room":"tea")") == std::string::npos);  // strictly after it
  for (auto [method, target] : {std::pair{"DELETE", "/admin/v1/rooms/bad%20name"},
                                std::pair{"POST", "/admin/v1/rooms/bad!/archive"},
                                std::pair{"DELETE", "/admin/v1/rooms/"}}) {
    auto [status, body] = http_call(node.admin_port(), method, target, {{"Kaiwa-Admin", "1"}});
    INFO(method << " " << target << " -> " << body);
    CHECK(status == 400);
  }
  CHECK(http_call(node.admin_port(), "PUT", "/admin/v1/rooms/tea", {{"Kaiwa-Admin", "1"}}).first ==
        405);
  CHECK(http_call(node.admin_port(), "DELETE", "/admin/v1/rooms/nope", {{"Kaiwa-Admin", "1"}})
            .first == 404);
  // A state change without the header a web page can't send is refused.
  CHECK(http_call(node.admin_port(), "DELETE", "/admin/v1/rooms/tea", {}).first == 403);
  CHECK(run_kaiwa({"room", "delete", "bad name", "--yes", "--admin", admin_url(node)}).status == 2);
}

TEST_CASE(
    "deleting a room tells its subscribers, removes its history, lists and search, and the name "
    "can be created again",
    "[rooms-admin]") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  ws_client alice(node.port()), bob(node.port());
  alice.hello("alice");
  bob.hello("bob");
  for (int i = 0; i < 5; ++i)
    REQUIRE(alice.request(send_msg(i + 1, "doomed", "zebra crossing " + std::to_string(i)), i + 1)
                .str("op") == "ack");
  REQUIRE(alice.request(send_msg(10, "kept", "zebra too"), 10).str("op") == "ack");
  REQUIRE(alice.request(R"({"op":"read","id":11,"room":"doomed","seq":3})", 11).str("op") == "ok");
  REQUIRE(bob.request(R"({"op":"join","id":1,"room":"doomed"})", 1).str("op") == "joined");
  eventually(
      [&] {
        auto m = alice.request(R"({"op":"search","id":12,"q":"zebra"})", 12);
        return m.str("op") == "results" && m.array("hits").size() == 6;
      },
      "search finds all six");

  // Not on a terminal and without --yes: refused, nothing deleted.
  auto refused = run_kaiwa({"room", "delete", "doomed", "--admin", admin_url(node)}, "/dev/null");
  CHECK(refused.status == 2);
  CHECK(refused.output.find("--yes") != std::string::npos);
  CHECK(alice.request(R"({"op":"history","id":13,"room":"doomed"})", 13).str("op") == "history");

  auto deleted = run_kaiwa({"room", "delete", "doomed", "--yes", "--admin", admin_url(node)});
  INFO(deleted.output);
  CHECK(deleted.status == 0);
  CHECK(deleted.output.find("deleted") != std::string::npos);
  auto push = bob.next_where([](const message& m) { return m.str("op") == "deleted"; });
  CHECK(push.str("room") == "doomed");
  auto left = bob.next_where([](const message& m) { return m.str("op") == "left"; });
  CHECK(left.str("reason") == "deleted");

  auto h = alice.request(R"({"op":"history","id":14,"room":"doomed"})", 14);
  CHECK(h.str("op") == "error");
  CHECK(h.str("code") == "not_found");
  // Its read models are gone with it: the search, the user's room list, the admin listing.
  auto hits = alice.request(R"({"op":"search","id":15,"q":"zebra"})", 15);
  REQUIRE(hits.str("op") == "results");
  REQUIRE(hits.array("hits").size() == 1);
  CHECK(std::string_view(hits.array("hits").at(0)["room"]) == "kept");
  auto list = alice.request(R"({"op":"rooms","id":16})", 16);
  for (auto r : list.array("rooms")) CHECK(std::string_view(r["room"]) != "doomed");
  CHECK_FALSE(listed(node, "doomed"));
  CHECK(listed(node, "kept"));
  // A second delete: no such room.
  CHECK(run_kaiwa({"room", "delete", "doomed", "--yes", "--admin", admin_url(node)}).status == 1);

  // The name is free: a new room from seq 1, no trace of the old one (a client resuming with an
  // old `since` gets the new room's head, below it).
  auto ack = alice.request(send_msg(20, "doomed", "fresh start"), 20);
  REQUIRE(ack.str("op") == "ack");
  CHECK(ack.num("seq") == 2);  // created, then the message
  auto joined = bob.request(R"({"op":"join","id":2,"room":"doomed","since":6})", 2);
  CHECK(joined.num("head") == 2);
  auto h2 = alice.request(R"({"op":"history","id":21,"room":"doomed"})", 21);
  CHECK(h2.array("events").size() == 2);
  eventually(
      [&] {
        auto m = alice.request(R"({"op":"search","id":22,"q":"fresh"})", 22);
        return m.str("op") == "results" && m.array("hits").size() == 1;
      },
      "the new room is indexed");
  auto old = alice.request(R"({"op":"search","id":23,"q":"crossing"})", 23);
  REQUIRE(old.str("op") == "results");
  CHECK(old.array("hits").size() == 0);
}

TEST_CASE(
    "an archived room refuses writes with 'archived', serves reads, and stays archived "
    "after a restart",
    "[rooms-admin]") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  {
    node_process node(data);
    ws_client alice(node.port()), bob(node.port());
    alice.hello("alice");
    bob.hello("bob");
    REQUIRE(alice.request(send_msg(1, "attic", "before"), 1).str("op") == "ack");
    REQUIRE(bob.request(R"({"op":"join","id":1,"room":"attic"})", 1).str("op") == "joined");
    auto r = run_kaiwa({"room", "archive", "attic", "--admin", admin_url(node)});
    CHECK(r.status == 0);
    auto push = bob.next_where([](const message& m) { return m.str("op") == "archived"; });
    CHECK(push.str("room") == "attic");
    CHECK(push.root()["archived"].get_bool().value());
    auto refused = alice.request(send_msg(2, "attic", "after"), 2);
    CHECK(refused.str("op") == "error");
    CHECK(refused.str("code") == "archived");
    CHECK(alice.request(R"({"op":"history","id":3,"room":"attic"})", 3).array("events").size() ==
          2);
    auto joined = alice.request(R"({"op":"join","id":4,"room":"attic"})", 4);
    CHECK(joined.str("op") == "joined");
    CHECK(joined.root()["archived"].get_bool().value());
    CHECK(http_get(node.admin_port(), "/admin/v1/rooms/attic").second.find(R"("archived":true)") !=
          std::string::npos);
    eventually([&] { return listed(node, "attic"); }, "attic listed");
    CHECK(http_get(node.admin_port(), "/admin/v1/rooms").second.find(R"("archived":true)") !=
          std::string::npos);
    CHECK(node.stop(SIGTERM) == 0);
  }
  node_process node(data);
  ws_client alice(node.port());
  alice.hello("alice");
  auto refused = alice.request(send_msg(5, "attic", "after restart"), 5);
  CHECK(refused.str("code") == "archived");
  CHECK(run_kaiwa({"room", "unarchive", "attic", "--admin", admin_url(node)}).status == 0);
  CHECK(alice.request(send_msg(6, "attic", "writable again"), 6).str("op") == "ack");
  CHECK(run_kaiwa({"room", "archive", "nowhere", "--admin", admin_url(node)}).status == 1);
}

TEST_CASE("a deletion a crash interrupted is finished when the node starts again",
          "[rooms-admin]") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  {
    node_process node(data);
    ws_client alice(node.port());
    alice.hello("alice");
    for (int i = 0; i < 3; ++i)
      REQUIRE(alice.request(send_msg(i + 1, "halfway", "walrus " + std::to_string(i)), i + 1)
                  .str("op") == "ack");
    REQUIRE(alice.request(send_msg(9, "other", "walrus elsewhere"), 9).str("op") == "ack");
    eventually(
        [&] {
          auto m = alice.request(R"({"op":"search","id":10,"q":"walrus"})", 10);
          return m.str("op") == "results" && m.array("hits").size() == 4;
        },
        "search finds all four");
    // A clean stop, so that the read models are on disk too (a kill may lose their last writes,
    // and the test would find them gone for the wrong reason).
    CHECK(node.stop(SIGTERM) == 0);
  }
  // What a deletion killed right after its first step leaves: the mark, and all the room's data.
  {
    kaiwa::storage::journal_config cfg;
    cfg.dir = data;
    auto j = kaiwa::storage::journal::open(cfg);
    REQUIRE(j.ok());
    REQUIRE((*j)->mark_deleting(kaiwa::room_id{"halfway"}).ok());
  }
  node_process node(data);
  CHECK(node.wait_output("room_delete_resumed", 10s));
  ws_client alice(node.port());
  alice.hello("alice");
  // The log went before the node served anything; the read models follow.
  CHECK(alice.request(R"({"op":"history","id":1,"room":"halfway"})", 1).str("code") == "not_found");
  eventually(
      [&] {
        // Right after a start the projections catch up and search answers `unavailable`.
        auto m = alice.request(R"({"op":"search","id":2,"q":"walrus"})", 2);  // owns the array
        if (m.str("op") != "results") return false;
        auto hits = m.array("hits");
        return hits.size() == 1 && std::string_view(hits.at(0)["room"]) == "other";
      },
      "only the other room's message is found");
  eventually([&] { return !listed(node, "halfway") && listed(node, "other"); },
             "the room is no longer listed");
  CHECK(node.wait_output("room_deleted room=halfway resumed=true", 10s));  // the mark is cleared
}
