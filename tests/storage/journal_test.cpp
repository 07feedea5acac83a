#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <rocksdb/db.h>

#include "storage/journal.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

std::unique_ptr<storage::journal> open_journal(const test::temp_dir& dir) {
  auto j = storage::journal::open({dir.str(), true});
  REQUIRE(j.ok());
  return std::move(j).value();
}

// Commits `ws` and waits (bounded) for its completion.
storage::status commit_and_wait(storage::journal& j, storage::write_set ws) {
  std::promise<storage::status> done;
  auto fut = done.get_future();
  j.commit(std::move(ws), [&](const storage::status& s) { done.set_value(s); });
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  return fut.get();
}

std::string ev(int seq) { return "e" + std::to_string(seq); }

}  // namespace

TEST_CASE("events of a room come back in seq order and never mix with another room's") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  storage::write_set ws;
  room_id a{"a"}, ab{"ab"};
  for (int i = 1; i <= 10; ++i) ws.put_event(a, i, ev(i));
  ws.put_event(ab, 1, "other");
  REQUIRE(commit_and_wait(*j, std::move(ws)).ok());

  auto after = j->events_after(a, 3, 4);
  REQUIRE(after.ok());
  CHECK(*after == std::vector<std::string>{ev(4), ev(5), ev(6), ev(7)});

  auto tail = j->events_after(a, 8, 100);
  REQUIRE(tail.ok());
  CHECK(*tail == std::vector<std::string>{ev(9), ev(10)});

  auto first = j->events_after(a, 0, 3);
  REQUIRE(first.ok());
  CHECK(*first == std::vector<std::string>{ev(1), ev(2), ev(3)});

  CHECK(*j->last_seq(a) == 10);
  CHECK(*j->last_seq(ab) == 1);
  CHECK(*j->last_seq(room_id{"none"}) == 0);
  CHECK(**j->event(a, 5) == ev(5));
  CHECK_FALSE(*j->event(a, 11));
}

TEST_CASE("markers, dedupe keys and snapshots are stored per key") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  room_id r{"r"};
  user_id u{"u"};
  CHECK(*j->marker(u, r) == 0);
  CHECK_FALSE(*j->dedupe(r, u, "c1"));
  CHECK_FALSE(*j->snapshot(r));
  storage::write_set ws;
  ws.put_marker(u, r, 42);
  ws.put_dedupe(r, u, "c1", 7);
  ws.put_snapshot(r, "snap");
  REQUIRE(commit_and_wait(*j, std::move(ws)).ok());
  CHECK(*j->marker(u, r) == 42);
  CHECK(*j->marker(user_id{"r"}, room_id{"u"}) == 0);
  CHECK(**j->dedupe(r, u, "c1") == 7);
  CHECK(**j->snapshot(r) == "snap");
}

TEST_CASE("group commit: concurrent writers complete in order and share syncs") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  constexpr int threads = 4, per_thread = 200;
  // Counted on the journal's thread, checked on the test's: Catch's assertions are not
  // thread-safe.
  std::atomic<int> completed{0}, failed{0}, out_of_order{0};
  std::promise<void> all_done;
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      room_id room{"room" + std::to_string(t)};
      auto last = std::make_shared<std::atomic<int>>(0);
      for (int i = 1; i <= per_thread; ++i) {
        storage::write_set ws;
        ws.put_event(room, i, ev(i));
        j->commit(std::move(ws), [&, i, last](const storage::status& s) {
          if (!s.ok()) ++failed;
          if (last->exchange(i) != i - 1) ++out_of_order;  // completions keep submission order
          if (++completed == threads * per_thread) all_done.set_value();
        });
      }
    });
  }
  for (auto& t : ts) t.join();
  REQUIRE(all_done.get_future().wait_for(30s) == std::future_status::ready);
  CHECK(failed == 0);
  CHECK(out_of_order == 0);
  auto st = j->stats();
  CHECK(st.write_sets == threads * per_thread);
  CHECK(st.commits < st.write_sets);  // writes were grouped
  for (int t = 0; t < threads; ++t)
    CHECK(*j->last_seq(room_id{"room" + std::to_string(t)}) == per_thread);
}

TEST_CASE("what was committed survives closing and reopening") {
  test::temp_dir dir;
  {
    auto j = open_journal(dir);
    storage::write_set ws;
    ws.put_event(room_id{"r"}, 1, "one");
    REQUIRE(commit_and_wait(*j, std::move(ws)).ok());
  }
  auto j = open_journal(dir);
  CHECK(**j->event(room_id{"r"}, 1) == "one");
}

TEST_CASE("a stopped journal refuses commits with errc::stopped") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  j->stop();
  storage::write_set ws;
  ws.put_event(room_id{"r"}, 1, "x");
  auto s = commit_and_wait(*j, std::move(ws));
  REQUIRE_FALSE(s.ok());
  CHECK(s.err().code == storage::errc::stopped);
}

