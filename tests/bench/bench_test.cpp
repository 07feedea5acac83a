#include <catch2/catch.hpp>

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
