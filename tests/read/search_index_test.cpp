#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <map>
#include <random>
#include <set>

#include "core/json.hpp"
#include "read/projector.hpp"
#include "read/room_list.hpp"
#include "read/search_index.hpp"
#include "storage/journal.hpp"
#include "tests/read/log_fixture.hpp"

using namespace kaiwa;
using namespace std::chrono_literals;

namespace {

// The rooms and search projections fed from a node's log.
class fixture : public test::event_log {
 public:
  explicit fixture(std::uint32_t shards = 8, read::search_config search = {})
      : test::event_log(shards),
        list_(std::make_unique<read::room_list>(journal())),
        index_(std::make_unique<read::search_index>(journal(), *list_, search)) {}

  /// Applies every event not applied yet to both projections.
  void project() {
    event_log::project([&](const event& e, std::string_view stored, storage::read_batch& batch) {
      REQUIRE(list_->apply(e, stored, batch, notices_).ok());
      REQUIRE(index_->apply(e, stored, batch, notices_).ok());
    });
  }

  read::search_index& index() { return *index_; }

  read::page search(const std::string& user, std::string_view q, std::size_t limit = 20,
                    std::optional<std::string> before = std::nullopt,
                    std::optional<std::string> room = std::nullopt,
                    std::optional<std::vector<shard_t>> shards = std::nullopt) {
    std::optional<room_id> r;
    if (room) r = room_id{*room};
    auto p = index_->search(user_id{user}, read::parse_query(q), r, shards ? *shards : all_shards(),
                            before, limit);
    REQUIRE(p.ok());
    return std::move(p).value();
  }

  /// Erases `room` from both projections, in batches of about `batch_ops`.
  void erase(const std::string& room, std::size_t batch_ops) {
    REQUIRE(
        read::erase_room(journal(), {list_.get(), index_.get()}, room_id{room}, batch_ops).ok());
  }
  const read::room_list& list() const { return *list_; }

  /// The (room, seq) of each hit, in order.
  std::vector<std::pair<std::string, seq_t>> hits(
      const std::string& user, std::string_view q, std::optional<std::string> room = std::nullopt,
      std::optional<std::vector<shard_t>> shards = std::nullopt) {
    std::vector<std::pair<std::string, seq_t>> out;
    for (auto& i : search(user, q, 100, std::nullopt, room, shards).items) {
      auto e = decode_event(i.json.substr(0, i.json.rfind(",\"highlight\"")) + "}");
      REQUIRE(e);
      out.emplace_back(e->room.str(), e->seq);
    }
    return out;
  }

 private:
  std::unique_ptr<read::room_list> list_;
  std::unique_ptr<read::search_index> index_;
  std::vector<read::notice> notices_;
};

using hit_list = std::vector<std::pair<std::string, seq_t>>;

}  // namespace

TEST_CASE("a Japanese word is found inside text without spaces") {
  fixture f;
  f.create("lobby", "ann", false);
  auto m = f.send("lobby", "ann", "明日の会議は15時");
  f.send("lobby", "ann", "会社に行きます");
  f.project();
  CHECK(f.hits("bob", "会議") == hit_list{{"lobby", m}});
  CHECK(f.hits("bob", "会議は") == hit_list{{"lobby", m}});
  CHECK(f.hits("bob", "議会").empty());
}

TEST_CASE("Latin words match case-insensitively and width-insensitively") {
  fixture f;
  f.create("lobby", "ann", false);
  auto a = f.send("lobby", "ann", "flying to tokyo tomorrow");
  auto b = f.send("lobby", "ann", "カイギ室");
  f.project();
  CHECK(f.hits("bob", "Tokyo") == hit_list{{"lobby", a}});
  CHECK(f.hits("bob", "ＴＯＫＹＯ") == hit_list{{"lobby", a}});
  CHECK(f.hits("bob", "ｶｲｷﾞ") == hit_list{{"lobby", b}});
}

TEST_CASE("every term of a query must occur, a quoted phrase in order") {
  fixture f;
  f.create("lobby", "ann", false);
  auto phrase = f.send("lobby", "ann", "delete the lock file please");
  auto both = f.send("lobby", "ann", "the file has a lock on it");
  f.send("lobby", "ann", "lock the door");
  f.send("lobby", "ann", "a file");
  f.project();
  CHECK(f.hits("bob", "lock file") == hit_list{{"lobby", both}, {"lobby", phrase}});
  CHECK(f.hits("bob", "\"lock file\"") == hit_list{{"lobby", phrase}});
  CHECK(f.hits("bob", "\"file lock\"").empty());
}