TEST_CASE("opening a path that can't be a database fails with an error value") {
  test::temp_dir dir;
  auto file = dir.path() / "file";
  { std::ofstream(file) << "x"; }
  auto j = storage::journal::open({file.string(), true});
  REQUIRE_FALSE(j.ok());
  CHECK_FALSE(j.err().message.empty());
}

TEST_CASE("a checkpoint opens as a database with everything committed before it") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  storage::write_set ws;
  ws.put_event(room_id{"r"}, 1, "one");
  REQUIRE(commit_and_wait(*j, std::move(ws)).ok());
  auto cp_dir = (dir.path() / "cp").string();
  auto info = j->checkpoint(cp_dir);
  REQUIRE(info.ok());
  CHECK(info->files > 0);
  CHECK(info->bytes > 0);
  CHECK_FALSE(j->checkpoint(cp_dir).ok());  // exists already
  auto copy = storage::journal::open({cp_dir, true});
  REQUIRE(copy.ok());
  CHECK(**copy.value()->event(room_id{"r"}, 1) == "one");
}

TEST_CASE("a shard's records move to another database as SST files, and nothing else does") {
  test::temp_dir a_dir, b_dir, files;
  auto a = open_journal(a_dir);
  auto b = open_journal(b_dir);
  // Two rooms in one shard and one room in another.
  room_id r1{"r1"}, other{"r1"};
  std::string name;
  for (int i = 2;; ++i) {
    name = "r" + std::to_string(i);
    if (shard_of(name, a->shards()) == shard_of("r1", a->shards())) break;
  }
  room_id r2{name};
  for (int i = 2;; ++i) {
    name = "x" + std::to_string(i);
    if (shard_of(name, a->shards()) != shard_of("r1", a->shards())) break;
  }
  other = room_id{name};
  auto shard = shard_of("r1", a->shards());

  storage::write_set ws;
  for (int i = 1; i <= 100; ++i) ws.put_event(r1, i, ev(i));
  ws.put_event(r2, 1, "r2-1");
  ws.put_event(other, 1, "other-1");
  ws.put_snapshot(r1, "snap");
  ws.put_marker(user_id{"alice"}, r1, 7);
  ws.put_dedupe(r1, user_id{"alice"}, "c1", 3);
  REQUIRE(commit_and_wait(*a, std::move(ws)).ok());
  // Read models are keyed by shard too, and move with it.
  auto rb = a->new_read_batch();
  rb.put(storage::read_family::search, storage::shard_prefix(shard) + "\x01term", "posting");
  rb.put(storage::read_family::search,
         storage::shard_prefix(shard_of(other.str(), a->shards())) + "\x01term", "elsewhere");
  REQUIRE(a->write_reads(std::move(rb)).ok());

  auto exported = a->export_shard(shard, files.str() + "/out");
  REQUIRE(exported.ok());
  CHECK(exported->records == 100 + 1 + 1 + 1 + 1 + 1);
  CHECK(exported->paths.size() == 5);  // events, snapshots, markers, dedupe, read.search

  // Files of one shard are refused as another's (they would overwrite its neighbours), and
  // what that shard held stays.
  storage::write_set kept;
  kept.put_event(other, 1, "kept");
  REQUIRE(commit_and_wait(*b, std::move(kept)).ok());
  auto other_shard = shard_of(other.str(), a->shards());
  REQUIRE(other_shard != shard);
  CHECK(b->ingest_shard(other_shard, exported->paths).err().code == storage::errc::invalid);
  CHECK(b->events_after(other, 0, 10)->size() == 1);
  CHECK(b->events_after(r1, 0, 10)->empty());

  // Stale data of the shard on the receiver is replaced, not merged.
  storage::write_set stale;
  stale.put_event(r1, 101, "stale");
  REQUIRE(commit_and_wait(*b, std::move(stale)).ok());
  REQUIRE(b->ingest_shard(shard, exported->paths).ok());
  CHECK(b->last_seq(r1).value() == 100);
  CHECK(b->events_after(r1, 0, 1000)->size() == 100);
  CHECK(b->events_after(r2, 0, 10)->size() == 1);
  CHECK(*b->events_after(other, 0, 10) == std::vector<std::string>{"kept"});
  CHECK(b->snapshot(r1).value() == std::optional<std::string>("snap"));
  CHECK(b->marker(user_id{"alice"}, r1).value() == 7);
  CHECK(b->dedupe(r1, user_id{"alice"}, "c1").value() == std::optional<seq_t>(3));
  CHECK(b->read_get(storage::read_family::search, storage::shard_prefix(shard) + "\x01term")
            .value() == std::optional<std::string>("posting"));

  REQUIRE(a->drop_shard(shard).ok());
  CHECK(a->count_shard(shard).value() == 0);
  CHECK(a->events_after(other, 0, 10)->size() == 1);
}

