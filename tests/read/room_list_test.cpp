#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <map>
#include <set>

#include "core/json.hpp"
#include "read/room_list.hpp"
#include "storage/journal.hpp"
#include "tests/read/log_fixture.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;

namespace {

// The rooms projection fed from a node's log.
class fixture : public test::event_log {
 public:
  explicit fixture(std::uint32_t shards = 8)
      : test::event_log(shards), list_(std::make_unique<read::room_list>(journal())) {
    clock = now_millis();
  }

  read::room_list& list() { return *list_; }

  /// Applies every event not applied yet, timing the applies and counting the batches' operations.
  void project() {
    batch_ops += event_log::project(
        [&](const event& e, std::string_view stored, storage::read_batch& batch) {
          auto started = std::chrono::steady_clock::now();
          auto st = list_->apply(e, stored, batch, notices);
          in_apply += std::chrono::steady_clock::now() - started;
          REQUIRE(st.ok());
        });
  }

  read::page rooms(const std::string& user, std::size_t limit = 50,
                   std::optional<std::string> before = std::nullopt) {
    auto p = list_->rooms(user_id{user}, all_shards(), before, limit);
    REQUIRE(p.ok());
    return std::move(p).value();
  }
  read::page directory(std::string_view prefix, std::size_t limit = 50,
                       std::optional<std::string> before = std::nullopt) {
    auto p = list_->directory(prefix, all_shards(), before, limit);
    REQUIRE(p.ok());
    return std::move(p).value();
  }
  bool may_read(const std::string& user, const std::string& room) {
    auto r = list_->may_read(user_id{user}, room_id{room});
    REQUIRE(r.ok());
    return *r;
  }

  std::vector<read::notice> notices;
  // What `project` did: time spent in apply, and the operations (puts, deletes) of its batches.
  std::chrono::duration<double> in_apply{};
  std::size_t batch_ops = 0;

 private:
  std::unique_ptr<read::room_list> list_;
};

std::vector<std::string> names(const read::page& p) {
  std::vector<std::string> out;
  for (auto& i : p.items) {
    auto at = i.json.find("\"room\":\"") + 8;
    out.push_back(i.json.substr(at, i.json.find('"', at) - at));
  }
  return out;
}

const read::item& item_of(const read::page& p, const std::string& room) {
  for (auto& i : p.items)
    if (i.json.find("\"room\":\"" + room + "\"") != std::string::npos) return i;
  FAIL("no item for " << room);
  throw;
}

std::string field(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return "<none>";
  at += key.size() + 3;
  auto end = at;
  int depth = 0;
  bool in_string = false;
  for (; end < json.size(); ++end) {
    char c = json[end];
    if (in_string) {
      if (c == '\\')
        ++end;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') {
      if (depth == 0) break;
      --depth;
    }
    if (c == ',' && depth == 0) break;
  }
  return json.substr(at, end - at);
}

}  // namespace

TEST_CASE("a user's rooms are those they are a member of, posted in or read, newest first") {
  fixture f;
  f.create("team", "alice", true, {"bob"}, "the team");
  f.create("lobby", "carol", false, {}, "say hi");
  f.send("lobby", "bob", "hello");
  f.create("news", "carol", false);
  auto n = f.send("news", "carol", "release 1.0");
  f.mark("bob", "news", n);
  f.create("other", "carol", false);
  f.send("other", "carol", "not for bob");
  f.send("team", "alice", "standup?");
  f.project();

  auto p = f.rooms("bob");
  CHECK(names(p) == std::vector<std::string>{"team", "news", "lobby"});
  CHECK_FALSE(p.more);
  auto& team = item_of(p, "team");
  CHECK(field(team.json, "head") == "2");
  CHECK(field(team.json, "read") == "0");
  CHECK(field(team.json, "unread") == "1");
  CHECK(field(team.json, "topic") == "\"the team\"");
  CHECK(field(team.json, "private") == "true");
  CHECK(field(field(team.json, "last"), "text") == "\"standup?\"");
  // The whole item, and its sort key: be64(ts) room.
  auto news = f.journal().event(room_id{"news"}, 2);
  REQUIRE(news.ok());
  auto news_ts = decode_event(**news)->ts;
  auto& item = item_of(p, "news");
  CHECK(item.json ==
        R"({"room":"news","head":2,"read":2,"unread":0,"topic":"","private":false,"last":)" +
            **news + ",\"ts\":" + std::to_string(news_ts) + "}");
  std::string key;
  for (int i = 7; i >= 0; --i) key += static_cast<char>((news_ts >> (8 * i)) & 0xff);
  CHECK(item.sort_key == key + "news");

  CHECK(names(f.rooms("carol")) == std::vector<std::string>{"other", "news", "lobby"});
  CHECK(f.rooms("nobody").items.empty());
  // A marker in a room the projection hasn't seen yet lists nothing until its events are applied.
  f.mark("bob", "ghost", 1);
  CHECK(names(f.rooms("bob")) == std::vector<std::string>{"team", "news", "lobby"});
}

