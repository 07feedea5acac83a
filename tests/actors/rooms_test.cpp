// The room layer with real actors and a real journal, driven through rooms::dispatch with links
// that record what they receive. Waits are on conditions with deadlines, never sleeps.

#include <catch2/catch.hpp>

#include <simdjson.h>
#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "actors/rooms.hpp"
#include "storage/journal.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;

namespace {

class recording_link : public client_link {
 public:
  void post(std::function<void()> fn) override {
    std::lock_guard lock(mtx_);
    fn();
  }
  const void* lane() const noexcept override { return this; }
  void push(const frame_ptr& f) override {  // called under mtx_ (from post)
    frames_.emplace_back(f->payload());
    cv_.notify_all();
  }
  void reply(const frame_ptr& f) override { push(f); }
  void subscription_ended(const room_id& room, std::string_view) override {
    frames_.push_back("ended:" + room.str());
    cv_.notify_all();
  }
  void subscription_lost(const room_id&) override {}

  /// Waits until `n` frames have arrived and returns them.
  std::vector<std::string> wait_for(std::size_t n) {
    std::unique_lock lock(mtx_);
    bool ok = cv_.wait_for(lock, 10s, [&] { return frames_.size() >= n; });
    if (!ok) FAIL("timed out waiting for " << n << " frames, have " << frames_.size());
    return frames_;
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<std::string> frames_;
};

struct fixture {
  test::temp_dir dir;
  std::unique_ptr<storage::journal> journal;
  std::unique_ptr<rooms> rs;

  explicit fixture(rooms_config cfg = {}) { open(cfg); }
  ~fixture() { close(); }

  void open(rooms_config cfg = {}) {
    auto j = storage::journal::open({dir.str(), true});
    REQUIRE(j.ok());
    journal = std::move(j).value();
    rs = std::make_unique<rooms>(cfg, *journal);
    REQUIRE(!rs->start());
  }
  void close() {
    if (rs) rs->stop();
    rs.reset();
    journal.reset();
  }