TEST_CASE("rooms on disk are counted exactly through creations, shard moves and reopens") {
  test::temp_dir a_dir, b_dir, files;
  auto a = open_journal(a_dir);
  auto b = open_journal(b_dir);
  auto shard = shard_of("r1", a->shards());
  std::vector<room_id> here, elsewhere;
  for (int i = 0; here.size() < 3 || elsewhere.size() < 2; ++i) {
    room_id r{"r" + std::to_string(i)};
    (shard_of(r.str(), a->shards()) == shard ? here : elsewhere).push_back(r);
  }
  here.resize(3);
  elsewhere.resize(2);
  // A room is stored by its `created` event (seq 1) with its first meta record; later meta
  // writes and events don't count it again.
  for (auto* rooms : {&here, &elsewhere})
    for (auto& r : *rooms) {
      storage::write_set ws;
      ws.put_event(r, 1, "created");
      ws.put_meta(r, "m");
      REQUIRE(commit_and_wait(*a, std::move(ws)).ok());
      storage::write_set more;
      more.put_event(r, 2, "message");
      more.put_meta(r, "m2");
      REQUIRE(commit_and_wait(*a, std::move(more)).ok());
    }
  CHECK(a->disk().rooms == 5);

  auto exported = a->export_shard(shard, files.str() + "/out");
  REQUIRE(exported.ok());
  REQUIRE(a->drop_shard(shard).ok());
  CHECK(a->disk().rooms == 2);  // RocksDB's key estimate still counted the dropped ones
  REQUIRE(b->ingest_shard(shard, exported->paths).ok());
  CHECK(b->disk().rooms == 3);

  a.reset();
  CHECK(open_journal(a_dir)->disk().rooms == 2);
}

TEST_CASE("settings survive a reopen; the shard count of a data dir can't change") {
  test::temp_dir dir;
  {
    auto j = open_journal(dir);
    REQUIRE(j->put_setting("cluster.map", "m1").ok());
  }
  {
    auto j = open_journal(dir);
    CHECK(j->setting("cluster.map").value() == std::optional<std::string>("m1"));
    CHECK(!j->setting("nope").value());
  }
  storage::journal_config cfg{dir.str(), true};
  cfg.shards = 16;
  auto refused = storage::journal::open(cfg);
  REQUIRE(!refused.ok());
  CHECK(refused.err().message.find("1024 shards") != std::string::npos);
}

TEST_CASE("a data dir whose stored shard count is damaged is refused with an error, not a throw") {
  for (auto bad : {"", "0", "abc", "16x", "99999999999", "65537"}) {
    test::temp_dir dir;
    {
      auto j = open_journal(dir);
      REQUIRE(j->put_setting("kaiwa.shards", bad).ok());
    }
    auto refused = storage::journal::open({dir.str(), true});
    REQUIRE(!refused.ok());
    CHECK(refused.err().code == storage::errc::corruption);
  }
}