TEST_CASE("a phrase follows its message's edits: the words made adjacent, then apart") {
  fixture f;
  f.create("lobby", "ann", false);
  auto m = f.send("lobby", "ann", "the file has a lock");
  f.project();
  CHECK(f.hits("bob", "\"lock file\"").empty());
  CHECK(f.hits("bob", "lock file") == hit_list{{"lobby", m}});
  f.edit("lobby", "ann", m, "the lock file");
  f.project();
  CHECK(f.hits("bob", "\"lock file\"") == hit_list{{"lobby", m}});
  CHECK(f.hits("bob", "has").empty());
  f.edit("lobby", "ann", m, "file: a lock");
  f.project();
  CHECK(f.hits("bob", "\"lock file\"").empty());
  CHECK(f.hits("bob", "lock file") == hit_list{{"lobby", m}});
  CHECK(f.hits("bob", "東京都").empty());
  f.edit("lobby", "ann", m, "京都と東京、東京都");
  f.project();
  CHECK(f.hits("bob", "東京都") == hit_list{{"lobby", m}});
  CHECK(f.hits("bob", "lock").empty());
}

TEST_CASE("a CJK query matches contiguous text, not its bigrams scattered") {
  fixture f;
  f.create("lobby", "ann", false);
  auto contiguous = f.send("lobby", "ann", "東京都に住む");
  f.send("lobby", "ann", "東京と京都");  // 東京 and 京都, but never 東京都
  f.project();
  CHECK(f.hits("bob", "東京都") == hit_list{{"lobby", contiguous}});
}

TEST_CASE("a single CJK character matches every term it starts and the run's last character") {
  fixture f;
  f.create("lobby", "ann", false);
  auto a = f.send("lobby", "ann", "明日の会議");
  auto b = f.send("lobby", "ann", "会う");
  f.send("lobby", "ann", "明日");
  f.project();
  CHECK(f.hits("bob", "会") == hit_list{{"lobby", b}, {"lobby", a}});
  CHECK(f.hits("bob", "議") == hit_list{{"lobby", a}});
  CHECK(f.hits("bob", "会 明日") == hit_list{{"lobby", a}});
}

TEST_CASE("hits come newest first and pages neither repeat nor skip") {
  fixture f;
  f.create("a", "ann", false);
  f.create("b", "ann", false);
  std::vector<std::pair<std::string, seq_t>> sent;
  for (int i = 0; i < 30; ++i) {
    auto room = i % 3 == 0 ? "a" : "b";
    sent.emplace_back(room, f.send(room, "ann", "report number " + std::to_string(i)));
    if (i % 5 == 0)
      f.step = 0;  // some messages share a ts: the room and seq order them
    else
      f.step = 1;
  }
  f.project();
  std::reverse(sent.begin(), sent.end());

  hit_list seen;
  std::optional<std::string> before;
  for (int pages = 0; pages < 10; ++pages) {
    auto p = f.search("bob", "report", 7, before);
    for (std::size_t i = 1; i < p.items.size(); ++i)
      CHECK(p.items[i - 1].sort_key > p.items[i].sort_key);
    for (auto& i : p.items) {
      auto e = decode_event(i.json.substr(0, i.json.rfind(",\"highlight\"")) + "}");
      REQUIRE(e);
      seen.emplace_back(e->room.str(), e->seq);
    }
    if (!p.more) break;
    REQUIRE(!p.items.empty());
    before = p.items.back().sort_key;
  }
  std::set<std::pair<std::string, seq_t>> unique(seen.begin(), seen.end());
  CHECK(unique.size() == seen.size());
  CHECK(unique == std::set<std::pair<std::string, seq_t>>(sent.begin(), sent.end()));
  // Newest first across rooms: ts descending (ties broken by room, then seq, descending).
  CHECK(seen.size() == 30);
  auto first = f.search("bob", "report", 1);
  CHECK(first.more);
  REQUIRE(first.items.size() == 1);
  CHECK(first.items[0].json.find("report number 29") != std::string::npos);
}

TEST_CASE("a room filter returns that room's hits only") {
  fixture f;
  f.create("a", "ann", false);
  f.create("b", "ann", false);
  auto in_a = f.send("a", "ann", "standup notes");
  f.send("b", "ann", "standup notes");
  f.project();
  CHECK(f.hits("bob", "standup", std::string("a")) == hit_list{{"a", in_a}});
  CHECK(f.hits("bob", "standup").size() == 2);
  CHECK(f.hits("bob", "standup", std::string("nowhere")).empty());
}

