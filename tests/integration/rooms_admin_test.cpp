// Managing what a node holds through the real admin API and CLI: rooms and users listed in
// pages, a room deleted under a live subscriber (and created again fresh), a room archived
// across a restart, and hostile listing and room inputs.

#include <catch2/catch.hpp>

#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <optional>
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
/// are appended in order (so duplicates show). Nothing while the rooms model is not live (503:
/// it catches up after a start, docs/operations.md).
std::optional<std::vector<std::string>> all_rooms(const node_process& node, int limit,
                                                  int* pages = nullptr) {
  std::vector<std::string> out;
  std::string after;
  for (int page = 1;; ++page) {
    auto target = "/admin/v1/rooms?limit=" + std::to_string(limit);
    if (!after.empty()) target += "&after=" + after;
    auto [status, body] = http_get(node.admin_port(), target);
    if (status == 503) return std::nullopt;
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

/// Whether the admin API lists `room`; nothing while the rooms model is not live.
std::optional<bool> listed(const node_process& node, const std::string& room) {
  auto rooms = all_rooms(node, 1000);
  if (!rooms) return std::nullopt;
  return std::find(rooms->begin(), rooms->end(), room) != rooms->end();
}

/// Waits until every projection is live and has applied every event noted (its writes may
/// still be only in memory).
void wait_applied(const node_process& node) {
  eventually(
      [&] {
        auto body = http_get(node.admin_port(), "/admin/v1/projections").second;
        auto count = [&](std::string_view what) {
          std::size_t n = 0;
          for (auto at = body.find(what); at != std::string::npos; at = body.find(what, at + 1))
            ++n;
          return n;
        };
        return count(R"("state":"live")") == 2 && count(R"("pending":0,)") == 2;
      },
      "the projections applied everything");
}

/// What a stopped node's read models still hold of `room`, key by key: the search index's doc
/// records and postings (each posting names its room in its doc suffix), and the room list's
/// info, members, live messages, user entries and directory key. Read offline, like a crash
/// leaves it, so that nothing a query would hide (an unknown room, a gone event) hides it.
struct read_leftovers {
  std::set<std::uint64_t> doc_seqs;      // search 0x02 room NUL seq
  std::set<std::uint64_t> posting_seqs;  // search 0x01 term NUL D naming the room
  std::size_t postings = 0;
  std::size_t info = 0, members = 0, live = 0, user_entries = 0, directory = 0;
  std::set<std::string> users;  // of the 0x03 user NUL room entries
};

read_leftovers leftovers_of(const std::string& data, const std::string& room) {
  using kaiwa::storage::read_family;
  kaiwa::storage::journal_config cfg;
  cfg.dir = data;
  auto j = kaiwa::storage::journal::open(cfg);
  REQUIRE(j.ok());
  auto be = [](std::string_view s) {
    std::uint64_t v = 0;
    for (char c : s) v = (v << 8) | static_cast<unsigned char>(c);
    return v;
  };
  read_leftovers out;
  std::string named = room + '\0';
  bool damaged = false;  // a key of neither layout
  auto search = (*j)->new_read_cursor(read_family::search);
  for (search->seek({}); search->valid(); search->next()) {
    auto k = search->key();
    if (k.size() < 3) continue;
    auto rest = k.substr(3);
    if (k[2] == 0x02 && rest.starts_with(named)) out.doc_seqs.insert(be(rest.substr(named.size())));
    if (k[2] != 0x01) continue;
    auto nul = rest.find('\0');
    auto d = nul == std::string_view::npos ? std::string_view() : rest.substr(nul + 1);
    // D: be48(~ts) ~room 0xff (8-n) ~seq[n]
    auto end = d.size() > 6 ? d.find('\xff', 6) : std::string_view::npos;
    if (end == std::string_view::npos || end + 2 > d.size()) {
      damaged = true;
      continue;
    }
    std::string name;
    for (char c : d.substr(6, end - 6)) name += static_cast<char>(~static_cast<unsigned char>(c));
    if (name != room) continue;
    std::string seq;
    for (char c : d.substr(end + 2)) seq += static_cast<char>(~static_cast<unsigned char>(c));
    out.posting_seqs.insert(be(seq));
    ++out.postings;
  }
  CHECK_FALSE(damaged);
  REQUIRE(search->state().ok());
  auto rooms = (*j)->new_read_cursor(read_family::rooms);
  for (rooms->seek({}); rooms->valid(); rooms->next()) {
    auto k = rooms->key();
    if (k.size() < 3) continue;
    auto rest = k.substr(3);
    switch (k[2]) {
      case 0x01:
        out.info += rest == room;
        break;
      case 0x02:
        out.members += rest.starts_with(named);
        break;
      case 0x04:
        out.live += rest.starts_with(named);
        break;
      case 0x03:
        if (rest.ends_with('\0' + room)) {
          ++out.user_entries;
          out.users.emplace(rest.substr(0, rest.find('\0')));
        }
        break;
      case 0x05: {  // ~(be64 ts, room) 0xff
        std::string sort;
        for (char c : rest.substr(0, rest.size() - 1))
          sort += static_cast<char>(~static_cast<unsigned char>(c));
        out.directory += sort.size() > 8 && sort.substr(8) == room;
        break;
      }
      default:
        break;
    }
  }
  REQUIRE(rooms->state().ok());
  return out;
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
  // Every event applied (the invitation too, which the counts below include): the listing
  // answers 503 while the rooms model catches up after the start.
  wait_applied(node);
  auto whole = all_rooms(node, 1000);
  REQUIRE(whole);
  CHECK(whole->size() == made.size());

  int pages = 0;
  auto paged = all_rooms(node, 5, &pages);
  REQUIRE(paged);
  CHECK(pages == 5);
  CHECK(paged->size() == made.size());
  CHECK(std::set<std::string>(paged->begin(), paged->end()) == made);  // each exactly once

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
  // The listing reads the rooms model, which answers 503 while it catches up after the start.
  eventually([&] { return http_get(node.admin_port(), "/admin/v1/rooms").first == 200; },
             "the rooms model answers");
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
  CHECK(listed(node, "doomed") == false);
  CHECK(listed(node, "kept") == true);
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
    eventually([&] { return listed(node, "attic") == true; }, "attic listed");
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
  eventually([&] { return listed(node, "halfway") == false && listed(node, "other") == true; },
             "the room is no longer listed");
  CHECK(node.wait_output("room_deleted room=halfway resumed=true", 10s));  // the mark is cleared
}

TEST_CASE(
    "a deletion killed while it erases the read models, then the name created again, and nothing "
    "of "
    "the old room shows or is left in them",
    "[rooms-admin]") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  // Many postings (13 a message), so that the erasure takes many synced batches and the kill
  // below most likely lands among them.
  constexpr int messages = 1500;
  auto words = [](int i) {
    std::string t = "zebra m" + std::to_string(i);
    for (int w = 0; w < 11; ++w) t += " w" + std::to_string(i * 11 + w);
    return t;
  };
  {
    node_process node(data);
    ws_client alice(node.port()), bob(node.port()), carol(node.port());
    alice.hello("alice");
    bob.hello("bob");
    carol.hello("carol");
    for (int i = 0; i < messages; i += 100) {
      for (int k = i; k < i + 100; ++k) alice.send(send_msg(k + 1, "doomed", words(k)));
      for (int k = i; k < i + 100; ++k) REQUIRE(alice.next().str("op") == "ack");
    }
    REQUIRE(bob.request(send_msg(1, "doomed", "bob was here"), 1).str("op") == "ack");
    REQUIRE(carol.request(R"({"op":"read","id":1,"room":"doomed","seq":5})", 1).str("op") == "ok");
    REQUIRE(alice.request(send_msg(2000, "kept", "zebra kept"), 2000).str("op") == "ack");
    eventually(
        [&] {
          auto m = carol.request(
              R"({"op":"search","id":2,"q":"m)" + std::to_string(messages - 1) + "\"}", 2);
          return m.str("op") == "results" && m.array("hits").size() == 1;
        },
        "the last message indexed", 60s);
    // A clean stop: the read models are on disk, for the erasure to find (a kill may lose their
    // last writes, which the projector would apply again).
    CHECK(node.stop(SIGTERM) == 0);
  }
  {
    node_process node(data);
    ws_client alice(node.port());
    alice.hello("alice");
    eventually(
        [&] {
          auto m = alice.request(R"({"op":"search","id":1,"q":"m0"})", 1);
          return m.str("op") == "results" && m.array("hits").size() == 1;
        },
        "the projections live again", 60s);
    // The request is sent and its answer never read: the node dies before it.
    int deleter = tcp_connect(node.admin_port());
    REQUIRE(deleter >= 0);
    std::string_view del =
        "DELETE /admin/v1/rooms/doomed HTTP/1.1\r\nHost: 127.0.0.1\r\nKaiwa-Admin: 1\r\n"
        "Content-Length: 0\r\n\r\n";
    REQUIRE(::write(deleter, del.data(), del.size()) == static_cast<ssize_t>(del.size()));
    // Killed as soon as the erasure has begun: the room info goes in its first batch, and the
    // room leaves alice's list with it; the search index's records follow, in many batches.
    eventually(
        [&] {
          auto m = alice.request(R"({"op":"rooms","id":3})", 3);
          if (m.str("op") != "rooms") return false;
          for (auto r : m.array("rooms"))
            if (std::string_view(r["room"]) == "doomed") return false;
          return true;
        },
        "the erasure begins", 30s);
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
    ::close(deleter);
  }
  {
    node_process node(data);
    ws_client alice(node.port()), bob(node.port()), carol(node.port());
    alice.hello("alice");
    bob.hello("bob");
    carol.hello("carol");
    CHECK(alice.request(R"({"op":"history","id":1,"room":"doomed"})", 1).str("code") ==
          "not_found");
    eventually(
        [&] {
          auto m = carol.request(R"({"op":"search","id":2,"q":"zebra"})", 2);
          if (m.str("op") != "results") return false;
          auto hits = m.array("hits");
          return hits.size() == 1 && std::string_view(hits.at(0)["room"]) == "kept";
        },
        "only the kept room's message is found", 60s);
    eventually([&] { return listed(node, "doomed") == false; }, "the room is no longer listed");

    // The name again, a public room from seq 1 (created, then three messages).
    for (int i = 0; i < 3; ++i)
      REQUIRE(carol.request(send_msg(10 + i, "doomed", "fresh " + std::to_string(i)), 10 + i)
                  .num("seq") == i + 2);
    eventually(
        [&] {
          auto m = carol.request(R"({"op":"search","id":20,"q":"fresh"})", 20);
          return m.str("op") == "results" && m.array("hits").size() == 3;
        },
        "the new room indexed");
    // Old words find nothing, though the new room's seqs are those of old messages.
    for (auto q : {"zebra", "m1", "w12", "bob"}) {
      auto m = carol.request(R"({"op":"search","id":21,"q":")" + std::string(q) + "\"}", 21);
      REQUIRE(m.str("op") == "results");
      for (auto h : m.array("hits")) CHECK(std::string_view(h["room"]) != "doomed");
    }
    // Only carol has the new room; her own messages are not unread, and no old marker remains.
    for (auto* c : {&alice, &bob}) {
      auto list = c->request(R"({"op":"rooms","id":30})", 30);
      for (auto r : list.array("rooms")) CHECK(std::string_view(r["room"]) != "doomed");
    }
    auto mine = carol.request(R"({"op":"rooms","id":31})", 31);
    bool found = false;
    for (auto r : mine.array("rooms")) {
      if (std::string_view(r["room"]) != "doomed") continue;
      found = true;
      CHECK(std::int64_t(r["head"]) == 4);
      CHECK(std::int64_t(r["read"]) == 0);
      CHECK(std::int64_t(r["unread"]) == 0);
    }
    CHECK(found);
    auto dirs = carol.request(R"({"op":"directory","id":32,"q":"doomed"})", 32);
    REQUIRE(dirs.array("rooms").size() == 1);
    CHECK(std::int64_t(dirs.array("rooms").at(0)["head"]) == 4);
    CHECK(node.stop(SIGTERM) == 0);
  }
  // What the read models hold of the name is the new room's, and nothing else.
  auto left = leftovers_of(data, "doomed");
  CHECK(left.doc_seqs == std::set<std::uint64_t>{2, 3, 4});
  CHECK(left.posting_seqs == std::set<std::uint64_t>{2, 3, 4});
  CHECK(left.postings == 6);  // "fresh" and a number each
  CHECK(left.info == 1);
  CHECK(left.members == 1);
  CHECK(left.live == 3);
  CHECK(left.users == std::set<std::string>{"carol"});
  CHECK(left.user_entries == 1);
  CHECK(left.directory == 1);
}

