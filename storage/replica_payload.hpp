#pragma once
// The payload of a shard's replicated log entry (journal.hpp, "a shard's replicated log"): the
// records one write_set committed on the leader, in write order, as followers apply them. It
// crosses the cluster port, so decoding checks everything: each record's kind, its key's
// layout, that the key names a valid room of the entry's shard, and every length against the
// bytes that are there before anything is copied.
//
// Byte form, per record: u8 kind, be32 key length, key, be32 value length, value. Keys are the
// journal's, stamped with their shard (docs/architecture.md, "Storage").

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/shard.hpp"

namespace kaiwa::storage {

/// What a record is; the codes are on the wire between versions: never renumber.
enum class record_kind : std::uint8_t { event = 0, snapshot = 1, meta = 2, marker = 3, dedupe = 4 };

struct replica_record {
  record_kind kind = record_kind::event;
  std::string key;
  std::string value;
  std::size_t room_at = 0;  // where the key names the room
  std::size_t room_len = 0;
};

void append_record(std::string& payload, record_kind kind, std::string_view key,
                   std::string_view value);

/// The records of `payload` if each is one the journal writes for a room of `shard` (of
/// `shards`); nullopt otherwise.
std::optional<std::vector<replica_record>> decode_replica_payload(std::string_view payload,
                                                                  shard_t shard,
                                                                  std::uint32_t shards);

}  // namespace kaiwa::storage