TEST_CASE("only the shards given are searched, each once") {
  fixture f;
  f.create("a", "ann", false);
  f.create("b", "ann", false);
  auto in_a = f.send("a", "ann", "standup notes");
  auto in_b = f.send("b", "ann", "standup notes");
  f.project();
  auto sa = shard_of("a", 8), sb = shard_of("b", 8);
  REQUIRE(sa != sb);
  CHECK(f.hits("bob", "standup", std::nullopt, std::vector<shard_t>{sa, sa}) ==
        hit_list{{"a", in_a}});
  CHECK(f.hits("bob", "standup", std::nullopt, std::vector<shard_t>{sb}) == hit_list{{"b", in_b}});
  CHECK(f.hits("bob", "standup", std::string("a"), std::vector<shard_t>{sb}).empty());
}

TEST_CASE("an edit replaces what is found, a delete removes it") {
  fixture f;
  f.create("lobby", "ann", false);
  auto m = f.send("lobby", "ann", "meeting at noon");
  auto gone = f.send("lobby", "ann", "meeting cancelled");
  f.project();
  CHECK(f.hits("bob", "meeting").size() == 2);

  auto p0 = f.search("bob", "noon");
  REQUIRE(p0.items.size() == 1);
  f.edit("lobby", "ann", m, "lunch at one");
  f.del("lobby", "ann", gone);
  f.project();
  CHECK(f.hits("bob", "meeting").empty());
  CHECK(f.hits("bob", "noon").empty());
  CHECK(f.hits("bob", "cancelled").empty());
  auto p = f.search("bob", "lunch");
  REQUIRE(p.items.size() == 1);
  CHECK(p.items[0].json.find("\"edited\":true") != std::string::npos);
  CHECK(p.items[0].sort_key == p0.items[0].sort_key);  // still the message's time and seq

  f.edit("lobby", "ann", m, "dinner at eight");
  f.del("lobby", "ann", m);
  f.project();
  CHECK(f.hits("bob", "lunch").empty());
  CHECK(f.hits("bob", "dinner").empty());
}

TEST_CASE("a message edited and deleted before it is indexed is never found") {
  fixture f;
  f.create("lobby", "ann", false);
  auto m = f.send("lobby", "ann", "first draft");
  f.edit("lobby", "ann", m, "second draft");
  auto kept = f.send("lobby", "ann", "draft kept");
  auto n = f.send("lobby", "ann", "third draft");
  f.edit("lobby", "ann", n, "fourth draft");
  f.del("lobby", "ann", n);
  f.project();  // m arrives edited, n arrives deleted, n's edit redacted
  CHECK(f.hits("bob", "draft") == hit_list{{"lobby", kept}, {"lobby", m}});
  CHECK(f.hits("bob", "first").empty());
  CHECK(f.hits("bob", "second") == hit_list{{"lobby", m}});
  CHECK(f.hits("bob", "fourth").empty());
}

TEST_CASE("a private room's messages are found by its members only, and not after a kick") {
  fixture f;
  f.create("secret", "ann", true, {"carl"});
  f.create("lobby", "ann", false);
  auto s = f.send("secret", "ann", "the plan is ready");
  auto l = f.send("lobby", "ann", "the plan is public");
  f.project();
  CHECK(f.hits("ann", "plan") == hit_list{{"lobby", l}, {"secret", s}});
  CHECK(f.hits("carl", "plan") == hit_list{{"lobby", l}, {"secret", s}});
  CHECK(f.hits("bob", "plan") == hit_list{{"lobby", l}});
  CHECK(f.hits("bob", "plan", std::string("secret")).empty());

  f.kick("secret", "ann", "carl");
  f.project();
  CHECK(f.hits("carl", "plan") == hit_list{{"lobby", l}});
}

TEST_CASE("a room filter naming a room the user may not read tells nothing of its messages") {
  // Walked, its postings ran the query out of work: `more` and a `next` holding a message's
  // time told a non-member that the private room holds the words, and when they were written.
  read::search_config cfg;
  cfg.max_steps = 25;
  fixture f(8, cfg);
  f.create("secret", "ann", true);
  for (int i = 0; i < 60; ++i) f.send("secret", "ann", "launch code " + std::to_string(i));
  f.project();
  for (auto q : {"launch", "launch code", "nothing"}) {
    INFO(q);
    auto p = f.search("bob", q, 20, std::nullopt, std::string("secret"));
    CHECK(p.items.empty());
    CHECK_FALSE(p.more);
    CHECK_FALSE(p.next);
  }
  // Its member still pages through all of it.
  std::size_t found = 0;
  std::optional<std::string> before;
  for (int pages = 0; pages < 60; ++pages) {
    auto p = f.search("ann", "launch", 100, before, std::string("secret"));
    found += p.items.size();
    if (!p.more) break;
    before = p.next ? p.next : std::optional<std::string>(p.items.back().sort_key);
  }
  CHECK(found == 60);
}

