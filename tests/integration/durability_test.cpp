// Acked events survive SIGKILL; SIGTERM closes clients with 4010 and exits cleanly.

#include <catch2/catch.hpp>

#include <signal.h>

#include <map>

#include "tests/support/node_process.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

TEST_CASE("SIGTERM closes sessions with 4010, flushes, exits 0; the data is there after restart") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  {
    node_process node(data);
    ws_client c(node.port());
    c.hello("alice");
    CHECK(c.request(R"({"op":"send","id":1,"room":"r","text":"kept"})", 1).num("seq") == 2);
    CHECK(node.stop(SIGTERM) == 0);
    CHECK(c.close_code() == 4010);
  }
  node_process node(data);
  ws_client c(node.port());
  c.hello("alice");
  auto ack = c.request(R"({"op":"send","id":2,"room":"r","text":"next"})", 2);
  CHECK(ack.num("seq") == 3);
}

TEST_CASE(
    "after SIGKILL every acked event is there with its seq, and rooms continue at the next seq") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  constexpr int rooms = 4;
  std::map<std::string, std::map<std::int64_t, std::string>> acked;  // room -> seq -> text
  {
    node_process node(data);
    std::vector<std::unique_ptr<ws_client>> clients;
    for (int r = 0; r < rooms; ++r) {
      clients.push_back(std::make_unique<ws_client>(node.port()));
      clients.back()->hello("writer" + std::to_string(r));
    }
    // Stream pipelined sends into every room, then kill the node while they are in flight.
    constexpr int per_room = 400;
    for (int i = 0; i < per_room; ++i)
      for (int r = 0; r < rooms; ++r)
        clients[r]->send(R"({"op":"send","id":)" + std::to_string(i) + R"(,"room":"room)" +
                         std::to_string(r) + R"(","text":"t)" + std::to_string(i) + "\"}");
    // Wait until a good part is acked, so the kill lands mid-stream.
    for (int i = 0; i < per_room / 2; ++i) {
      auto m = clients[0]->next();
      if (m.str("op") == "ack") acked["room0"][m.num("seq")] = "t" + std::to_string(m.num("id"));
    }
    CHECK(node.stop(SIGKILL) == 128 + SIGKILL);
    for (int r = 0; r < rooms; ++r) {
      while (auto m = clients[r]->recv(2s)) {
        if (m->str("op") == "ack")
          acked["room" + std::to_string(r)][m->num("seq")] = "t" + std::to_string(m->num("id"));
      }
    }
  }
  REQUIRE(acked["room0"].size() >= 200);

  node_process node(data);
  ws_client reader(node.port());
  reader.hello("reader");
  for (auto& [room, events] : acked) {
    INFO(room);
    auto head = reader.request(R"({"op":"join","id":1,"room":")" + room + R"("})", 1).num("head");
    REQUIRE(head >= events.rbegin()->first);  // nothing acked is missing at the end
    std::int64_t expect = 1;
    for (std::int64_t after = 0; after < head;) {
      auto h = reader.request(R"({"op":"history","id":2,"room":")" + room + R"(","after":)" +
                                  std::to_string(after) + R"(,"limit":200})",
                              2);
      for (auto e : h.array("events")) {
        auto seq = std::int64_t(e["seq"]);
        REQUIRE(seq == expect++);  // no gaps
        if (auto it = events.find(seq); it != events.end())
          CHECK(std::string_view(e["text"]) == it->second);
        after = seq;
      }
    }
    auto next =
        reader.request(R"({"op":"send","id":3,"room":")" + room + R"(","text":"after crash"})", 3);
    CHECK(next.num("seq") == head + 1);
  }
}

TEST_CASE("durability async acks and reports itself in status") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--durability", "async"});
  ws_client c(node.port());
  c.hello("alice");
  CHECK(c.request(R"({"op":"send","id":1,"room":"r","text":"fast"})", 1).num("seq") == 2);
  CHECK(http_get(node.admin_port(), "/admin/v1/status").second.find(R"("durability":"async")") !=
        std::string::npos);
}
