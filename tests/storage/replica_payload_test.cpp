// A replicated entry's payload from the cluster port: only records the journal writes for rooms
// of the entry's shard decode.

#include <catch2/catch.hpp>

#include "core/bytes.hpp"
#include "storage/replica_payload.hpp"

using namespace kaiwa;
using namespace kaiwa::storage;

namespace {

constexpr std::uint32_t shards = 1024;

std::string sp(std::string_view room) {
  std::string k;
  append_be16(k, shard_of(room, shards));
  return k;
}

std::string event_key(std::string_view room, std::uint64_t seq) {
  auto k = sp(room) + std::string(room) + '\0';
  append_be64(k, seq);
  return k;
}

}  // namespace

TEST_CASE("a payload of a shard's records decodes with each record's room", "[replication]") {
  std::string room = "lobby";
  auto shard = shard_of(room, shards);
  std::string p;
  append_record(p, record_kind::event, event_key(room, 7), "{\"op\":\"event\"}");
  append_record(p, record_kind::meta, sp(room) + room, "m");
  append_record(p, record_kind::snapshot, sp(room) + room, "s");
  append_record(p, record_kind::dedupe, sp(room) + room + '\0' + "alice" + '\0' + "c1", "x");
  append_record(p, record_kind::marker, sp(room) + "alice" + '\0' + room, "y");
  auto r = decode_replica_payload(p, shard, shards);
  REQUIRE(r);
  REQUIRE(r->size() == 5);
  for (auto& rec : *r) CHECK(rec.key.substr(rec.room_at, rec.room_len) == room);
  CHECK((*r)[0].value == "{\"op\":\"event\"}");
  CHECK((*r)[4].kind == record_kind::marker);
  CHECK(decode_replica_payload("", shard, shards)->empty());
}

TEST_CASE("a payload with anything else is refused whole", "[replication]") {
  std::string room = "lobby";
  auto shard = shard_of(room, shards);
  std::string other = "kitchen";
  REQUIRE(shard_of(other, shards) != shard);
  auto refused = [&](std::string p) { return !decode_replica_payload(p, shard, shards); };
  auto one = [](record_kind k, std::string key, std::string value = "v") {
    std::string p;
    append_record(p, k, key, value);
    return p;
  };
  CHECK(refused(one(record_kind::event, event_key(other, 1))));  // another shard's room
  auto forged = event_key(other, 1);  // another room under this shard's prefix
  forged.replace(0, 2, sp(room));
  CHECK(refused(one(record_kind::event, forged)));
  CHECK(refused(one(static_cast<record_kind>(5), sp(room) + room)));  // the log itself
  CHECK(refused(one(static_cast<record_kind>(6), sp(room) + room)));  // a read model
  CHECK(refused(one(static_cast<record_kind>(255), sp(room) + room)));
  CHECK(refused(one(record_kind::event, sp(room) + room + '\0' + "123")));  // seq not 8 bytes
  CHECK(refused(one(record_kind::event, sp(room) + room)));                 // no seq at all
  CHECK(refused(one(record_kind::meta, sp(room) + room + '\0')));
  CHECK(refused(one(record_kind::dedupe, sp(room) + room + '\0' + "alice")));  // no cid
  CHECK(refused(one(record_kind::marker, sp(room) + "alice")));                // no room
  CHECK(refused(one(record_kind::meta, sp("bad name!") + "bad name!")));
  CHECK(refused(one(record_kind::meta, "")));
  CHECK_FALSE(decode_replica_payload(one(record_kind::meta, sp(room) + room), shard, 0));
  // Lengths that run past the end, cut anywhere.
  auto good = one(record_kind::meta, sp(room) + room, "value");
  for (std::size_t n = 1; n < good.size(); ++n) CHECK(refused(good.substr(0, n)));
  std::string huge(1, '\2');
  append_be32(huge, 0xffffffffu);
  CHECK(refused(huge));
  // One bad record spoils the payload.
  CHECK(refused(good + one(record_kind::event, event_key(other, 1))));
}
