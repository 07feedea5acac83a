// The cluster's marker as read from etcd (cluster/cluster_marker.hpp): any bytes decode to a
// marker with a valid id or are refused, and what decodes re-encodes to a document that decodes
// to the same marker (what the controller writes, every node reads).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/cluster_marker.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto m = decode_marker(in);
  if (!m) return 0;
  if (!valid_cluster_id(m->id)) std::abort();
  auto again = decode_marker(encode(*m));
  if (!again || *again != *m) std::abort();
  return 0;
}
