// An operator's request key as read from etcd (cluster/replica_moves.hpp: a move's and a drain's
// values): any bytes decode to a valid request or are refused, and what decodes re-encodes to a
// document that decodes to the same request (what one node writes, the controller reads).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cluster/replica_moves.hpp"
#include "core/ids.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto m = decode_move(in)) {
    if (!kaiwa::valid_name(m->to) || (!m->from.empty() && !kaiwa::valid_name(m->from)))
      std::abort();
    if (decode_move(encode(*m)) != m) std::abort();
  }
  if (auto d = decode_drain(in)) {
    if (d->grace.count() < 0 || d->grace > std::chrono::hours(1)) std::abort();
    if (decode_drain(encode(*d)) != d) std::abort();
  }
  return 0;
}
