// A replicated log entry's payload as a follower gets it from the cluster port
// (storage/replica_payload.hpp): any bytes decode to records of the shard's rooms or are
// refused, and what decodes encodes back to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/shard.hpp"
#include "storage/replica_payload.hpp"

using namespace kaiwa;
using namespace kaiwa::storage;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first two bytes pick the shard (of 1,024), the rest is the payload.
  auto shard = static_cast<shard_t>(((data[0] << 8) | data[1]) % default_shards);
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  auto records = decode_replica_payload(in, shard, default_shards);
  if (!records) return 0;
  std::string again;
  for (auto& r : *records) {
    auto room = std::string_view(r.key).substr(r.room_at, r.room_len);
    if (r.room_at + r.room_len > r.key.size() || shard_of(room, default_shards) != shard)
      std::abort();
    append_record(again, r.kind, r.key, r.value);
  }
  if (again != in) std::abort();
  return 0;
}
