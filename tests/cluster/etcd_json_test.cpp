// The etcd gateway's JSON, both ways, on answers captured from etcd 3.4.23 and on broken ones.

#include <catch2/catch.hpp>

#include "cluster/detail/etcd_json.hpp"

using namespace kaiwa::cluster;
using namespace kaiwa::cluster::detail;

namespace {
const std::string header =
    R"("header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"6","raft_term":"2"})";
}

TEST_CASE("base64 round-trips every byte and decodes only canonical RFC 4648", "[etcd][json]") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n : {0, 1, 2, 3, 4, 255, 256}) {
    std::string out;
    REQUIRE(base64_decode(base64_encode(all.substr(0, n)), out));
    CHECK(out == all.substr(0, n));
  }
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("v1") == "djE=");
  std::string out;
  CHECK_FALSE(base64_decode("Zm9", out));       // not a multiple of 4
  CHECK_FALSE(base64_decode("Zm9v\n", out));    // whitespace
  CHECK_FALSE(base64_decode("Z=9v", out));      // padding inside
  CHECK_FALSE(base64_decode("Zm==Zm9v", out));  // padding before the end
  CHECK_FALSE(base64_decode("djF=", out));      // unused bits set: not how "v1" encodes
  CHECK_FALSE(base64_decode("Zm9-", out));      // the URL alphabet is not etcd's
  CHECK_FALSE(base64_decode("====", out));
}

TEST_CASE("a prefix's range ends at the first key after every key under it", "[etcd][json]") {
  CHECK(prefix_end("a/") == "a0");
  CHECK(prefix_end(std::string("a\xff", 2)) == "b");
  CHECK(prefix_end(std::string("\xff\xff", 2)) == std::string(1, '\0'));
}

TEST_CASE("requests are the gateway's JSON: base64 bytes, 64-bit numbers as strings",
          "[etcd][json]") {
  CHECK(put_request("a/1", "v1", 0) == R"({"key":"YS8x","value":"djE="})");
  CHECK(put_request("a", "", 7) == R"({"key":"YQ==","value":"","lease":"7"})");
  CHECK(range_request("a/", "a0") == R"({"key":"YS8=","range_end":"YTA="})");
  CHECK(lease_grant_request(2) == R"({"TTL":"2"})");
  CHECK(lease_id_request(-1) == R"({"ID":"-1"})");
  CHECK(
      watch_create_request("w/", "w0", 12) ==
      R"({"create_request":{"key":"dy8=","range_end":"dzA=","start_revision":"12","prev_kv":true}})");
  CHECK(txn_request({compare::mod_revision("k", compare_result::equal, 0),
                     compare::value_is("k", compare_result::not_equal, "x")},
                    {txn_op::put("k", "v", 3)}, {txn_op::get("k"), txn_op::del_prefix("p")}) ==
        R"({"compare":[{"key":"aw==","target":"MOD","result":"EQUAL","mod_revision":"0"},)"
        R"({"key":"aw==","target":"VALUE","result":"NOT_EQUAL","value":"eA=="}],)"
        R"("success":[{"request_put":{"key":"aw==","value":"dg==","lease":"3"}}],)"
        R"("failure":[{"request_range":{"key":"aw=="}},)"
        R"({"request_delete_range":{"key":"cA==","range_end":"cQ=="}}]})");
}

TEST_CASE("a range answer reads with omitted defaults as zero and empty", "[etcd][json]") {
  auto r = parse_range("{" + header +
                       R"(,"kvs":[{"key":"YS8x","create_revision":"2","mod_revision":"2",)"
                       R"("version":"1","value":"djE="},{"key":"YS8y","create_revision":"3",)"
                       R"("mod_revision":"3","version":"1"}],"count":"2"})");
  REQUIRE(r.ok());
  CHECK(r->revision == 6);
  CHECK(r->count == 2);
  REQUIRE(r->kvs.size() == 2);
  CHECK(r->kvs[0].key == "a/1");
  CHECK(r->kvs[0].value == "v1");
  CHECK(r->kvs[1].value.empty());  // etcd leaves an empty value out
  CHECK(r->kvs[1].create_revision == 3);
  CHECK(r->kvs[1].lease == 0);

  auto empty = parse_range("{" + header + "}");
  REQUIRE(empty.ok());
  CHECK(empty->kvs.empty());
}

