// The room layer with real actors and a real journal, driven through rooms::dispatch with links
// that record what they receive. Waits are on conditions with deadlines, never sleeps.

#include <catch2/catch.hpp>

#include <simdjson.h>
#include <condition_variable>
#include <mutex>

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
  void subscription_ended(const room_id& room) override {
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