TEST_CASE("a data dir written before shards existed is rewritten with shard-prefixed keys") {
  test::temp_dir dir;
  {
    // The old layout: keys start with the room (markers: user NUL room), no format setting.
    rocksdb::Options opts;
    opts.create_if_missing = true;
    opts.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    descs.emplace_back(rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions());
    for (auto name : {"events", "snapshots", "meta", "markers", "dedupe", "replog", "read.rooms",
                      "read.search"})
      descs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(opts), dir.str(), descs, &h, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    auto be64 = [](std::uint64_t v) {
      std::string s;
      for (int i = 7; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
      return s;
    };
    using namespace std::string_literals;
    for (int seq = 1; seq <= 3; ++seq)
      REQUIRE(db->Put({}, h[1], "old\0"s + be64(seq), "e" + std::to_string(seq)).ok());
    REQUIRE(db->Put({}, h[2], "old", "snap").ok());
    REQUIRE(db->Put({}, h[3], "old", "meta").ok());
    REQUIRE(db->Put({}, h[4], "alice\0old"s, be64(2)).ok());
    REQUIRE(db->Put({}, h[5], "old\0alice\0c1"s, be64(3)).ok());
    for (auto* x : h) db->DestroyColumnFamilyHandle(x);
  }
  auto j = open_journal(dir);
  room_id old{"old"};
  CHECK(j->events_after(old, 0, 10).value() == std::vector<std::string>{"e1", "e2", "e3"});
  CHECK(j->last_seq(old).value() == 3);
  CHECK(j->snapshot(old).value() == std::optional<std::string>("snap"));
  CHECK(j->marker(user_id{"alice"}, old).value() == 2);
  CHECK(j->dedupe(old, user_id{"alice"}, "c1").value() == std::optional<seq_t>(3));
  CHECK(j->count_shard(shard_of("old", j->shards())).value() == 7);
}

TEST_CASE("an event rewritten in place is served in its new form, and compaction erases the old") {
  test::temp_dir dir;
  room_id r{"r"};
  const std::string secret = "the-original-text-that-was-deleted";
  {
    auto j = open_journal(dir);
    storage::write_set first;
    first.put_event(r, 1, "{\"text\":\"" + secret + "\"}");
    REQUIRE(commit_and_wait(*j, std::move(first)).ok());
    storage::write_set second;  // the delete event and the redacted message, one atomic write
    second.put_event(r, 2, "{\"type\":\"delete\",\"ref\":1}");
    second.put_event(r, 1, "{\"deleted\":true}");
    REQUIRE(commit_and_wait(*j, std::move(second)).ok());
    CHECK(**j->event(r, 1) == "{\"deleted\":true}");
    CHECK(j->events_after(r, 0, 10).value() ==
          std::vector<std::string>{"{\"deleted\":true}", "{\"type\":\"delete\",\"ref\":1}"});
  }
  {
    // Flush and fully compact, as RocksDB eventually does on its own; the WAL that held the
    // old value is deleted once its memtable is flushed. Uncompressed, so that the files can
    // be searched for the text.
    rocksdb::Options opts;
    rocksdb::ColumnFamilyOptions plain;
    plain.compression = rocksdb::kNoCompression;
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    descs.emplace_back(rocksdb::kDefaultColumnFamilyName, plain);
    for (auto name : {"events", "snapshots", "meta", "markers", "dedupe", "replog", "read.rooms",
                      "read.search"})
      descs.emplace_back(name, plain);
    std::vector<rocksdb::ColumnFamilyHandle*> h;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(rocksdb::DBOptions(opts), dir.str(), descs, &h, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    REQUIRE(db->Flush(rocksdb::FlushOptions(), h[1]).ok());
    rocksdb::CompactRangeOptions co;
    co.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
    REQUIRE(db->CompactRange(co, h[1], nullptr, nullptr).ok());
    for (auto* x : h) REQUIRE(db->DestroyColumnFamilyHandle(x).ok());
  }
  std::string all;
  for (auto& f : std::filesystem::directory_iterator(dir.str())) {
    std::ifstream in(f.path(), std::ios::binary);
    all.append(std::istreambuf_iterator<char>(in), {});
  }
  CHECK(all.find(secret) == std::string::npos);
  CHECK(all.find("{\"deleted\":true}") != std::string::npos);
}

TEST_CASE("a read batch reads its own writes, and is invisible until written") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  using storage::read_family;
  auto b = j->new_read_batch();
  b.put(read_family::rooms, "\x00\x01k1"s, "v1");
  CHECK(b.get(read_family::rooms, "\x00\x01k1"s).value() == std::optional<std::string>("v1"));
  CHECK_FALSE(b.get(read_family::search, "\x00\x01k1"s).value());  // families are apart
  CHECK_FALSE(j->read_get(read_family::rooms, "\x00\x01k1"s).value());
  CHECK(b.count() == 1);
  REQUIRE(j->write_reads(std::move(b)).ok());
  CHECK(j->read_get(read_family::rooms, "\x00\x01k1"s).value() == std::optional<std::string>("v1"));

  auto b2 = j->new_read_batch();
  b2.del(read_family::rooms, "\x00\x01k1"s);
  CHECK_FALSE(b2.get(read_family::rooms, "\x00\x01k1"s).value());
  b2.put(read_family::rooms, "\x00\x01k2"s, "v2");
  b2.put(read_family::rooms, "\x00\x01k3"s, "v3");
  REQUIRE(j->write_reads(std::move(b2)).ok());

  auto c = j->new_read_cursor(read_family::rooms);
  std::vector<std::string> keys;
  for (c->seek(std::string("\x00\x01"s, 2)); c->valid(); c->next()) keys.emplace_back(c->key());
  CHECK(c->state().ok());
  CHECK(keys == std::vector<std::string>{"\x00\x01k2"s, "\x00\x01k3"s});
  c->seek_for_prev("\x00\x01k9"s);
  REQUIRE(c->valid());
  CHECK(c->value() == "v3");

  REQUIRE(j->drop_reads(read_family::rooms).ok());
  CHECK_FALSE(j->read_get(read_family::rooms, "\x00\x01k2"s).value());
}

TEST_CASE("after each group commit the journal reports each room's highest seq written") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  std::mutex m;
  std::vector<storage::journal::appended> seen;
  j->on_appended([&](const std::vector<storage::journal::appended>& a) {
    std::lock_guard lock(m);
    seen.insert(seen.end(), a.begin(), a.end());
  });
  storage::write_set ws;
  ws.put_event(room_id{"a"}, 1, "a1");
  ws.put_event(room_id{"a"}, 2, "a2");
  ws.put_marker(user_id{"u"}, room_id{"b"}, 5);  // not an event: not reported
  REQUIRE(commit_and_wait(*j, std::move(ws)).ok());
  storage::write_set rewrite;  // an edit: the new event and the message rewritten in place
  rewrite.put_event(room_id{"a"}, 3, "a3");
  rewrite.put_event(room_id{"a"}, 1, "a1 edited");
  REQUIRE(commit_and_wait(*j, std::move(rewrite)).ok());
  std::lock_guard lock(m);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].room == "a");
  CHECK(seen[0].seq == 2);
  CHECK(seen[1].seq == 3);
}