TEST_CASE("answers of the wrong shape are protocol errors", "[etcd][json]") {
  for (std::string body : std::vector<std::string>{
           "", "garbage", "[]", "{\"kvs\":{}}", "{\"kvs\":[1]}", "{\"kvs\":[{\"key\":\"!!\"}]}",
           "{\"kvs\":[{\"key\":\"YQ==\",\"version\":\"1x\"}]}",
           "{\"kvs\":[{\"key\":\"YQ==\",\"version\":\"99999999999999999999\"}]}",
           "{\"kvs\":[{\"key\":\"YQ==\",\"version\":1.5}]}", "{\"header\":{\"revision\":true}}",
           "{\"more\":\"yes\"}", "{" + header + ",\"kvs\":[]", std::string(100, '['),
           std::string("{\"a\":\"\xff\"}")}) {
    auto r = parse_range(body);
    REQUIRE_FALSE(r.ok());
    CHECK(r.err().code == errc::protocol);
  }
}

TEST_CASE("a txn answer has one response per op, of the op's kind", "[etcd][json]") {
  auto ok = parse_txn(
      "{" + header +
      R"(,"succeeded":true,"responses":[{"response_put":{"header":{"revision":"4"}}},)"
      R"({"response_range":{"header":{"revision":"4"},"kvs":[{"key":"YS8x","mod_revision":"4"}],"count":"1"}},)"
      R"({"response_delete_range":{"header":{"revision":"5"},"deleted":"1"}}]})");
  REQUIRE(ok.ok());
  CHECK(ok->succeeded);
  REQUIRE(ok->responses.size() == 3);
  CHECK(ok->responses[0].what == txn_op::kind::put);
  CHECK(ok->responses[1].what == txn_op::kind::range);
  CHECK(ok->responses[1].kvs.at(0).mod_revision == 4);
  CHECK(ok->responses[2].deleted == 1);

  auto failed = parse_txn("{" + header + "}");  // succeeded: false is left out
  REQUIRE(failed.ok());
  CHECK_FALSE(failed->succeeded);

  CHECK_FALSE(parse_txn(R"({"responses":[{}]})").ok());
  CHECK_FALSE(parse_txn(R"({"responses":[{"response_put":{},"response_range":{}}]})").ok());
}

TEST_CASE("lease answers: grant, keepalive (streamed), unknown lease", "[etcd][json]") {
  auto g = parse_lease_grant("{" + header + R"(,"ID":"4111120336179280141","TTL":"5"})");
  REQUIRE(g.ok());
  CHECK(g->id == 4111120336179280141);
  CHECK(g->ttl == 5);
  auto k = parse_lease_keepalive(R"({"result":{)" + header +
                                 R"(,"ID":"41","TTL":"10"}})"
                                 "\n");
  REQUIRE(k.ok());
  CHECK(*k == 10);
  auto gone = parse_lease_keepalive(R"({"result":{)" + header + R"(,"ID":"12345"}})");
  REQUIRE(gone.ok());
  CHECK(*gone == 0);
  auto e = parse_error(404, R"({"error":"etcdserver: requested lease not found",)"
                            R"("message":"etcdserver: requested lease not found","code":5})");
  CHECK(e.code == errc::etcd);
  CHECK(e.etcd_code == 5);
  CHECK(parse_error(502, "<html>").code == errc::protocol);
}

TEST_CASE("watch messages: created, events with prev_kv, deletes, compaction", "[etcd][json]") {
  auto created = parse_watch(R"({"result":{)" + header + R"(,"created":true}})");
  REQUIRE(created.ok());
  CHECK(created->created);
  CHECK(created->revision == 6);

  auto events = parse_watch(
      R"({"result":{"header":{"revision":"9"},"events":[{"kv":{"key":"dy8x","create_revision":"7",)"
      R"("mod_revision":"8","version":"2","value":"Yg=="},"prev_kv":{"key":"dy8x","mod_revision":"7",)"
      R"("value":"YQ=="}},{"type":"DELETE","kv":{"key":"dy8x","mod_revision":"9"}}]}})");
  REQUIRE(events.ok());
  REQUIRE(events->events.size() == 2);
  CHECK(events->events[0].what == watch_event::type::put);
  CHECK(events->events[0].kv.value == "b");
  CHECK(events->events[0].has_prev);
  CHECK(events->events[0].prev.value == "a");
  CHECK(events->events[1].what == watch_event::type::del);
  CHECK(events->events[1].kv.mod_revision == 9);
  CHECK_FALSE(events->events[1].has_prev);

  auto compacted = parse_watch(
      R"({"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"10"}})");
  REQUIRE(compacted.ok());
  CHECK(compacted->canceled);
  CHECK(compacted->compact_revision == 10);

  CHECK_FALSE(parse_watch(R"({"result":{"events":[{"type":"EXPIRE","kv":{}}]}})").ok());
  CHECK_FALSE(parse_watch(R"({"result":{"events":[{"type":"PUT"}]}})").ok());
  CHECK(parse_watch(R"({"error":{"grpc_code":14,"message":"no leader"}})").err().code ==
        errc::etcd);
}
