// Replication's messages between nodes: each round-trips, and bytes that are not exactly one
// message within the bounds are refused.

#include <catch2/catch.hpp>

#include "cluster/replication_wire.hpp"

using namespace kaiwa::cluster;

TEST_CASE("replication messages round-trip", "[replication][wire]") {
  append_message a{7, 3, 41, 40, {{2, "p1"}, {3, std::string("\0\1\2", 3)}, {3, ""}}};
  CHECK(decode_append(encode(a)) == a);
  append_message empty{1, 1, 5, 4, {}};
  CHECK(decode_append(encode(empty)) == empty);
  append_answer ans{7, append_answer::kind::behind, 3, 40};
  CHECK(decode_answer(encode(ans)) == ans);
  history_request hr{7, 4};
  CHECK(decode_history_request(encode(hr)) == hr);
  history_message h{7, 4, 99, {{1, 1}, {3, 20}, {4, 90}}};
  CHECK(decode_history(encode(h)) == h);
  snapshot_chunk c{7, 4, 12, 3, "events.sst", true, std::string("\0\xff", 2)};
  CHECK(decode_snapshot_chunk(encode(c)) == c);
  snapshot_ack k{7, 4, 12, 4, true};
  CHECK(decode_snapshot_ack(encode(k)) == k);
}

TEST_CASE("a snapshot chunk names only a family's file, and holds at most a chunk",
          "[replication][wire]") {
  for (std::string bad :
       std::vector<std::string>{"", "../events", "/etc/passwd", ".sst", "Events.sst", "a/b",
                                std::string(max_snapshot_file_name + 1, 'a')}) {
    INFO(bad);
    CHECK_FALSE(decode_snapshot_chunk(encode(snapshot_chunk{7, 4, 12, 0, bad, false, "x"})));
  }
  CHECK(decode_snapshot_chunk(encode(
      snapshot_chunk{7, 4, 12, 0, "read.rooms.sst", false, std::string(max_snapshot_chunk, 'x')})));
  CHECK_FALSE(decode_snapshot_chunk(encode(
      snapshot_chunk{7, 4, 12, 0, "events.sst", false, std::string(max_snapshot_chunk + 1, 'x')})));
  auto chunk = encode(snapshot_chunk{7, 4, 12, 0, "events.sst", true, "x"});
  for (std::size_t n = 0; n < chunk.size(); ++n)
    CHECK_FALSE(decode_snapshot_chunk(chunk.substr(0, n)));
  CHECK_FALSE(decode_snapshot_chunk(chunk + "x"));
  auto ack = encode(snapshot_ack{7, 4, 12, 1, false});
  ack.back() = 2;  // neither false nor true
  CHECK_FALSE(decode_snapshot_ack(ack));
  CHECK(shard_of_message(encode(snapshot_ack{300, 4, 12, 1, false})) == 300);
  CHECK(shard_of_message(encode(snapshot_chunk{301, 4, 12, 1, "meta.sst", false, ""})) == 301);
}

TEST_CASE("replication messages refuse what they can't be", "[replication][wire]") {
  append_message a{7, 3, 41, 40, {{2, "payload"}}};
  auto bytes = encode(a);
  // Cut anywhere, or with a byte more, or read as another kind: refused.
  for (std::size_t n = 0; n < bytes.size(); ++n) CHECK_FALSE(decode_append(bytes.substr(0, n)));
  CHECK_FALSE(decode_append(bytes + "x"));
  CHECK_FALSE(decode_answer(bytes));
  CHECK_FALSE(decode_history(bytes));

  // A count that the bytes can't hold is refused before anything is read for it.
  auto huge = encode(append_message{7, 3, 41, 40, {}});
  huge.replace(huge.size() - 4, 4, std::string("\xff\xff\xff\x7f", 4));
  CHECK_FALSE(decode_append(huge));
  auto many = encode(append_message{7, 3, 41, 40, {}});
  many.replace(many.size() - 4, 4, std::string("\x01\x04\x00\x00", 4));  // 1,025 > the bound
  CHECK_FALSE(decode_append(many));
  // Offset 0, or offsets that would wrap.
  CHECK_FALSE(decode_append(encode(append_message{7, 3, 0, 0, {}})));
  CHECK_FALSE(decode_append(encode(append_message{7, 3, ~offset_t{0}, 0, {{1, "x"}}})));

  append_answer bad_kind{7, append_answer::kind::invalid, 1, 1};
  auto ab = encode(bad_kind);
  ab[3] = 9;
  CHECK_FALSE(decode_answer(ab));

  // A history must be one a replica could hold.
  CHECK_FALSE(decode_history(encode(history_message{7, 4, 99, {{3, 20}, {1, 1}}})));
  CHECK_FALSE(decode_history(encode(history_message{7, 4, 99, {{1, 0}}})));
}

TEST_CASE("a message's shard is read without decoding it, and only from a message's start",
          "[replication][wire]") {
  CHECK(shard_of_message(encode(append_message{513, 3, 41, 40, {{2, "p"}}})) == 513);
  CHECK(shard_of_message(encode(append_answer{7, append_answer::kind::appended, 3, 40})) == 7);
  CHECK(shard_of_message(encode(history_request{65535, 4})) == 65535);
  CHECK(shard_of_message(encode(history_message{9, 4, 99, {{1, 1}}})) == 9);
  CHECK_FALSE(shard_of_message(""));
  CHECK_FALSE(shard_of_message(std::string("\x01\x07", 2)));      // the shard cut short
  CHECK_FALSE(shard_of_message(std::string("\x00\x07\x00", 3)));  // no such type
  CHECK_FALSE(shard_of_message(std::string("\x07\x07\x00", 3)));
}
