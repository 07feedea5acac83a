// Replication's messages as a node reads them from the cluster port (cluster/replication_wire.hpp):
// any bytes decode to a message within the bounds or are refused, and what decodes encodes back
// to the same bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/replication_wire.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto m = decode_append(in)) {
    if (m->entries.size() > max_append_entries || encode(*m) != in) std::abort();
  }
  if (auto m = decode_answer(in); m && encode(*m) != in) std::abort();
  if (auto m = decode_history_request(in); m && encode(*m) != in) std::abort();
  if (auto m = decode_history(in)) {
    if (!leader_epochs::from(m->history) || encode(*m) != in) std::abort();
  }
  return 0;
}