  command make(room_op op, const std::string& room, const std::string& user,
               std::shared_ptr<client_link> link) {
    command c;
    c.op = op;
    c.room = room_id{room};
    c.user = user_id{user};
    c.link = std::move(link);
    c.id = "1";
    return c;
  }
};

std::string field(const std::string& json, const char* key) {
  simdjson::dom::parser p;
  auto v = p.parse(json)[key];
  if (v.error()) return "";
  if (v.is_string()) return std::string(std::string_view(v));
  return simdjson::minify(v.value_unsafe());
}

}  // namespace

TEST_CASE("sends are acked with consecutive seqs and reach a subscriber once each") {
  fixture f;
  auto sub = std::make_shared<recording_link>();
  auto pub = std::make_shared<recording_link>();
  f.rs->dispatch(f.make(room_op::join, "r", "bob", sub));
  REQUIRE(field(sub->wait_for(1)[0], "op") == "joined");
  for (int i = 0; i < 20; ++i) {
    auto c = f.make(room_op::send, "r", "alice", pub);
    c.text = "m" + std::to_string(i);
    f.rs->dispatch(std::move(c));
  }
  auto acks = pub->wait_for(20);
  for (int i = 0; i < 20; ++i) {
    CHECK(field(acks[i], "op") == "ack");
    CHECK(field(acks[i], "seq") == std::to_string(i + 2));  // seq 1 is the implicit `created`
  }
  auto got = sub->wait_for(22);  // joined + created + 20 messages
  for (int i = 1; i < 22; ++i) CHECK(field(got[i], "seq") == std::to_string(i));
}

TEST_CASE("a retried cid returns the first seq and appends nothing, also after a restart") {
  fixture f;
  auto link = std::make_shared<recording_link>();
  auto send = [&] {
    auto c = f.make(room_op::send, "r", "alice", link);
    c.text = "once";
    c.cid = "c-1";
    f.rs->dispatch(std::move(c));
  };
  send();
  send();
  auto acks = link->wait_for(2);
  CHECK(field(acks[0], "seq") == "2");
  CHECK(field(acks[1], "seq") == "2");
  f.close();
  f.open();
  send();
  CHECK(field(link->wait_for(3)[2], "seq") == "2");
  CHECK(*f.journal->last_seq(room_id{"r"}) == 2);
}

TEST_CASE("a restarted room recovers from snapshot plus later events and continues the seqs") {
  rooms_config cfg;
  cfg.snapshot_every = 4;
  fixture f(cfg);
  auto link = std::make_shared<recording_link>();
  for (int i = 0; i < 9; ++i) {
    auto c = f.make(room_op::send, "r", "alice", link);
    c.text = "x";
    f.rs->dispatch(std::move(c));
  }
  link->wait_for(9);
  CHECK(f.journal->snapshot(room_id{"r"})->has_value());
  f.close();
  f.open(cfg);
  auto c = f.make(room_op::send, "r", "alice", link);
  c.text = "after restart";
  f.rs->dispatch(std::move(c));
  CHECK(field(link->wait_for(10)[9], "seq") == "11");
}

TEST_CASE("join with since delivers the missed events after joined, then live ones") {
  fixture f;
  auto pub = std::make_shared<recording_link>();
  for (int i = 0; i < 5; ++i) {
    auto c = f.make(room_op::send, "r", "alice", pub);
    c.text = "x";
    f.rs->dispatch(std::move(c));
  }
  pub->wait_for(5);
  auto sub = std::make_shared<recording_link>();
  auto join = f.make(room_op::join, "r", "bob", sub);
  join.since = 3;
  f.rs->dispatch(std::move(join));
  auto got = sub->wait_for(4);
  CHECK(field(got[0], "op") == "joined");
  CHECK(field(got[0], "head") == "6");
  CHECK(field(got[1], "seq") == "4");
  CHECK(field(got[3], "seq") == "6");
}

TEST_CASE("idle rooms are passivated and reactivated on the next command") {
  rooms_config cfg;
  cfg.idle_timeout = 20ms;
  fixture f(cfg);
  auto link = std::make_shared<recording_link>();
  auto c = f.make(room_op::send, "r", "alice", link);
  c.text = "x";
  f.rs->dispatch(c);
  link->wait_for(1);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((f.rs->stats().passivated == 0 || f.rs->stats().active > 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  REQUIRE(f.rs->stats().passivated == 1);
  CHECK(f.rs->stats().active == 0);
  f.rs->dispatch(c);
  CHECK(field(link->wait_for(2)[1], "seq") == "3");
  CHECK(f.rs->stats().activated == 2);
}

TEST_CASE("ten thousand idle rooms cost no actors once passivated") {
  rooms_config cfg;
  cfg.idle_timeout = 50ms;
  cfg.room_creations_per_minute = 0;
  fixture f(cfg);
  auto link = std::make_shared<recording_link>();
  constexpr int count = 10'000;
  for (int i = 0; i < count; ++i) {
    auto c = f.make(room_op::send, "room-" + std::to_string(i), "alice", link);
    c.text = "x";
    f.rs->dispatch(std::move(c));
  }
  link->wait_for(count);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (f.rs->stats().active > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  auto s = f.rs->stats();
  CHECK(s.active == 0);
  CHECK(s.activated == count);
  CHECK(s.passivated == count);
  CHECK(*f.journal->last_seq(room_id{"room-9999"}) == 2);
}

namespace {

/// The events of a history reply, as JSON texts.
std::vector<std::string> history_events(const std::string& reply) {
  simdjson::dom::parser p;
  simdjson::dom::array events;
  std::vector<std::string> out;
  if (p.parse(reply)["events"].get(events)) FAIL("not a history reply: " << reply);
  for (auto e : events) out.push_back(simdjson::minify(e));
  return out;
}

}  // namespace

TEST_CASE("history and backfill serve a deleted message redacted and an edited one as it is now") {
  fixture f;
  auto alice = std::make_shared<recording_link>();
  auto send = [&](const char* text, const char* cid) {
    auto c = f.make(room_op::send, "r", "alice", alice);
    c.text = text;
    c.cid = cid;
    f.rs->dispatch(std::move(c));
  };
  send("keep me", "c-2");    // seq 2
  send("delete me", "c-3");  // seq 3
  alice->wait_for(2);
  auto change = [&](room_op op, seq_t ref, const char* text) {
    auto c = f.make(op, "r", "alice", alice);
    c.ref = ref;
    c.text = text;
    f.rs->dispatch(std::move(c));
  };
  change(room_op::edit, 3, "first edit of 3");  // seq 4
  change(room_op::edit, 2, "kept, edited");     // seq 5
  change(room_op::del, 3, "");                  // seq 6: also redacts seq 4
  auto acks = alice->wait_for(5);
  for (int i = 2; i < 5; ++i) REQUIRE(field(acks[i], "op") == "ack");

  auto check_log = [&](const std::vector<std::string>& events) {
    REQUIRE(events.size() == 6);
    for (auto& e : events) {
      CHECK(e.find("delete me") == std::string::npos);
      CHECK(e.find("first edit of 3") == std::string::npos);
      CHECK(e.find("keep me") == std::string::npos);
    }
    CHECK(field(events[1], "text") == "kept, edited");
    CHECK(field(events[1], "edited") == "true");
    CHECK(field(events[1], "cid") == "c-2");
    CHECK(field(events[1], "edits") == "[5]");
    CHECK(field(events[2], "type") == "message");
    CHECK(field(events[2], "deleted") == "true");
    CHECK(field(events[2], "from") == "alice");
    CHECK(field(events[2], "text").empty());
    CHECK(field(events[2], "cid").empty());
    CHECK(field(events[3], "type") == "edit");
    CHECK(field(events[3], "ref") == "3");
    CHECK(field(events[3], "deleted") == "true");
    CHECK(field(events[4], "type") == "edit");  // the log keeps the edit and delete events
    CHECK(field(events[4], "text") == "kept, edited");
    CHECK(field(events[5], "type") == "delete");
  };

  auto read_all = [&] {
    auto reader = std::make_shared<recording_link>();
    f.rs->dispatch(f.make(room_op::history, "r", "bob", reader));
    check_log(history_events(reader->wait_for(1)[0]));
    // joined and the backfill are posted together; a presence push can only follow them.
    auto subscriber = std::make_shared<recording_link>();
    auto join = f.make(room_op::join, "r", "bob", subscriber);
    join.since = 0;
    f.rs->dispatch(std::move(join));
    auto got = subscriber->wait_for(7);
    check_log({got.begin() + 1, got.begin() + 7});
  };
  read_all();
  SECTION("also after a restart, and the deleted message can't be edited or deleted again") {
    f.close();
    f.open();
    read_all();
    change(room_op::edit, 3, "resurrected");
    change(room_op::del, 3, "");
    auto got = alice->wait_for(7);
    CHECK(field(got[5], "code") == "not_found");
    CHECK(field(got[6], "code") == "not_found");
    send("delete me", "c-3");  // the retried cid answers the first ack, and appends nothing
    CHECK(field(alice->wait_for(8)[7], "seq") == "3");
    CHECK(*f.journal->last_seq(room_id{"r"}) == 6);
  }
}

TEST_CASE("edits and deletes that follow each other before their commits rewrite in order") {
  fixture f;
  auto alice = std::make_shared<recording_link>();
  auto c = f.make(room_op::send, "r", "alice", alice);
  c.text = "v1";
  f.rs->dispatch(std::move(c));
  alice->wait_for(1);
  // Dispatched back to back, these land in the same or consecutive write_sets: each must see
  // the record the previous one staged.
  for (int i = 2; i <= 20; ++i) {
    auto e = f.make(room_op::edit, "r", "alice", alice);
    e.ref = 2;
    e.text = "v" + std::to_string(i);
    f.rs->dispatch(std::move(e));
  }
  auto d = f.make(room_op::del, "r", "alice", alice);
  d.ref = 2;
  f.rs->dispatch(std::move(d));
  auto got = alice->wait_for(21);
  for (auto& a : got) REQUIRE(field(a, "op") == "ack");
  auto events = f.journal->events_after(room_id{"r"}, 0, 100).value();
  REQUIRE(events.size() == 22);
  for (auto& e : events) {
    CHECK(field(e, "text").empty());
    if (field(e, "type") != "delete" && field(e, "type") != "created")
      CHECK(field(e, "deleted") == "true");
  }
}

namespace {

/// Counts what it receives; any thread.
class counting_link : public client_link {
 public:
  void post(std::function<void()> fn) override { fn(); }
  const void* lane() const noexcept override { return this; }
  void push(const frame_ptr&) override { pushes.fetch_add(1); }
  void reply(const frame_ptr& f) override {
    replies.fetch_add(1);
    if (f->payload().find("\"unavailable\"") != std::string_view::npos) unavailable.fetch_add(1);
  }
  void subscription_ended(const room_id&, std::string_view) override {}
  void subscription_lost(const room_id&) override {}
  std::atomic<std::uint64_t> pushes{0}, replies{0}, unavailable{0};
};

}  // namespace

TEST_CASE("stop while rooms activate and passivate and dispatches go on: each command one reply",
          "[stress]") {
  // Rounds of: two threads dispatching sends to new rooms (each room passivates 10-20 ms after
  // its send), stop() from a third thread in the middle of it, the dispatchers carrying on
  // across the stop. Bounded: about 0.3 s a round.
  constexpr int rounds = 20;
  for (int round = 0; round < rounds; ++round) {
    rooms_config cfg;
    cfg.idle_timeout = 10ms;
    cfg.threads = 2;
    cfg.room_creations_per_minute = 0;
    fixture f(cfg);
    auto link = std::make_shared<counting_link>();
    std::atomic<std::uint64_t> dispatched{0};
    std::atomic<bool> done{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; !done; ++i) {
          auto c = f.make(room_op::send, "r" + std::to_string(t) + "-" + std::to_string(i), "alice",
                          link);
          c.text = "x";
          f.rs->dispatch(std::move(c));
          dispatched.fetch_add(1);
          while (dispatched - link->replies > 256 && !done) std::this_thread::yield();
        }
      });
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (f.rs->stats().passivated < 100 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    auto passivated = f.rs->stats().passivated;
    f.rs->stop();
    done = true;
    for (auto& th : threads) th.join();
    INFO("round " << round << ": " << dispatched << " dispatched, " << passivated
                  << " passivated before the stop, " << link->unavailable << " unavailable");
    CHECK(passivated >= 100);
    CHECK(link->replies == dispatched);
    auto late = f.make(room_op::send, "late", "alice", link);
    late.text = "x";
    auto before = link->unavailable.load();
    f.rs->dispatch(std::move(late));
    CHECK(link->unavailable == before + 1);
    f.close();
  }
}

TEST_CASE("a user's room creations past the per-minute limit are rate_limited and cost no actor") {
  rooms_config cfg;
  cfg.room_creations_per_minute = 3;
  fixture f(cfg);
  auto link = std::make_shared<recording_link>();
  for (int i = 0; i < 5; ++i) {
    auto c = f.make(room_op::send, "new-" + std::to_string(i), "alice", link);
    c.text = "x";
    f.rs->dispatch(std::move(c));
  }
  auto got = link->wait_for(5);
  int acks = 0, limited = 0;
  for (auto& g : got) {
    acks += field(g, "op") == "ack";
    limited += field(g, "code") == "rate_limited";
  }
  CHECK(acks == 3);
  CHECK(limited == 2);
  CHECK(f.rs->stats().creations_refused == 2);
  // Another user is not limited; sends to rooms that exist never are.
  auto c = f.make(room_op::send, "new-4", "bob", link);
  c.text = "x";
  f.rs->dispatch(std::move(c));
  CHECK(field(link->wait_for(6)[5], "op") == "ack");
  // The refused rooms don't exist: their actors passivate at once (the idle timeout is 60 s).
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (f.rs->stats().passivated < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  CHECK(f.rs->stats().passivated >= 1);
  CHECK(f.rs->stats().active <= 4);
}

TEST_CASE("commands past a room's backlog bound are answered unavailable, and the room serves on") {
  rooms_config cfg;
  cfg.room_backlog = 50;
  fixture f(cfg);
  auto link = std::make_shared<counting_link>();
  // Far more than the room takes up while they are dispatched from here: the registry and the
  // room's mailbox hold at most 50 of them at a time.
  constexpr int sent = 20'000;
  for (int i = 0; i < sent; ++i) {
    auto c = f.make(room_op::send, "hot", "alice", link);
    c.text = "x";
    f.rs->dispatch(std::move(c));
  }
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (link->replies < sent && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  REQUIRE(link->replies == sent);
  auto s = f.rs->stats();
  CHECK(link->unavailable > 0);
  CHECK(s.backlog_refused == link->unavailable);
  CHECK(s.commands_queued == 0);
  CHECK(*f.journal->last_seq(room_id{"hot"}) == 1 + sent - link->unavailable);
  auto c = f.make(room_op::send, "hot", "alice", link);
  c.text = "after";
  f.rs->dispatch(std::move(c));
  deadline = std::chrono::steady_clock::now() + 10s;
  while (link->replies < sent + 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  CHECK(link->unavailable == s.backlog_refused);  // the last one was accepted
}

TEST_CASE("a room that can't recover answers every command queued to it, once, and passivates") {
  fixture f;
  storage::write_set ws;
  ws.put_event(room_id{"broken"}, 1, "not an event");
  std::promise<void> written;
  f.journal->commit(std::move(ws), [&](const storage::status&) { written.set_value(); });
  written.get_future().wait();
  auto link = std::make_shared<counting_link>();
  constexpr int sent = 500;
  for (int i = 0; i < sent; ++i) {
    auto c = f.make(room_op::send, "broken", "alice", link);
    c.text = "x";
    f.rs->dispatch(std::move(c));
  }
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((link->replies < sent || f.rs->stats().active > 0) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  CHECK(link->replies == sent);
  CHECK(f.rs->stats().commands_queued == 0);  // nothing left counted in the room's backlog
  CHECK(f.rs->stats().active == 0);
}