TEST_CASE("a hit is the stored event with where the query matched") {
  fixture f;
  f.create("lobby", "ann", false);
  f.send("lobby", "ann", "明日の会議は15時");
  f.project();
  auto p = f.search("bob", "会議");
  REQUIRE(p.items.size() == 1);
  auto& json = p.items[0].json;
  CHECK(json.starts_with("{\"op\":\"event\",\"room\":\"lobby\",\"seq\":2,"));
  CHECK(json.ends_with(",\"highlight\":[[3,5]]}"));
  CHECK(read::decode_cursor(read::encode_cursor(p.items[0].sort_key)) == p.items[0].sort_key);
}

TEST_CASE("a query with nothing to search for, or a cursor that is not one, finds nothing") {
  fixture f;
  f.create("lobby", "ann", false);
  f.send("lobby", "ann", "hello");
  f.project();
  CHECK(f.search("bob", "!!!").items.empty());
  CHECK(f.search("bob", "hello", 0).items.empty());
  auto key = [](std::uint64_t ts, std::string room, std::uint64_t seq) {
    std::string k;
    for (int i = 7; i >= 0; --i) k += static_cast<char>(ts >> (8 * i));
    k += room;
    k += '\0';
    for (int i = 7; i >= 0; --i) k += static_cast<char>(seq >> (8 * i));
    return k;
  };
  // The cursor is the sort key a client sends back: what is not one finds nothing.
  CHECK(f.search("bob", "hello", 20, key(~std::uint64_t{0} >> 1, "zzz", 9)).items.size() == 1);
  for (auto bad : {std::string("\x01\x02"), key(1, "", 1), key(1, "no space", 1),
                   key(1, std::string("a\xff"), 1), key(~std::uint64_t{0}, "lobby", 1),
                   key(1, "lobby", 1).substr(0, 21)}) {
    auto p = f.search("bob", "hello", 20, bad);
    CHECK(p.items.empty());
    CHECK(!p.more);
  }
}

TEST_CASE("a query out of work returns the newest hits it found, and the next pages the rest") {
  read::search_config cfg;
  cfg.max_steps = 25;
  fixture f(8, cfg);
  std::set<std::pair<std::string, seq_t>> sent;
  for (int r = 0; r < 6; ++r) f.create("r" + std::to_string(r), "ann", false);
  for (int i = 0; i < 60; ++i) {
    auto room = "r" + std::to_string(i % 6);
    sent.emplace(room, f.send(room, "ann", "status update " + std::to_string(i)));
  }
  f.project();

  std::set<std::pair<std::string, seq_t>> seen;
  std::optional<std::string> before;
  int pages = 0;
  bool short_page = false;
  for (; pages < 60; ++pages) {
    auto p = f.search("bob", "status update", 100, before);
    if (p.more && p.items.size() < 60) short_page = true;
    for (auto& i : p.items) {
      auto e = decode_event(i.json.substr(0, i.json.rfind(",\"highlight\"")) + "}");
      REQUIRE(e);
      CHECK(seen.emplace(e->room.str(), e->seq).second);  // never twice
    }
    if (!p.more) break;
    REQUIRE(!p.items.empty());
    before = p.items.back().sort_key;
  }
  CHECK(short_page);  // the bound cut pages short
  CHECK(pages > 1);
  CHECK(seen == sent);
}

TEST_CASE("unreadable hits count against a query's work: it stops rather than walk them all") {
  read::search_config cfg;
  cfg.max_steps = 50;
  fixture f(8, cfg);
  f.create("lobby", "ann", false);
  auto old = f.send("lobby", "ann", "the plan, in public");
  f.create("secret", "ann", true);
  for (int i = 0; i < 100; ++i) f.send("secret", "ann", "the plan " + std::to_string(i));
  f.project();
  auto p = f.search("bob", "plan");
  CHECK(p.items.empty());
  CHECK(p.more);
  CHECK(f.search("ann", "plan").items.size() == 20);

  fixture g;  // the default bound walks past them
  g.create("lobby", "ann", false);
  g.send("lobby", "ann", "the plan, in public");
  g.create("secret", "ann", true);
  for (int i = 0; i < 100; ++i) g.send("secret", "ann", "the plan " + std::to_string(i));
  g.project();
  CHECK(g.hits("bob", "plan") == hit_list{{"lobby", old}});
}