TEST_CASE("room heads list every room with its last seq, paged, and per shard") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  storage::write_set ws;
  for (int r = 0; r < 50; ++r)
    for (int s = 1; s <= r % 5 + 1; ++s) ws.put_event(room_id{"room" + std::to_string(r)}, s, "e");
  REQUIRE(commit_and_wait(*j, std::move(ws)).ok());
  std::map<std::string, seq_t> all;
  std::optional<room_id> after;
  for (;;) {
    auto page = j->room_heads(after, 7);
    REQUIRE(page.ok());
    if (page->empty()) break;
    for (auto& h : *page) CHECK(all.emplace(h.room.str(), h.last).second);
    after = page->back().room;
  }
  REQUIRE(all.size() == 50);
  for (int r = 0; r < 50; ++r) CHECK(all["room" + std::to_string(r)] == seq_t(r % 5 + 1));

  auto shard = shard_of("room7", j->shards());
  auto one = j->room_heads(std::nullopt, 100, shard);
  REQUIRE(one.ok());
  REQUIRE_FALSE(one->empty());
  for (auto& h : *one) CHECK(shard_of(h.room.str(), j->shards()) == shard);
}

TEST_CASE("a user's read markers are listed per shard") {
  test::temp_dir dir;
  auto j = open_journal(dir);
  storage::write_set ws;
  ws.put_marker(user_id{"alice"}, room_id{"r1"}, 4);
  ws.put_marker(user_id{"alice2"}, room_id{"r1"}, 9);  // a name that extends alice's
  ws.put_marker(user_id{"bob"}, room_id{"r1"}, 5);
  REQUIRE(commit_and_wait(*j, std::move(ws)).ok());
  auto m = j->markers_of(user_id{"alice"}, shard_of("r1", j->shards()));
  REQUIRE(m.ok());
  REQUIRE(m->size() == 1);
  CHECK((*m)[0].first.str() == "r1");
  CHECK((*m)[0].second == 4);
}

TEST_CASE("deleting a room's log removes every record of it and nothing of the rooms beside it") {
  test::temp_dir dir;
  storage::journal_config cfg;
  cfg.dir = dir.str();
  cfg.shards = 1;  // every room in the same shard, "a" a prefix of "ab"
  auto opened = storage::journal::open(cfg);
  REQUIRE(opened.ok());
  auto j = std::move(opened).value();
  room_id a{"a"}, ab{"ab"}, b{"b"};
  user_id u{"u"}, v{"v"};
  auto records_of = [&](const room_id& r, int events) {
    storage::write_set ws;
    for (int i = 1; i <= events; ++i) ws.put_event(r, i, ev(i));
    ws.put_snapshot(r, "snap");
    ws.put_meta(r, "meta");
    ws.put_dedupe(r, u, "c1", 1);
    ws.put_marker(u, r, 1);
    ws.put_marker(v, r, 2);
    REQUIRE(commit_and_wait(*j, std::move(ws)).ok());
    return events + 5;  // events, snapshot, meta, dedupe, two markers
  };
  records_of(a, 50);
  auto kept = records_of(ab, 3) + records_of(b, 4);
  CHECK(j->disk().rooms == 3);

  REQUIRE(j->mark_deleting(a).ok());
  REQUIRE(j->delete_room_log(a).ok());
  CHECK(*j->count_shard(0) == static_cast<std::uint64_t>(kept));
  CHECK(j->events_after(a, 0, 100)->empty());
  CHECK(*j->last_seq(a) == 0);
  CHECK_FALSE(j->snapshot(a)->has_value());
  CHECK_FALSE(j->room_meta(a)->has_value());
  CHECK_FALSE(j->dedupe(a, u, "c1")->has_value());
  CHECK(*j->marker(u, a) == 0);
  CHECK(*j->marker(v, a) == 0);
  CHECK(j->disk().rooms == 2);
  for (auto& [r, n] : {std::pair{ab, 3}, std::pair{b, 4}}) {
    CHECK(j->events_after(r, 0, 100)->size() == static_cast<std::size_t>(n));
    CHECK(j->snapshot(r)->has_value());
    CHECK(j->dedupe(r, u, "c1")->has_value());
    CHECK(*j->marker(v, r) == 2);
  }
  // Idempotent (a deletion done again at start), and the name takes a new log from seq 1.
  REQUIRE(j->delete_room_log(a).ok());
  CHECK(*j->count_shard(0) == static_cast<std::uint64_t>(kept));
  storage::write_set again;
  again.put_event(a, 1, "new");
  REQUIRE(commit_and_wait(*j, std::move(again)).ok());
  CHECK(*j->events_after(a, 0, 100) == std::vector<std::string>{"new"});

  // The deletion mark survives a reopen until it is cleared.
  j.reset();
  j = std::move(storage::journal::open(cfg)).value();
  CHECK(*j->rooms_being_deleted() == std::vector<room_id>{a});
  REQUIRE(j->unmark_deleting(a).ok());
  CHECK(j->rooms_being_deleted()->empty());
}

