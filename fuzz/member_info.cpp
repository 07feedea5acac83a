// A member key's value as read from etcd (cluster/member_info.hpp): any bytes decode to a valid
// member or are refused, and what decodes re-encodes to a document that decodes to the same
// member (what one node writes, every node reads).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/member_info.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto m = decode_member(in);
  if (!m) return 0;
  if (!valid(*m) || m->lease != 0) std::abort();
  auto again = decode_member(encode(*m));
  if (!again || again->id != m->id || again->cluster_address != m->cluster_address ||
      again->public_address != m->public_address || again->cluster != m->cluster)
    std::abort();
  return 0;
}