TEST_CASE("room info that doesn't decode is reported as corruption, not guessed at") {
  fixture f(1);
  f.create("r", "alice", false);
  f.project();
  auto batch = f.journal().new_read_batch();
  batch.put(storage::read_family::rooms, storage::shard_prefix(0) + '\x01' + "r", "\x01garbage");
  REQUIRE(f.journal().write_reads(std::move(batch)).ok());
  auto p = f.list().rooms(user_id{"alice"}, {0}, std::nullopt, 10);
  REQUIRE_FALSE(p.ok());
  CHECK(p.err().code == storage::errc::corruption);
  CHECK_FALSE(f.list().may_read(user_id{"alice"}, room_id{"r"}).ok());
  auto next = f.journal().new_read_batch();
  std::vector<read::notice> notices;
  event e;
  e.room = room_id{"r"};
  e.seq = 2;
  e.type = event_type::message;
  e.from = user_id{"alice"};
  e.text = "x";
  CHECK(f.list().apply(e, test::encode(e), next, notices).err().code == storage::errc::corruption);
}

TEST_CASE("unread counts messages after the marker that others wrote and that are not deleted") {
  fixture f;
  f.create("r", "alice", false);
  f.send("r", "alice", "1");           // 2
  f.send("r", "bob", "2");             // 3
  auto a = f.send("r", "alice", "3");  // 4
  f.send("r", "bob", "mine");          // 5: bob's own
  auto b = f.send("r", "alice", "4");  // 6
  f.send("r", "carol", "5");           // 7
  f.project();
  CHECK(field(item_of(f.rooms("bob"), "r").json, "unread") == "4");

  f.mark("bob", "r", 3);
  CHECK(field(item_of(f.rooms("bob"), "r").json, "unread") == "3");
  CHECK(field(item_of(f.rooms("bob"), "r").json, "read") == "3");

  f.del("r", "alice", a);  // 8
  f.del("r", "alice", b);  // 9
  f.project();
  auto item = item_of(f.rooms("bob"), "r").json;
  CHECK(field(item, "unread") == "1");
  CHECK(field(item, "head") == "9");
  CHECK(field(item, "unread_capped") == "<none>");

  f.mark("bob", "r", 9);
  CHECK(field(item_of(f.rooms("bob"), "r").json, "unread") == "0");
  // A reader who never posted: every live message of others after the marker.
  f.mark("dave", "r", 0);
  CHECK(field(item_of(f.rooms("dave"), "r").json, "unread") == "4");
}