TEST_CASE(
    "a follower appends a leader's entries, applies them at the high watermark, and "
    "truncates what it never applied",
    "[replication]") {
  test::temp_dir leader_dir, follower_dir;
  auto leader = open_journal(leader_dir);
  auto follower = open_journal(follower_dir);
  room_id room{"lobby"};
  auto shard = shard_of(room.str(), leader->shards());
  std::vector<storage::journal::appended> seen;
  follower->on_appended([&](const std::vector<storage::journal::appended>& a) {
    seen.insert(seen.end(), a.begin(), a.end());
  });

  // The leader turns each room commit into an entry (offset, epoch, payload).
  std::vector<storage::journal::replica_entry> entries;
  for (int seq = 1; seq <= 3; ++seq) {
    storage::write_set ws;
    ws.put_event(room, seq, ev(seq));
    ws.put_meta(room, "meta" + std::to_string(seq));
    ws.put_dedupe(room, user_id{"alice"}, "c" + std::to_string(seq), seq);
    ws.put_marker(user_id{"alice"}, room, seq);
    entries.push_back({static_cast<std::uint64_t>(seq), 1, leader->replica_payload(ws)});
  }

  auto append = [&](std::vector<storage::journal::replica_entry> e) {
    std::promise<storage::status> done;
    auto fut = done.get_future();
    follower->append_replica_entries(shard, std::move(e),
                                     [&](const storage::status& s) { done.set_value(s); });
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    return fut.get();
  };
  auto apply = [&](const std::vector<storage::journal::replica_entry>& e) {
    std::promise<storage::status> done;
    auto fut = done.get_future();
    auto st = follower->apply_replica_entries(shard, e,
                                              [&](const storage::status& s) { done.set_value(s); });
    if (!st.ok()) return st;
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    return fut.get();
  };

  REQUIRE(append(entries).ok());
  auto at = follower->replica_position(shard);
  REQUIRE(at.ok());
  CHECK(at->log_end == 3);
  CHECK(at->applied == 0);
  CHECK_FALSE(*follower->event(room, 1));  // appended, not applied: not acked yet

  auto read = follower->replica_entries(shard, 0, 2, 1 << 20);
  REQUIRE(read.ok());
  REQUIRE(read->size() == 2);
  CHECK((*read)[1].offset == 2);
  CHECK((*read)[1].epoch == 1);
  CHECK((*read)[1].payload == entries[1].payload);
  // A byte bound still gives one entry.
  CHECK(follower->replica_entries(shard, 0, 10, 1)->size() == 1);

  // The high watermark reaches 2: entries 1 and 2 become records, as on the leader.
  REQUIRE(apply(*read).ok());
  CHECK(*follower->event(room, 2) == ev(2));
  CHECK(*follower->room_meta(room) == "meta2");
  CHECK(*follower->dedupe(room, user_id{"alice"}, "c2") == 2u);
  CHECK(*follower->marker(user_id{"alice"}, room) == 2u);
  CHECK(follower->replica_position(shard)->applied == 2);
  REQUIRE_FALSE(seen.empty());  // the projections follow applied records
  CHECK(seen.back().room == "lobby");
  CHECK(seen.back().seq == 2);

  // A new leader's log parts after 2: entry 3 goes; 2 is applied and can't.
  CHECK(follower->truncate_replica_log(shard, 1).err().code == storage::errc::invalid);
  REQUIRE(follower->truncate_replica_log(shard, 2).ok());
  CHECK(follower->replica_position(shard)->log_end == 2);
  CHECK(follower->replica_entries(shard, 2, 10, 1 << 20)->empty());
  CHECK_FALSE(*follower->event(room, 3));

  // What a hostile leader sends is refused whole, nothing written.
  auto forged = entries[2];
  forged.offset = 3;
  forged.payload[0] = 6;  // a read model's family
  CHECK(apply({forged}).err().code == storage::errc::invalid);
  auto gap = entries;
  gap.erase(gap.begin() + 1);
  CHECK(apply(gap).err().code == storage::errc::invalid);
  CHECK(follower->replica_position(shard)->applied == 2);

  // The log and its applied offset survive a restart.
  follower.reset();
  follower = open_journal(follower_dir);
  at = follower->replica_position(shard);
  CHECK(at->log_end == 2);
  CHECK(at->applied == 2);
  CHECK(follower->replica_position(static_cast<shard_t>(shard + 1))->log_end == 0);
}

