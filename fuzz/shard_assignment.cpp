// A shard's replica assignment as read from etcd (cluster/shard_assignment.hpp): any bytes decode
// to a valid assignment or are refused, and what decodes re-encodes to a document that decodes to
// the same assignment.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/shard_assignment.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto a = decode_assignment(in);
  if (!a) return 0;
  if (!valid(*a)) std::abort();
  auto again = decode_assignment(encode(*a));
  if (!again || !(*again == *a)) std::abort();
  return 0;
}
