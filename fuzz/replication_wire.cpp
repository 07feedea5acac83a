// Replication's messages as a node reads them from the cluster port (cluster/replication_wire.hpp):
// any bytes decode to a message within the bounds or are refused, what decodes encodes back to
// the same bytes, and the shard read without decoding (shard_of_message) is the message's.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/replication_wire.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto shard = shard_of_message(in);
  if (auto m = decode_append(in)) {
    if (m->entries.size() > max_append_entries || encode(*m) != in || shard != m->shard)
      std::abort();
  }
  if (auto m = decode_answer(in); m && (encode(*m) != in || shard != m->shard)) std::abort();
  if (auto m = decode_history_request(in); m && (encode(*m) != in || shard != m->shard))
    std::abort();
  if (auto m = decode_history(in)) {
    if (!leader_epochs::from(m->history) || encode(*m) != in || shard != m->shard) std::abort();
  }
  if (auto m = decode_snapshot_chunk(in)) {
    if (!valid_snapshot_file(m->file) || m->data.size() > max_snapshot_chunk || encode(*m) != in ||
        shard != m->shard)
      std::abort();
  }
  if (auto m = decode_snapshot_ack(in); m && (encode(*m) != in || shard != m->shard)) std::abort();
  return 0;
}
