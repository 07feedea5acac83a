#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "core/event.hpp"
#include "core/json.hpp"
#include "read/read_side.hpp"
#include "storage/journal.hpp"
#include "tests/read/log_fixture.hpp"

using namespace kaiwa;
using namespace kaiwa::read;
using namespace std::chrono_literals;

namespace {

/// A public room created by alice with one message.
void make_room(storage::journal& j, const std::string& room) {
  storage::write_set ws;
  event c;
  c.room = room_id{room};
  c.seq = 1;
  c.ts = now_millis();
  c.type = event_type::created;
  c.from = user_id{"alice"};
  event m = c;
  m.seq = 2;
  m.type = event_type::message;
  m.text = "hello " + room;
  for (auto* e : {&c, &m}) ws.put_event(e->room, e->seq, test::encode(*e));
  test::commit(j, std::move(ws));
}

query_reply ask(read_side& rs, query_request r) {
  std::promise<query_reply> got;
  auto fut = got.get_future();
  rs.query(std::move(r), [&](query_reply q) { got.set_value(std::move(q)); });
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  return fut.get();
}

query_request directory() {
  query_request r;
  r.kind = query_kind::directory;
  r.user = user_id{"bob"};
  r.limit = 10;
  return r;
}

/// Asks until the local directory lists `n` rooms (the projector applies after the commit).
query_reply until_rooms(read_side& rs, std::size_t n) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (true) {
    auto r = ask(rs, directory());
    if (!r.error && r.result.items.size() >= n) return r;
    if (std::chrono::steady_clock::now() > deadline) FAIL("the directory never had " << n);
    std::this_thread::yield();
  }
}

}  // namespace

TEST_CASE("a query merges this node's page with the members' pages; junk or silence is partial") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  make_room(*j, "local");
  std::atomic<bool> junk = false, remote_more = false, asked_well = true;
  read_side_hooks hooks;
  // On a query thread: it only records (Catch2 asserts on the test's thread).
  hooks.ask_members = [&](std::string request, std::chrono::milliseconds timeout,
                          std::function<void(std::vector<std::string>, bool)> done) {
    if (!decode_query(request) || timeout != 2s) asked_well = false;
    page remote;
    remote.items.push_back({std::string(8, '\xff') + "remote", R"({"room":"remote"})"});
    remote.more = remote_more;
    std::vector<std::string> pages{encode_page(remote)};
    if (junk) pages.push_back("junk");
    done(std::move(pages), false);
  };
  read_side rs(*j, {}, hooks);
  rs.start();
  auto r = until_rooms(rs, 2);
  REQUIRE(r.result.items.size() == 2);
  CHECK(r.result.items[0].json == R"({"room":"remote"})");  // the newest first, whoever has it
  CHECK(r.result.items[1].json.find("\"local\"") != std::string::npos);
  CHECK_FALSE(r.result.more);
  CHECK_FALSE(r.partial);
  // A member with more past its page: ours below it waits for the next page (read/page.hpp).
  remote_more = true;
  auto held = ask(rs, directory());
  REQUIRE(held.result.items.size() == 1);
  CHECK(held.result.items[0].json == R"({"room":"remote"})");
  CHECK(held.result.more);
  junk = true;
  CHECK(ask(rs, directory()).partial);
  CHECK(asked_well);
}

TEST_CASE("a reply is partial when the pages leave a shard unread, though every member answered") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  make_room(*j, "local");
  auto shards = j->shards();
  std::atomic<std::uint32_t> missing = 7;  // a shard between owners; `shards`: none
  read_side_hooks hooks;
  hooks.owned_shards = [&] {
    std::vector<shard_t> mine;
    for (std::uint32_t s = 0; s < shards / 2; ++s) mine.push_back(static_cast<shard_t>(s));
    return mine;
  };
  hooks.ask_members = [&](std::string, std::chrono::milliseconds,
                          std::function<void(std::vector<std::string>, bool)> done) {
    page remote;  // the other member holds the upper half, except `missing`
    for (std::uint32_t s = shards / 2; s < shards; ++s)
      if (s != missing + shards / 2) cover(remote, static_cast<shard_t>(s));
    done({encode_page(remote)}, false);
  };
  read_side rs(*j, {}, hooks);
  rs.start();
  auto until_live = [&] {
    for (auto deadline = std::chrono::steady_clock::now() + 10s;;) {
      auto r = ask(rs, directory());
      if (!r.error) return r;
      if (std::chrono::steady_clock::now() > deadline) FAIL("the read side never went live");
      std::this_thread::yield();
    }
  };
  CHECK(until_live().partial);
  missing = shards;  // the upper half whole
  CHECK_FALSE(until_live().partial);
}