TEST_CASE(
    "shards' replicated logs stay apart at the ends of the key space, and an entry is "
    "applied once",
    "[replication]") {
  test::temp_dir dir;
  storage::journal_config cfg{dir.str(), true};
  cfg.shards = max_shards;
  auto j = std::move(storage::journal::open(cfg)).value();
  // A room of each shard we use: shard 0, 1, the last but one and the last.
  std::map<shard_t, room_id> rooms;
  for (int i = 0; rooms.size() < 4 && i < 2'000'000; ++i) {
    auto name = "r" + std::to_string(i);
    auto s = shard_of(name, max_shards);
    if ((s <= 1 || s >= max_shards - 2) && !rooms.contains(s)) rooms.emplace(s, room_id{name});
  }
  REQUIRE(rooms.size() == 4);
  using start_fn = std::function<storage::status(storage::journal::completion)>;
  auto wait = [](const start_fn& start) {
    std::promise<storage::status> done;
    auto fut = done.get_future();
    auto st = start([&](const storage::status& s) { done.set_value(s); });
    if (!st.ok()) return st;
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    return fut.get();
  };
  std::map<shard_t, std::vector<storage::journal::replica_entry>> logs;
  for (auto& [s, room] : rooms) {
    for (std::uint64_t off = 1; off <= s % 5 + 3; ++off) {
      storage::write_set ws;
      ws.put_event(room, off, ev(static_cast<int>(off)));
      logs[s].push_back({off, 1, j->replica_payload(ws)});
    }
    REQUIRE(wait([&](storage::journal::completion done) {
              j->append_replica_entries(s, logs[s], done);
              return storage::status{};
            }).ok());
  }
  for (auto& [s, log] : logs) {
    INFO("shard " << s);
    auto at = j->replica_position(s);
    REQUIRE(at.ok());
    CHECK(at->log_end == log.size());
    CHECK(j->replica_entries(s, 0, 100, 1 << 20)->size() == log.size());
  }
  // Applying shard 0's first entry and truncating the last shard touch no neighbour.
  REQUIRE(wait([&](storage::journal::completion done) {
            return j->apply_replica_entries(0, {logs[0][0]}, done);
          }).ok());
  REQUIRE(j->truncate_replica_log(max_shards - 1, 1).ok());
  CHECK(j->replica_position(max_shards - 1)->log_end == 1);
  CHECK(j->replica_position(max_shards - 2)->log_end == logs[max_shards - 2].size());
  CHECK(j->replica_position(0)->applied == 1);
  CHECK(j->replica_position(1)->applied == 0);
  CHECK(j->replica_position(1)->log_end == logs[1].size());

  // Entry 1 again (a duplicated apply) or entry 3 before 2 (a gap): refused, nothing written.
  CHECK(wait([&](storage::journal::completion done) {
          return j->apply_replica_entries(0, {logs[0][0]}, done);
        })
            .err()
            .code == storage::errc::invalid);
  CHECK(wait([&](storage::journal::completion done) {
          return j->apply_replica_entries(0, {logs[0][2]}, done);
        })
            .err()
            .code == storage::errc::invalid);
  CHECK(j->replica_position(0)->applied == 1);
  REQUIRE(wait([&](storage::journal::completion done) {
            return j->apply_replica_entries(0, {logs[0][1]}, done);
          }).ok());
  CHECK(j->replica_position(0)->applied == 2);
  // The end of the offsets: nothing after the last one.
  CHECK(j->replica_entries(0, ~std::uint64_t{0}, 10, 1 << 20)->empty());
}

