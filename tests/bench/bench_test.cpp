#include <catch2/catch.hpp>

#include "bench/corpus.hpp"
#include "bench/histogram.hpp"
#include "bench/run.hpp"

using namespace kaiwa::bench;

TEST_CASE("histogram quantiles are within 1/64 of the recorded values") {
  histogram h;
  for (std::uint64_t v = 1; v <= 100'000; ++v) h.record(v);
  CHECK(h.count() == 100'000);
  CHECK(h.max() == 100'000);
  auto p50 = static_cast<double>(h.quantile(0.5));
  CHECK(p50 >= 50'000);
  CHECK(p50 <= 50'000 * (1 + 1.0 / 64));
  auto p99 = static_cast<double>(h.quantile(0.99));
  CHECK(p99 >= 99'000);
  CHECK(p99 <= 99'000 * (1 + 1.0 / 64));
  CHECK(h.quantile(1.0) == 100'000);
}

TEST_CASE("histograms merge by addition") {
  histogram a, b;
  a.record(10);
  b.record(1000);
  a.merge(b);
  CHECK(a.count() == 2);
  CHECK(a.max() == 1000);
  CHECK(a.quantile(0.0) == 10);
}

TEST_CASE("the seq checker flags gaps, duplicates and reordering") {
  seq_checker c;
  std::string problem;
  CHECK(c.observe(5, problem));
  CHECK(c.observe(6, problem));
  CHECK_FALSE(c.observe(8, problem));
  CHECK(problem.find("gap") != std::string::npos);
  CHECK_FALSE(c.observe(8, problem));
  CHECK(problem.find("duplicate") != std::string::npos);
  CHECK(c.observe(9, problem));
}

TEST_CASE("server JSON fields are read without a parse") {
  std::string_view ev =
      R"({"op":"event","room":"r","seq":58,"ts":17,"type":"message","from":"a","text":"123456:xx"})";
  CHECK(json_int(ev, R"("seq":)") == 58);
  CHECK(json_int(ev, R"("text":)") == 123456);
  CHECK(json_str(ev, R"("room":)") == "r");
  CHECK(json_int(ev, R"("nope":)") == -1);
}

TEST_CASE("a histogram survives serialization into another one") {
  histogram a, b;
  for (std::uint64_t v : {3, 70, 5000, 123456}) a.record(v);
  REQUIRE(b.merge_serialized(a.serialize()));
  CHECK(b.count() == a.count());
  CHECK(b.max() == a.max());
  CHECK(b.quantile(0.5) == a.quantile(0.5));
  CHECK_FALSE(b.merge_serialized("x"));
}

TEST_CASE("the search corpus is the same for the same seed and differs for another") {
  corpus_config c;
  c.messages = 500;
  corpus a(c), b(c);
  c.seed = 2;
  corpus other(c);
  corpus_message ma, mb, mo;
  std::size_t same_as_other = 0;
  while (a.next(ma)) {
    REQUIRE(b.next(mb));
    REQUIRE(other.next(mo));
    CHECK(ma.text == mb.text);
    CHECK(ma.room == mb.room);
    CHECK(ma.user == mb.user);
    CHECK(ma.ts == mb.ts);
    same_as_other += ma.text == mo.text;
  }
  CHECK_FALSE(b.next(mb));
  CHECK(same_as_other < 100);
}

TEST_CASE("the search corpus is half Japanese, 10 to 200 code points, rooms skewed, ts rising") {
  corpus_config c;
  c.messages = 20'000;
  c.rooms = 100;
  c.users = 50;
  corpus gen(c);
  corpus_message m;
  std::size_t japanese = 0, total_points = 0, room0 = 0;
  std::int64_t last_ts = 0;
  std::vector<std::size_t> per_room(c.rooms);
  while (gen.next(m)) {
    std::size_t points = 0;
    for (unsigned char ch : m.text) points += (ch & 0xC0) != 0x80;
    INFO(m.text);
    CHECK(points >= 10);
    CHECK(points <= 200);
    total_points += points;
    japanese += points < m.text.size();  // multi-byte UTF-8
    CHECK(m.ts > last_ts);
    last_ts = m.ts;
    REQUIRE(m.room < c.rooms);
    REQUIRE(m.user < c.users);
    per_room[m.room] += 1;
  }
  CHECK(japanese > 9'000);
  CHECK(japanese < 11'000);
  auto mean = total_points / 20'000.0;
  CHECK(mean > 30);
  CHECK(mean < 100);
  // room k gets sqrt((k+1)/R) - sqrt(k/R) of the messages: room-0 10%, room-99 0.5%.
  CHECK(per_room[0] > 1'600);
  CHECK(per_room[0] < 2'400);
  CHECK(per_room[99] > 30);
  CHECK(per_room[99] < 200);
}

TEST_CASE("the query set has 1- to 4-term queries, each with and without a room filter") {
  auto qs = query_set();
  std::size_t by_terms[5] = {};
  std::size_t in_room = 0;
  for (auto& q : qs) {
    REQUIRE(q.terms >= 1);
    REQUIRE(q.terms <= 4);
    by_terms[q.terms] += 1;
    in_room += q.in_room;
    CHECK(q.q.size() <= 256);
  }
  for (std::size_t t = 1; t <= 4; ++t) CHECK(by_terms[t] > 0);
  CHECK(in_room * 2 == qs.size());
}