namespace {

/// Whether `text` matches `q`, straight from the definition: each term's tokens at their
/// relative positions among the text's tokens (a prefix token: a term starting with it).
bool matches(const std::string& text, const read::query& q) {
  auto toks = read::tokenize(text);
  for (auto& t : q.terms) {
    bool found = false;
    for (auto& base : toks) {
      found = std::all_of(t.tokens.begin(), t.tokens.end(), [&](const read::query_token& k) {
        return std::any_of(toks.begin(), toks.end(), [&](const read::token& x) {
          return x.pos == base.pos + k.pos &&
                 (k.prefix ? std::string_view(x.term).starts_with(k.term) : x.term == k.term);
        });
      });
      if (found) break;
    }
    if (!found) return false;
  }
  return !q.terms.empty();
}

}  // namespace

TEST_CASE("paged results equal a brute-force scan of the messages, through edits and deletes") {
  std::mt19937 rng(7);
  const std::vector<std::string> words = {"会議", "資料",   "明日", "東京",   "会社",   "lock",
                                          "file", "deploy", "the",  "議事録", "カイギ", "tokyo"};
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  auto sentence = [&] {
    std::string t;
    auto n = 1 + pick(6);
    for (std::size_t i = 0; i < n; ++i) {
      auto& w = words[pick(words.size())];
      // CJK words run together (one run, bigrams across them), Latin ones are spaced.
      if (!t.empty() && (w[0] & 0x80) == 0) t += ' ';
      t += w;
    }
    return t;
  };
  const std::vector<std::string> queries = {
      "会議",   "資料 明日",  "\"lock file\"", "lock file", "会",      "議",   "東京 tokyo", "議事",
      "カイギ", "the deploy", "\"file lock\"", "会議資料",  "明日 会", "ｶｲｷﾞ", "TOKYO"};

  for (std::size_t max_steps : {std::size_t{20'000}, std::size_t{40}}) {
    read::search_config cfg;
    cfg.max_steps = max_steps;
    fixture f(8, cfg);
    std::vector<std::string> rooms = {"a", "b", "c", "d", "hidden"};
    for (auto& r : rooms) f.create(r, "ann", r == "hidden");
    std::vector<std::pair<std::string, seq_t>> messages;
    for (int i = 0; i < 300; ++i) {
      auto& room = rooms[pick(rooms.size())];
      f.step = pick(3) == 0 ? 0 : 1;  // some share a ts
      auto roll = pick(10);
      if (roll == 0 && !messages.empty()) {
        auto [r, s] = messages[pick(messages.size())];
        if (!f.log().at(r).at(s - 1).deleted) f.del(r, "ann", s);
      } else if (roll == 1 && !messages.empty()) {
        auto [r, s] = messages[pick(messages.size())];
        if (!f.log().at(r).at(s - 1).deleted) f.edit(r, "ann", s, sentence());
      } else {
        messages.emplace_back(room, f.send(room, "ann", sentence()));
      }
      if (i % 50 == 49) f.project();  // some edits apply to messages already indexed
    }
    f.project();

    std::size_t found = 0;
    for (auto& qs : queries) {
      auto q = read::parse_query(qs);
      std::vector<std::pair<std::string, std::pair<millis_t, seq_t>>> expected_keys;
      for (auto& [room, events] : f.log())
        for (auto& e : events)
          if (room != "hidden" && e.type == event_type::message && !e.deleted && matches(e.text, q))
            expected_keys.push_back({room, {e.ts, e.seq}});
      std::sort(expected_keys.begin(), expected_keys.end(), [](auto& x, auto& y) {
        return std::tie(x.second.first, x.first, x.second.second) >
               std::tie(y.second.first, y.first, y.second.second);
      });
      hit_list expected;
      for (auto& [room, k] : expected_keys) expected.emplace_back(room, k.second);

      hit_list got;
      std::optional<std::string> before;
      for (int pages = 0; pages < 400; ++pages) {
        auto p = f.search("bob", qs, 1 + pick(7), before);
        for (auto& i : p.items) {
          auto e = decode_event(i.json.substr(0, i.json.rfind(",\"highlight\"")) + "}");
          REQUIRE(e);
          got.emplace_back(e->room.str(), e->seq);
        }
        before = continue_key(p);
        if (!before) break;
      }
      INFO("query " << qs << ", max_steps " << max_steps);
      found += got.size();
      // A bound too small for the query cuts each page short, and the page says where to go
      // on: paging still finds everything, in order, once. Except a single CJK character (a
      // prefix of many terms): 40 steps don't list its terms in every shard, and its pages stop
      // where they began; cut short, but never out of order or with gaps.
      bool prefix_query = qs == "会" || qs == "議";
      if (max_steps == 20'000 || !prefix_query) {
        CHECK(got == expected);
      } else {
        REQUIRE(got.size() <= expected.size());
        CHECK(std::equal(got.begin(), got.end(), expected.begin()));
      }
    }
    CHECK(found > 100);  // the queries do find things
  }
}

TEST_CASE("an index in another layout, or one older than format versions, is dropped at start") {
  fixture f;
  REQUIRE(f.index().check_format().ok());  // an empty family: only the version is written
  f.create("lobby", "ann", false);
  auto m = f.send("lobby", "ann", "hello there");
  f.project();
  REQUIRE(f.hits("bob", "hello") == hit_list{{"lobby", m}});
  const std::string format_key = std::string("\xff\xff\xff", 3) + "format";
  auto sp = storage::shard_prefix(shard_of("lobby", f.journal().shards()));
  // The projector's offset of the room (this fixture keeps its own).
  const std::string offset_key = sp + '\0' + "lobby";
  auto b0 = f.journal().new_read_batch();
  b0.put(storage::read_family::search, offset_key, std::string(8, '\0'));
  REQUIRE(f.journal().write_reads(std::move(b0)).ok());
  auto offset = [&] { return f.journal().read_get(storage::read_family::search, offset_key); };

  SECTION("the same layout is kept") {
    REQUIRE(f.index().check_format().ok());
    CHECK(f.hits("bob", "hello") == hit_list{{"lobby", m}});
    CHECK(offset().value());
  }
  SECTION("no version (the layout before versions) or another one: data and offsets go") {
    auto b = f.journal().new_read_batch();
    if (GENERATE(false, true))
      b.del(storage::read_family::search, format_key);
    else
      b.put(storage::read_family::search, format_key, "1");
    REQUIRE(f.journal().write_reads(std::move(b)).ok());
    REQUIRE(f.index().check_format().ok());
    CHECK(f.hits("bob", "hello").empty());
    CHECK(!offset().value());  // so the projector's catch-up applies the room from seq 1
    auto v = f.journal().read_get(storage::read_family::search, format_key);
    REQUIRE(v.ok());
    REQUIRE(v.value());
    CHECK(*v.value() == "3");
    REQUIRE(f.index().check_format().ok());  // and it is kept from now on
  }
}

TEST_CASE(
    "erasing a room leaves no key of it in either read model, and the rooms beside it whole") {
  fixture f(1);  // one shard: the rooms share every key range
  f.create("gone", "ann", false);
  auto m = f.send("gone", "ann", "apples and pears");
  f.edit("gone", "ann", m, "apples and plums");
  f.invite("gone", "ann", "bob");
  f.send("gone", "bob", "more apples");
  f.mark("bob", "gone", 2);
  f.create("kept", "ann", false);
  auto k = f.send("kept", "ann", "apples too");
  f.project();
  REQUIRE(f.hits("ann", "apples").size() == 3);

  f.erase("gone", 3);  // small batches: the erasure takes several
  for (auto family : {storage::read_family::rooms, storage::read_family::search}) {
    auto c = f.journal().new_read_cursor(family);
    for (c->seek(""); c->valid(); c->next())
      CHECK(std::string(c->key()).find("gone") == std::string::npos);
    REQUIRE(c->state().ok());
  }
  CHECK(f.hits("ann", "apples") == hit_list{{"kept", k}});
  auto rooms = f.list().list_rooms(f.all_shards(), std::nullopt, 10);
  REQUIRE(rooms.ok());
  REQUIRE(rooms->size() == 1);
  CHECK(rooms->at(0).room == "kept");
  CHECK(rooms->at(0).members == 1);
  auto users = f.list().list_users(f.all_shards(), std::nullopt, 10);
  REQUIRE(users.ok());
  REQUIRE(users->size() == 1);  // bob was only in "gone"
  CHECK(users->at(0).user == "ann");
  CHECK(users->at(0).rooms == 1);
}