TEST_CASE("last is the newest message in its current form: edits update it, a delete falls back") {
  fixture f;
  f.create("r", "alice", false);
  auto m1 = f.send("r", "alice", "first");
  auto m2 = f.send("r", "bob", "second");
  f.set_topic("r", "alice", "topic");
  f.project();
  auto last = [&] { return field(item_of(f.rooms("alice"), "r").json, "last"); };
  CHECK(field(last(), "seq") == std::to_string(m2));

  auto e1 = f.edit("r", "bob", m2, "second, edited");
  f.project();
  CHECK(field(last(), "text") == "\"second, edited\"");
  CHECK(field(last(), "edited") == "true");
  CHECK(field(last(), "edits") == "[" + std::to_string(e1) + "]");
  // The stored record and "last" are the same JSON.
  CHECK(last() == **f.journal().event(room_id{"r"}, m2));

  // An edit of an older message leaves "last" alone.
  f.edit("r", "alice", m1, "first, edited");
  f.project();
  CHECK(field(last(), "seq") == std::to_string(m2));

  f.del("r", "bob", m2);
  f.project();
  CHECK(field(last(), "seq") == std::to_string(m1));
  CHECK(field(last(), "text") == "\"first, edited\"");

  f.del("r", "alice", m1);
  f.project();
  CHECK(last() == "null");
  CHECK(field(item_of(f.rooms("alice"), "r").json, "topic") == "\"topic\"");
}

TEST_CASE("a projection behind the log gets messages in their current form and ends the same") {
  fixture f;
  f.create("r", "alice", false);
  auto m1 = f.send("r", "alice", "kept");
  auto m2 = f.send("r", "bob", "gone");
  auto m3 = f.send("r", "alice", "edited");
  f.edit("r", "alice", m3, "edited twice");
  f.del("r", "bob", m2);
  f.project();  // m2 arrives deleted, m3 with its edit already in it
  f.mark("carol", "r", 0);
  auto carol = item_of(f.rooms("carol"), "r").json;
  CHECK(field(carol, "unread") == "2");
  auto last = field(carol, "last");
  CHECK(field(last, "seq") == std::to_string(m3));
  CHECK(field(last, "text") == "\"edited twice\"");
  CHECK(field(last, "edits") == "[5]");

  f.del("r", "alice", m3);
  f.project();
  carol = item_of(f.rooms("carol"), "r").json;
  CHECK(field(field(carol, "last"), "seq") == std::to_string(m1));
  CHECK(field(carol, "unread") == "1");
}

TEST_CASE("an invitation lists the room for the invitee at once and tells them if it is recent") {
  fixture f;
  f.create("secret", "alice", true, {}, "plans");
  f.project();
  CHECK(f.rooms("bob").items.empty());
  CHECK_FALSE(f.may_read("bob", "secret"));
  CHECK(f.notices.empty());

  auto s = f.invite("secret", "alice", "bob");
  f.project();
  CHECK(names(f.rooms("bob")) == std::vector<std::string>{"secret"});
  CHECK(f.may_read("bob", "secret"));
  REQUIRE(f.notices.size() == 1);
  CHECK(f.notices[0].user == user_id{"bob"});
  CHECK(f.notices[0].json == R"({"op":"invited","room":"secret","by":"alice","seq":)" +
                                 std::to_string(s) + R"(,"topic":"plans"})");

  // An invitation applied more than 60 s after it happened (a catch-up, a rebuild) says nothing.
  f.clock = now_millis() - 61'000;
  f.invite("secret", "alice", "carol");
  f.project();
  CHECK(f.notices.size() == 1);
  CHECK(names(f.rooms("carol")) == std::vector<std::string>{"secret"});
}

TEST_CASE("a user kicked from a private room no longer sees it, whatever they posted or read") {
  fixture f;
  f.create("secret", "alice", true, {"bob"});
  auto m = f.send("secret", "bob", "hi");
  f.mark("bob", "secret", m);
  f.create("open", "alice", false);
  f.invite("open", "alice", "bob");
  f.send("open", "bob", "hi all");
  f.project();
  CHECK(names(f.rooms("bob")) == std::vector<std::string>{"open", "secret"});

  f.kick("secret", "alice", "bob");
  f.kick("open", "alice", "bob");
  f.project();
  // The private room is gone; the public one stays (bob posted there and may still read it).
  CHECK(names(f.rooms("bob")) == std::vector<std::string>{"open"});
  CHECK_FALSE(f.may_read("bob", "secret"));
  CHECK(f.may_read("bob", "open"));

  f.invite("secret", "alice", "bob");
  f.project();
  CHECK(names(f.rooms("bob")) == std::vector<std::string>{"secret", "open"});
}

