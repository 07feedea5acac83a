#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>

#include "core/bytes.hpp"
#include "core/event.hpp"
#include "core/json.hpp"
#include "read/projector.hpp"
#include "storage/journal.hpp"
#include "tests/read/log_fixture.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;

namespace {

std::string event_json(const std::string& room, seq_t seq, event_type type = event_type::message,
                       millis_t ts = now_millis()) {
  event e;
  e.room = room_id{room};
  e.seq = seq;
  e.ts = ts;
  e.type = type;
  e.from = user_id{"alice"};
  if (type == event_type::message) e.text = "m" + std::to_string(seq);
  if (type == event_type::member_added) e.user = user_id{"bob"};
  return test::encode(e);
}

/// Appends events `from`..`to` to `room` in one group commit and waits for it.
void append(storage::journal& j, const std::string& room, seq_t from, seq_t to,
            event_type type = event_type::message, millis_t ts = now_millis()) {
  storage::write_set ws;
  for (auto s = from; s <= to; ++s) ws.put_event(room_id{room}, s, event_json(room, s, type, ts));
  test::commit(j, std::move(ws));
}

/// A projection that stores one key per event and checks, through the batch, that it never
/// sees an event twice and sees each room's events in seq order.
class log_projection final : public read::projection {
 public:
  explicit log_projection(storage::journal& j) : journal_(j) {}

  std::string_view name() const override { return "log"; }
  storage::read_family family() const override { return storage::read_family::search; }
  storage::status apply(const event& e, std::string_view, storage::read_batch& batch,
                        std::vector<read::notice>& notices) override {
    {
      std::unique_lock lock(mtx_);
      gate_cv_.wait(lock, [&] { return open_; });
      if (failures_ > 0) {
        failures_ -= 1;
        return storage::error{storage::errc::io_error, "injected"};
      }
    }
    auto k = key(e.room, e.seq);
    auto had = batch.get(family(), k);
    if (!had.ok()) return had.err();
    std::lock_guard lock(mtx_);
    if (*had) duplicates_ += 1;
    // The previous seq of the room must be there already (order, no gaps).
    if (e.seq > 1) {
      auto prev = batch.get(family(), key(e.room, e.seq - 1));
      if (!prev.ok() || !*prev) out_of_order_ += 1;
    }
    batch.put(family(), k, "x");
    applied_ += 1;
    if (e.type == event_type::member_added)
      notices.push_back({e.user, R"({"op":"invited","room":")" + e.room.str() + "\"}"});
    return {};
  }

  storage::result<bool> erase_room(const room_id& room, storage::read_batch& batch,
                                   std::size_t max_ops) override {
    auto prefix = key(room, 0);
    prefix.resize(prefix.size() - 8);
    auto c = journal_.new_read_cursor(family());
    for (c->seek(prefix); c->valid() && c->key().starts_with(prefix); c->next()) {
      if (batch.count() >= max_ops) return false;
      batch.del(family(), c->key());
    }
    return true;
  }

  std::string key(const room_id& room, seq_t seq) const {
    auto k = storage::shard_prefix(shard_of(room.str(), journal_.shards()));
    k += '\x01';
    k += room.str();
    k += '\0';
    k += be64(seq);
    return k;
  }

  bool stored(const std::string& room, seq_t seq) const {
    auto v = journal_.read_get(family(), key(room_id{room}, seq));
    return v.ok() && v->has_value();
  }

  void fail_next(int n) {
    std::lock_guard lock(mtx_);
    failures_ = n;
  }
  void hold(bool closed) {
    {
      std::lock_guard lock(mtx_);
      open_ = !closed;
    }
    gate_cv_.notify_all();
  }
  std::uint64_t applied() const {
    std::lock_guard lock(mtx_);
    return applied_;
  }
  std::uint64_t duplicates() const {
    std::lock_guard lock(mtx_);
    return duplicates_;
  }
  std::uint64_t out_of_order() const {
    std::lock_guard lock(mtx_);
    return out_of_order_;
  }