TEST_CASE("a member's query gets this node's page; bytes that are no query get nothing") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  make_room(*j, "here");
  read_side rs(*j, {}, {});
  rs.start();
  until_rooms(rs, 1);
  auto answer = [&](std::string bytes) {
    std::promise<std::string> got;
    auto fut = got.get_future();
    rs.answer_member(bytes, [&](std::string page) { got.set_value(std::move(page)); });
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    return fut.get();
  };
  auto p = decode_page(answer(encode_query(directory())));
  REQUIRE(p);
  CHECK(p->items.size() == 1);
  CHECK(answer("not a query").empty());
}

TEST_CASE("queries past a full queue answer rate_limited, and nothing is lost or answered twice") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  make_room(*j, "r");
  std::mutex mtx;
  std::condition_variable cv;
  bool held = false, release = false;
  read_side_hooks hooks;
  hooks.ask_members = [&](std::string, std::chrono::milliseconds,
                          std::function<void(std::vector<std::string>, bool)> done) {
    std::unique_lock lock(mtx);
    held = true;
    cv.notify_all();
    // Bounded: a failed check must end the test, not leave the query thread waiting here for
    // ever while the read side's destructor joins it.
    cv.wait_for(lock, 20s, [&] { return release; });
    done({}, false);
  };
  read_side_config cfg;
  cfg.query_threads = 1;
  cfg.query_queue = 1;
  read_side rs(*j, cfg, hooks);
  rs.start();
  {
    // Live first (each query goes through the hook once the projections answer).
    std::lock_guard lock(mtx);
    release = true;
  }
  until_rooms(rs, 1);
  {
    // The queries above went through the hook too: `held` must say the next one is there.
    std::lock_guard lock(mtx);
    release = false;
    held = false;
  }
  std::promise<query_reply> first, second;
  rs.query(directory(), [&](query_reply q) { first.set_value(std::move(q)); });
  {
    std::unique_lock lock(mtx);
    REQUIRE(cv.wait_for(lock, 10s, [&] { return held; }));  // the one thread is busy
  }
  rs.query(directory(), [&](query_reply q) { second.set_value(std::move(q)); });  // queued
  auto refused = ask(rs, directory());
  REQUIRE(refused.error);
  CHECK(refused.error->code == errc::rate_limited);
  {
    std::lock_guard lock(mtx);
    release = true;
  }
  cv.notify_all();
  auto f1 = first.get_future(), f2 = second.get_future();
  REQUIRE(f1.wait_for(10s) == std::future_status::ready);
  REQUIRE(f2.wait_for(10s) == std::future_status::ready);
}

TEST_CASE("with projections off, or while one is rebuilt, queries answer unavailable") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  {
    read_side_config off;
    off.projections = false;
    read_side rs(*j, off, {});
    rs.start();
    auto r = ask(rs, directory());
    REQUIRE(r.error);
    CHECK(r.error->code == errc::unavailable);
    CHECK(rs.stats().empty());
    CHECK(rs.rebuild("rooms").has_value());
  }
  make_room(*j, "r");
  read_side rs(*j, {}, {});
  rs.start();
  until_rooms(rs, 1);
  REQUIRE_FALSE(rs.rebuild("rooms").has_value());
  // Until it is live again: unavailable, saying why (or the rebuilt answer, if it was quick).
  auto r = ask(rs, directory());
  if (r.error) {
    CHECK(r.error->code == errc::unavailable);
    CHECK(r.error->message.find("rebuilding") != std::string::npos);
  }
  until_rooms(rs, 1);
}
