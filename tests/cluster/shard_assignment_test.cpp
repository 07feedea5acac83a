// A shard's replica assignment: its invariants, and its JSON both ways (what etcd holds is read
// like any other input).

#include <catch2/catch.hpp>

#include "cluster/shard_assignment.hpp"

using namespace kaiwa::cluster;

namespace {

shard_assignment three() { return {4, "n2", {"n1", "n2", "n3"}, {"n2", "n3"}}; }

}  // namespace

TEST_CASE("an assignment round-trips through its JSON", "[assignment]") {
  auto a = three();
  auto json = encode(a);
  CHECK(json == R"({"epoch":4,"leader":"n2","replicas":["n1","n2","n3"],"isr":["n2","n3"]})");
  auto back = decode_assignment(json);
  REQUIRE(back);
  CHECK(*back == a);
  CHECK(back->in_sync("n3"));
  CHECK_FALSE(back->in_sync("n1"));
  CHECK(back->holds("n1"));
  CHECK_FALSE(back->holds("n4"));
}

TEST_CASE("an assignment that breaks an invariant says which", "[assignment]") {
  CHECK_FALSE(invalid_reason(three()));
  auto a = three();
  a.epoch = 0;
  CHECK(invalid_reason(a) == "epoch 0");
  a = three();
  a.leader = "n1";  // a replica, but not in sync: it may miss acked events
  CHECK(invalid_reason(a) == "leader 'n1' is not in sync");
  a = three();
  a.isr.push_back("n4");
  CHECK(invalid_reason(a) == "in-sync n4 is not a replica");
  a = three();
  a.isr = {"n2", "n2"};
  CHECK(invalid_reason(a) == "in-sync n2 listed twice");
  a = three();
  a.replicas = {"n1", "n2", "n1"};
  CHECK(invalid_reason(a) == "replica n1 listed twice");
  a = three();
  a.isr.clear();
  CHECK(invalid_reason(a) == "no replica in sync");
  a = three();
  a.replicas.clear();
  CHECK(invalid_reason(a)->starts_with("replicas: 0"));
  a = {1, "n0", {"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"}, {"n0"}};
  CHECK(invalid_reason(a)->starts_with("replicas: 8"));
  a = {1, "bad id", {"bad id"}, {"bad id"}};
  CHECK(invalid_reason(a) == "replica 'bad id' is not a node id");
}

TEST_CASE("decoding refuses anything but a valid assignment's four fields", "[assignment]") {
  auto ok = R"({"epoch":1,"leader":"a","replicas":["a"],"isr":["a"]})";
  REQUIRE(decode_assignment(ok));
  for (auto bad : {
           "",
           "null",
           "[]",
           "{}",
           R"({"epoch":1,"leader":"a","replicas":["a"]})",                    // isr missing
           R"({"epoch":1,"leader":"a","replicas":["a"],"isr":["a"],"x":1})",  // extra field
           R"({"epoch":1,"leader":"a","leader":"a","replicas":["a"],"isr":["a"]})",
           R"({"epoch":1,"epoch":2,"replicas":["a"],"isr":["a"]})",  // repeated, leader missing
           R"({"epoch":1,"leader":"a","replicas":["a"],"replicas":["a"]})",
           R"({"epoch":-1,"leader":"a","replicas":["a"],"isr":["a"]})",
           R"({"epoch":1.5,"leader":"a","replicas":["a"],"isr":["a"]})",
           R"({"epoch":"1","leader":"a","replicas":["a"],"isr":["a"]})",
           R"({"epoch":18446744073709551616,"leader":"a","replicas":["a"],"isr":["a"]})",
           R"({"epoch":1,"leader":1,"replicas":["a"],"isr":["a"]})",
           R"({"epoch":1,"leader":"a","replicas":"a","isr":["a"]})",
           R"({"epoch":1,"leader":"a","replicas":[1],"isr":["a"]})",
           R"({"epoch":1,"leader":"b","replicas":["a"],"isr":["a"]})",  // leader not in sync
           R"({"epoch":1,"leader":"a","replicas":["a"],"isr":["a"]} trailing)",
           R"({"epoch":1,"leader":"a","replicas":["a","b","c","d","e","f","g","h"],"isr":["a"]})",
       })
    CHECK_FALSE(decode_assignment(bad));
  // A document past the bound is refused before it is parsed, whatever it holds.
  std::string big = R"({"epoch":1,"leader":"a","replicas":["a"],"isr":["a"])";
  big += std::string(5000, ' ') + "}";
  CHECK_FALSE(decode_assignment(big));
}