TEST_CASE("may_read: public rooms to all, private rooms to members now, unknown rooms to none") {
  fixture f;
  f.create("pub", "alice", false);
  f.create("priv", "alice", true, {"bob"});
  f.project();
  CHECK(f.may_read("anyone", "pub"));
  CHECK(f.may_read("alice", "priv"));
  CHECK(f.may_read("bob", "priv"));
  CHECK_FALSE(f.may_read("carol", "priv"));
  CHECK_FALSE(f.may_read("alice", "nowhere"));
}

TEST_CASE("may_read and rooms follow membership changes the projection has not applied yet") {
  fixture f;
  f.create("priv", "alice", true, {"bob"});
  f.project();
  REQUIRE(f.may_read("bob", "priv"));

  // A kick in the log but not yet applied (the projector lags): bob may no longer read.
  f.kick("priv", "alice", "bob");
  CHECK_FALSE(f.may_read("bob", "priv"));
  CHECK(f.rooms("bob").items.empty());
  // Messages after it don't help, and other members are not affected.
  f.send("priv", "alice", "after the kick");
  CHECK_FALSE(f.may_read("bob", "priv"));
  CHECK(f.may_read("alice", "priv"));
  // Invited again, not yet applied either: the log says bob is a member again.
  f.invite("priv", "alice", "bob");
  CHECK(f.may_read("bob", "priv"));
  CHECK(names(f.rooms("bob")) == std::vector<std::string>{"priv"});
  f.project();
  CHECK(f.may_read("bob", "priv"));

  // A tail longer than may_read examines refuses the room until the projection catches up.
  for (int i = 0; i < 300; ++i) f.send("priv", "alice", "busy");
  CHECK_FALSE(f.may_read("bob", "priv"));
  f.project();
  CHECK(f.may_read("bob", "priv"));
}

TEST_CASE("the directory lists public rooms by prefix, most recently active first, in pages") {
  fixture f;
  f.step = 2'000;  // beyond the directory's granularity, so each event reorders it
  for (auto r : {"dev-a", "dev-b", "dev-c", "ops", "dev-d"}) f.create(r, "alice", false, {}, r);
  f.create("dev-secret", "alice", true);
  f.send("dev-b", "alice", "activity");
  f.project();

  auto all = f.directory("");
  CHECK(names(all) == std::vector<std::string>{"dev-b", "dev-d", "ops", "dev-c", "dev-a"});
  CHECK_FALSE(all.more);
  CHECK(field(item_of(all, "dev-b").json, "head") == "2");
  CHECK(field(item_of(all, "ops").json, "topic") == "\"ops\"");

  auto dev = f.directory("dev");
  CHECK(names(dev) == std::vector<std::string>{"dev-b", "dev-d", "dev-c", "dev-a"});
  CHECK(f.directory("dev-c").items.size() == 1);
  CHECK(f.directory("zzz").items.empty());

  for (std::string prefix : {"", "dev-"}) {
    auto first = f.directory(prefix, 2);
    CHECK(names(first) == std::vector<std::string>{"dev-b", "dev-d"});
    CHECK(first.more);
    auto second = f.directory(prefix, 2, first.items.back().sort_key);
    CHECK(names(second) == (prefix.empty() ? std::vector<std::string>{"ops", "dev-c"}
                                           : std::vector<std::string>{"dev-c", "dev-a"}));
    auto third = f.directory(prefix, 2, second.items.back().sort_key);
    CHECK(third.more == false);
    CHECK(third.items.size() == (prefix.empty() ? 1u : 0u));
  }
  // Item shape: the ts is the directory key's.
  auto& b = item_of(all, "dev-b");
  CHECK(b.json == R"({"room":"dev-b","head":2,"topic":"dev-b","ts":)" +
                      std::to_string(static_cast<millis_t>(
                          decode_event(**f.journal().event(room_id{"dev-b"}, 2))->ts)) +
                      "}");
}