 private:
  storage::journal& journal_;
  mutable std::mutex mtx_;
  std::condition_variable gate_cv_;
  bool open_ = true;
  int failures_ = 0;
  std::uint64_t applied_ = 0;
  std::uint64_t duplicates_ = 0;
  std::uint64_t out_of_order_ = 0;
};

read::projector_config fast_retry() {
  read::projector_config c;
  c.retry = 10ms;
  c.max_retry = 50ms;
  c.chunk = 16;  // several steps per room
  c.batch_ops = 64;
  c.walk_page = 3;
  return c;
}

read::projection_stats stats_of(const read::projector& p) { return p.stats().at(0); }

}  // namespace

TEST_CASE("the projector applies every event of every room once, in seq order, live and at start") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  append(*j, "before", 1, 40);  // on disk before the projector exists: caught up at start
  log_projection proj(*j);
  read::projector p(*j, {&proj}, fast_retry(), nullptr);
  p.start();
  REQUIRE(p.wait_idle(10s));
  CHECK(proj.applied() == 40);
  for (int r = 0; r < 8; ++r) append(*j, "room" + std::to_string(r), 1, 25);
  append(*j, "before", 41, 45);
  REQUIRE(p.wait_idle(10s));
  CHECK(proj.applied() == 40 + 8 * 25 + 5);
  CHECK(proj.duplicates() == 0);
  CHECK(proj.out_of_order() == 0);
  CHECK(proj.stored("room7", 25));
  CHECK(proj.stored("before", 45));
  auto s = stats_of(p);
  CHECK(s.state == read::projection_state::live);
  CHECK(s.pending == 0);
  CHECK(s.applied == 245);
}

TEST_CASE(
    "after a restart the projector resumes from its offsets: nothing twice, nothing skipped") {
  test::temp_dir dir;
  {
    auto j = test::open_journal(dir);
    log_projection proj(*j);
    read::projector p(*j, {&proj}, fast_retry(), nullptr);
    p.start();
    for (int r = 0; r < 5; ++r) append(*j, "r" + std::to_string(r), 1, 30);
    REQUIRE(p.wait_idle(10s));
    CHECK(proj.applied() == 150);
    p.stop();
    // Written while no projector runs: the next one catches up.
    for (int r = 0; r < 5; ++r) append(*j, "r" + std::to_string(r), 31, 37);
    append(*j, "new", 1, 3);
    j->stop();
  }
  auto j = test::open_journal(dir);
  log_projection proj(*j);
  read::projector p(*j, {&proj}, fast_retry(), nullptr);
  CHECK(p.state("log") == read::projection_state::catching_up);
  p.start();
  REQUIRE(p.wait_idle(10s));
  CHECK(proj.applied() == 5 * 7 + 3);
  CHECK(proj.duplicates() == 0);
  CHECK(proj.out_of_order() == 0);
  CHECK(proj.stored("r4", 37));
  CHECK(proj.stored("new", 3));
  CHECK(stats_of(p).rooms_done == stats_of(p).rooms_total);
}

TEST_CASE("a rebuild drops the projection and applies the whole log again, with progress") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  log_projection proj(*j);
  read::projector p(*j, {&proj}, fast_retry(), nullptr);
  p.start();
  for (int r = 0; r < 10; ++r) append(*j, "room" + std::to_string(r), 1, 20);
  REQUIRE(p.wait_idle(10s));
  REQUIRE(proj.applied() == 200);

  CHECK(p.rebuild("nope").has_value());
  proj.hold(true);  // the rebuild can't finish while we look at it
  REQUIRE_FALSE(p.rebuild("log").has_value());
  CHECK(p.state("log") == read::projection_state::rebuilding);
  CHECK(p.rebuild("log").has_value());  // once at a time
  append(*j, "room0", 21, 22);          // writes go on meanwhile
  proj.hold(false);
  REQUIRE(p.wait_idle(10s));
  CHECK(p.state("log") == read::projection_state::live);
  CHECK(proj.applied() == 200 + 202);
  CHECK(proj.duplicates() == 0);  // the drop emptied the family first
  CHECK(proj.out_of_order() == 0);
  CHECK(proj.stored("room0", 22));
  CHECK(proj.stored("room9", 20));
  auto s = stats_of(p);
  CHECK(s.rooms_total == 10);
  CHECK(s.rooms_done == 10);
  CHECK(s.progress == 1.0);
}

