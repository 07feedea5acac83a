#include "storage/replica_payload.hpp"

#include "core/bytes.hpp"
#include "core/ids.hpp"

namespace kaiwa::storage {

namespace {

constexpr std::size_t shard_bytes = 2;

/// Where the room's name is in a key of `kind` (write_set's layouts), checked: a valid room name
/// of `shard`, and the shard's prefix in front.
std::optional<std::pair<std::size_t, std::size_t>> room_in_key(record_kind kind,
                                                               std::string_view key, shard_t shard,
                                                               std::uint32_t shards) {
  if (key.size() <= shard_bytes || read_be16(key) != shard) return std::nullopt;
  auto rest = key.substr(shard_bytes);
  auto nul = rest.find('\0');
  std::size_t at = shard_bytes, len = 0;
  switch (kind) {
    case record_kind::event:  // room NUL be64(seq)
      if (nul == std::string_view::npos || rest.size() != nul + 1 + 8) return std::nullopt;
      len = nul;
      break;
    case record_kind::snapshot:
    case record_kind::meta:  // room
      if (nul != std::string_view::npos) return std::nullopt;
      len = rest.size();
      break;
    case record_kind::dedupe:  // room NUL user NUL cid
      if (nul == std::string_view::npos || rest.find('\0', nul + 1) == std::string_view::npos)
        return std::nullopt;
      len = nul;
      break;
    case record_kind::marker:  // user NUL room
      if (nul == std::string_view::npos) return std::nullopt;
      at = shard_bytes + nul + 1;
      len = rest.size() - nul - 1;
      break;
    default:
      return std::nullopt;
  }
  auto room = key.substr(at, len);
  if (!valid_name(room) || shard_of(room, shards) != shard) return std::nullopt;
  return std::pair{at, len};
}

}  // namespace

void append_record(std::string& payload, record_kind kind, std::string_view key,
                   std::string_view value) {
  payload += static_cast<char>(kind);
  append_be32(payload, static_cast<std::uint32_t>(key.size()));
  payload += key;
  append_be32(payload, static_cast<std::uint32_t>(value.size()));
  payload += value;
}

std::optional<std::vector<replica_record>> decode_replica_payload(std::string_view in,
                                                                  shard_t shard,
                                                                  std::uint32_t shards) {
  if (shards == 0 || shard >= shards) return std::nullopt;
  std::vector<replica_record> out;
  while (!in.empty()) {
    replica_record r;
    r.kind = static_cast<record_kind>(in.front());
    in.remove_prefix(1);
    // take_string checks each length against the bytes left before it copies.
    if (!take_string(in, r.key) || !take_string(in, r.value)) return std::nullopt;
    auto room = room_in_key(r.kind, r.key, shard, shards);
    if (!room) return std::nullopt;
    r.room_at = room->first;
    r.room_len = room->second;
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace kaiwa::storage