TEST_CASE("the directory moves a busy room's key at most once per granularity") {
  fixture f;
  f.step = 1;
  f.create("busy", "alice", false);
  auto first_ts = f.clock - 1;
  for (int i = 0; i < 50; ++i) f.send("busy", "alice", "x");
  f.project();
  auto d = f.directory("");
  REQUIRE(d.items.size() == 1);
  CHECK(field(d.items[0].json, "ts") == std::to_string(first_ts));
  CHECK(field(d.items[0].json, "head") == "51");
  f.clock += read::room_list::directory_granularity_ms;
  auto s = f.send("busy", "alice", "later");
  f.project();
  d = f.directory("");
  REQUIRE(d.items.size() == 1);
  CHECK(field(d.items[0].json, "ts") ==
        std::to_string(decode_event(**f.journal().event(room_id{"busy"}, s))->ts));
}

TEST_CASE("a user in 300 rooms pages through all of them once, newest first") {
  fixture f(64);
  std::vector<std::string> expected;
  for (int i = 0; i < 300; ++i) {
    auto room = "room-" + std::to_string(i);
    f.create(room, "owner", false);
    if (i % 3 == 0)
      f.invite(room, "owner", "u");
    else if (i % 3 == 1)
      f.send(room, "u", "hi");
    else
      f.mark("u", room, 1);
    expected.push_back(room);
  }
  // A later message moves room-7 to the top.
  f.send("room-7", "owner", "news");
  f.project();
  std::reverse(expected.begin(), expected.end());
  expected.erase(std::find(expected.begin(), expected.end(), "room-7"));
  expected.insert(expected.begin(), "room-7");

  std::vector<std::string> seen;
  std::optional<std::string> before;
  int pages = 0;
  for (;;) {
    auto p = f.rooms("u", 50, before);
    ++pages;
    REQUIRE(pages <= 7);
    auto n = names(p);
    seen.insert(seen.end(), n.begin(), n.end());
    if (!p.more) break;
    REQUIRE(p.items.size() == 50);
    before = p.items.back().sort_key;
  }
  CHECK(pages == 6);
  CHECK(seen == expected);
}

TEST_CASE("the unread count is bounded and says so") {
  fixture f(1);
  f.create("r", "alice", false);
  for (std::size_t i = 0; i < read::room_list::unread_scan_limit + 5; ++i)
    f.send("r", "alice", "x");
  f.project();
  f.mark("bob", "r", 0);
  auto item = item_of(f.rooms("bob"), "r").json;
  CHECK(field(item, "unread") == std::to_string(read::room_list::unread_scan_limit));
  CHECK(field(item, "unread_capped") == "true");
}

TEST_CASE("applies per second on the message path", "[.measure]") {
  fixture f(1024);
  constexpr int rooms = 100, per_room = 200;
  for (int r = 0; r < rooms; ++r) f.create("room-" + std::to_string(r), "alice", false);
  f.project();
  f.in_apply = {};
  f.batch_ops = 0;
  for (int i = 0; i < per_room; ++i)
    for (int r = 0; r < rooms; ++r)
      f.send("room-" + std::to_string(r), "user" + std::to_string(i % 7),
             "a message of some length");
  auto started = std::chrono::steady_clock::now();
  f.project();
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  double messages = rooms * per_room;
  WARN(messages << " messages in " << rooms << " rooms, a batch per room: " << messages / took
                << " /s with log reads and batch writes; apply alone "
                << messages / f.in_apply.count() << " /s; " << f.batch_ops / messages
                << " batch operations per message");
  auto q = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) (void)f.rooms("user1");
  using ms = std::chrono::duration<double, std::milli>;
  auto per_query = ms(std::chrono::steady_clock::now() - q).count() / 100;
  WARN("rooms query (100 rooms, 1024 shards): " << per_query << " ms");
  q = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) (void)f.rooms("nobody");
  per_query = ms(std::chrono::steady_clock::now() - q).count() / 100;
  WARN("rooms query (no rooms, 1024 shards): " << per_query << " ms");
  q = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) (void)f.directory("");
  per_query = ms(std::chrono::steady_clock::now() - q).count() / 100;
  WARN("directory query (100 rooms, 1024 shards, limit 50): " << per_query << " ms");
  q = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) (void)f.directory("room-1");
  per_query = ms(std::chrono::steady_clock::now() - q).count() / 100;
  WARN("directory query by prefix (1024 shards): " << per_query << " ms");
}