TEST_CASE(
    "a replicated log's epoch history is kept beside it: read back at open, cut with a "
    "truncation, moved with retention's trim",
    "[replication]") {
  test::temp_dir dir;
  storage::journal_config cfg{dir.str(), true};
  cfg.shards = max_shards;
  auto j = std::move(storage::journal::open(cfg)).value();
  auto room_of = [](shard_t s) {
    for (int i = 0;; ++i)
      if (auto name = "r" + std::to_string(i); shard_of(name, max_shards) == s)
        return room_id{name};
  };
  using start_fn = std::function<storage::status(storage::journal::completion)>;
  auto wait = [](const start_fn& start) {
    std::promise<storage::status> done;
    auto fut = done.get_future();
    auto st = start([&](const storage::status& s) { done.set_value(s); });
    if (!st.ok()) return st;
    REQUIRE(fut.wait_for(10s) == std::future_status::ready);
    return fut.get();
  };
  using epochs = std::vector<std::string>;  // "epoch@start"
  auto history = [&](shard_t s) {
    epochs out;
    auto h = j->replica_history(s);
    REQUIRE(h.ok());
    for (auto& e : *h) out.push_back(std::to_string(e.epoch) + "@" + std::to_string(e.start));
    return out;
  };
  // The last shard too: its metadata keys sit at the very end of the key space.
  for (shard_t s : {shard_t{3}, static_cast<shard_t>(max_shards - 1)}) {
    INFO("shard " << s);
    auto room = room_of(s);
    // Epoch 1: 1..4, epoch 3: 5..7, epoch 4: 8..10, appended in batches that split epochs.
    std::vector<storage::journal::replica_entry> log;
    for (std::uint64_t off = 1; off <= 10; ++off) {
      storage::write_set ws;
      ws.put_event(room, off, ev(static_cast<int>(off)));
      std::uint64_t epoch = off <= 4 ? 1 : off <= 7 ? 3 : 4;
      log.push_back({off, epoch, j->replica_payload(ws), off == 1 || off == 5 || off == 8});
    }
    for (std::size_t from : {0, 3, 6}) {
      std::vector<storage::journal::replica_entry> batch(
          log.begin() + static_cast<std::ptrdiff_t>(from),
          log.begin() + static_cast<std::ptrdiff_t>(from == 6 ? 10 : from + 3));
      REQUIRE(wait([&](storage::journal::completion done) {
                j->append_replica_entries(s, batch, done);
                return storage::status{};
              }).ok());
    }
    CHECK(history(s) == epochs{"1@1", "3@5", "4@8"});
    // Nothing of the metadata is taken for an entry.
    CHECK(j->replica_entries(s, 0, 100, 1 << 20)->size() == 10);
    CHECK(j->replica_position(s)->log_end == 10);

    // A truncation across an epoch boundary takes the epoch that started past it.
    REQUIRE(j->truncate_replica_log(s, 7).ok());
    CHECK(history(s) == epochs{"1@1", "3@5"});
    REQUIRE(j->truncate_replica_log(s, 6).ok());
    CHECK(history(s) == epochs{"1@1", "3@5"});
    CHECK(j->replica_position(s)->log_end == 6);

    std::vector<storage::journal::replica_entry> to_apply(log.begin(), log.begin() + 5);
    REQUIRE(wait([&](storage::journal::completion done) {
              return j->apply_replica_entries(s, to_apply, done);
            }).ok());
    // Retention: never past the applied offset; the epoch holding the new start starts there.
    CHECK(j->trim_replica_log(s, 6).err().code == storage::errc::invalid);
    REQUIRE(j->trim_replica_log(s, 3).ok());
    CHECK(history(s) == epochs{"1@3", "3@5"});
    auto at = j->replica_position(s);
    CHECK(at->log_start == 3);
    CHECK(at->log_end == 6);
    CHECK(j->replica_log_size(s)->entries == 4);
    auto rest = j->replica_entries(s, 0, 100, 1 << 20);
    REQUIRE(rest->size() == 4);
    CHECK(rest->front().offset == 3);
    REQUIRE(j->trim_replica_log(s, 5).ok());
    CHECK(history(s) == epochs{"3@5"});
    REQUIRE(j->trim_replica_log(s, 2).ok());  // behind the start: nothing to do
    CHECK(j->replica_position(s)->log_start == 5);
    CHECK(j->replica_entries(s, 4, 100, 1 << 20)->front().offset == 5);
  }
  // A neighbour of the trimmed shards is untouched.
  CHECK(j->replica_position(4)->log_start == 1);
  CHECK(j->replica_position(4)->log_end == 0);

  // Offsets outside (0, max_replica_offset] are refused: their keys would reach the metadata.
  for (std::uint64_t bad : {std::uint64_t{0}, storage::journal::max_replica_offset + 1}) {
    CHECK(wait([&](storage::journal::completion done) {
            j->append_replica_entries(3, {{bad, 4, "", false}}, done);
            return storage::status{};
          })
              .err()
              .code == storage::errc::invalid);
  }

  // A restart reads back the same history and positions.
  j.reset();
  j = std::move(storage::journal::open(cfg)).value();
  CHECK(history(3) == epochs{"3@5"});
  CHECK(j->replica_position(3)->log_start == 5);
  CHECK(j->replica_position(3)->log_end == 6);
  CHECK(j->replica_position(3)->applied == 5);
  // Dropping the shard drops its log's metadata with it.
  REQUIRE(j->drop_shard(max_shards - 1).ok());
  CHECK(history(max_shards - 1).empty());
  CHECK(j->replica_position(max_shards - 1)->log_start == 1);
}