TEST_CASE("lag: pending events and the age of the oldest unapplied note show while held back") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  log_projection proj(*j);
  read::projector p(*j, {&proj}, fast_retry(), nullptr);
  p.start();
  REQUIRE(p.wait_idle(10s));
  proj.hold(true);
  append(*j, "a", 1, 10);
  append(*j, "b", 1, 5);
  // Pending is exact once the thread read the offsets; at least one per room before.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stats_of(p).lag_seconds < 0.05 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  auto s = stats_of(p);
  CHECK(s.pending >= 2);
  CHECK(s.pending <= 15);
  CHECK(s.lag_seconds >= 0.05);
  CHECK(s.state == read::projection_state::live);
  proj.hold(false);
  REQUIRE(p.wait_idle(10s));
  s = stats_of(p);
  CHECK(s.pending == 0);
  CHECK(s.lag_seconds == 0);
  CHECK(s.applied == 15);
}

TEST_CASE("a failing apply is retried after a back-off, and nothing is applied twice") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  log_projection proj(*j);
  read::projector p(*j, {&proj}, fast_retry(), nullptr);
  p.start();
  REQUIRE(p.wait_idle(10s));
  proj.fail_next(3);
  append(*j, "a", 1, 50);
  REQUIRE(p.wait_idle(10s));
  CHECK(proj.duplicates() == 0);
  CHECK(proj.stored("a", 50));
  CHECK(stats_of(p).applied == 50);
}

TEST_CASE("notices go out after their batch committed, never from a rebuild or old events") {
  test::temp_dir dir;
  auto j = test::open_journal(dir);
  log_projection proj(*j);
  std::mutex mtx;
  std::vector<std::string> got;
  bool committed_first = true;
  // On the projector's thread: it only records (Catch2 asserts on the test's thread).
  read::projector p(*j, {&proj}, fast_retry(), [&](std::vector<read::notice> ns) {
    std::lock_guard lock(mtx);
    for (auto& n : ns) {
      // Committed before it is told: the event's data is readable.
      committed_first =
          committed_first && proj.stored(n.json.substr(n.json.find("room\":\"") + 7, 1), 1);
      got.push_back(n.user.str());
    }
  });
  p.start();
  append(*j, "x", 1, 1, event_type::member_added);
  append(*j, "y", 1, 1, event_type::member_added, now_millis() - 120'000);  // two minutes old
  REQUIRE(p.wait_idle(10s));
  {
    std::lock_guard lock(mtx);
    CHECK(got == std::vector<std::string>{"bob"});
    CHECK(committed_first);
  }
  REQUIRE_FALSE(p.rebuild("log").has_value());
  REQUIRE(p.wait_idle(10s));
  std::lock_guard lock(mtx);
  CHECK(got.size() == 1);
}

TEST_CASE("a shard moved in is caught up: its rooms' events are applied from its offsets") {
  test::temp_dir from_dir, to_dir, staging;
  auto from = test::open_journal(from_dir);
  auto to = test::open_journal(to_dir);
  log_projection proj(*to);
  read::projector p(*to, {&proj}, fast_retry(), nullptr);
  p.start();
  REQUIRE(p.wait_idle(10s));
  append(*from, "moved", 1, 30);  // on the other node, never projected there
  auto shard = shard_of("moved", from->shards());
  auto files = from->export_shard(shard, staging.str() + "/out");
  REQUIRE(files.ok());
  REQUIRE(to->ingest_shard(shard, files->paths).ok());
  p.catch_up_shard(shard);
  REQUIRE(p.wait_idle(10s));
  CHECK(proj.stored("moved", 30));
  CHECK(proj.applied() == 30);
  CHECK(proj.duplicates() == 0);
}