TEST_CASE(
    "a room deleted and the node killed right after, with read-model changes not yet flushed, "
    "then the name created again shows nothing of the old room to anyone",
    "[rooms-admin]") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  {
    node_process node(data);
    ws_client alice(node.port());
    alice.hello("alice");
    REQUIRE(alice
                .request(
                    R"({"op":"create","id":1,"room":"doomed","private":true,"members":["bob"]})", 1)
                .str("op") == "created");
    REQUIRE(alice.request(send_msg(2, "doomed", "original words"), 2).num("seq") == 2);
    wait_applied(node);
    // A clean stop writes the read models to their files.
    CHECK(node.stop(SIGTERM) == 0);
  }
  {
    node_process node(data);
    ws_client alice(node.port());
    alice.hello("alice");
    // Changes the projections apply in memory only: an edit (postings and record replaced) and
    // a kick (bob's membership and his entry for the room removed).
    REQUIRE(
        alice.request(R"({"op":"edit","id":1,"room":"doomed","ref":2,"text":"edited words"})", 1)
            .str("op") == "ack");
    REQUIRE(alice.request(R"({"op":"kick","id":2,"room":"doomed","user":"bob"})", 2).str("op") ==
            "ack");
    wait_applied(node);
    auto [status, body] =
        http_call(node.admin_port(), "DELETE", "/admin/v1/rooms/doomed", {{"Kaiwa-Admin", "1"}});
    REQUIRE(status == 200);
    // Deleted (the mark cleared): nothing is done again at the next start.
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
  }
  node_process node(data);
  ws_client alice(node.port()), bob(node.port());
  alice.hello("alice");
  bob.hello("bob");
  // A new private room of alice's alone, its message at the seq the old one had.
  REQUIRE(alice.request(R"({"op":"create","id":1,"room":"doomed","private":true})", 1).str("op") ==
          "created");
  REQUIRE(alice.request(send_msg(2, "doomed", "secret plans"), 2).num("seq") == 2);
  wait_applied(node);
  auto found = [&](ws_client& c, const std::string& q) {
    auto m = c.request(R"({"op":"search","id":3,"q":")" + q + "\"}", 3);
    REQUIRE(m.str("op") == "results");
    return m.array("hits").size();
  };
  CHECK(found(alice, "secret") == 1);
  CHECK(found(alice, "original") == 0);
  CHECK(found(alice, "edited") == 0);
  CHECK(found(bob, "secret") == 0);
  auto list = bob.request(R"({"op":"rooms","id":4})", 4);
  REQUIRE(list.str("op") == "rooms");
  for (auto r : list.array("rooms")) CHECK(std::string_view(r["room"]) != "doomed");
  CHECK(node.stop(SIGTERM) == 0);
  auto left = leftovers_of(data, "doomed");
  CHECK(left.members == 1);  // alice
  CHECK(left.users == std::set<std::string>{"alice"});
  CHECK(left.doc_seqs == std::set<std::uint64_t>{2});
  CHECK(left.posting_seqs == std::set<std::uint64_t>{2});
}
