// The cluster wire decoder: everything kaiwa decodes from a peer's messages itself (CAF decodes
// the message envelope): a routed command, the link ids of a push, the subscribers that come
// with a handed-over shard, and the shard map. The first byte picks the decoder, the rest is
// its input. Each must refuse junk without crashing or allocating by a declared size, and what
// it accepts must encode back to bytes it decodes to the same thing.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "actors/detail/wire.hpp"
#include "cluster/shard_map.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void command_round_trip(std::string_view in) {
  auto c = kaiwa::detail::decode_command(in);
  if (!c) return;
  // Not byte-exact (any nonzero is_private reads as true), but stable after one pass.
  auto once = kaiwa::detail::encode_command(*c);
  auto again = kaiwa::detail::decode_command(once);
  check(again && kaiwa::detail::encode_command(*again) == once);
}

void link_ids_round_trip(std::string_view in) {
  auto ids = kaiwa::detail::decode_link_ids(in);
  if (!ids) return;
  check(ids->size() * 8 == in.size() && kaiwa::detail::encode_link_ids(*ids) == in);
}

void handover_round_trip(std::string_view in) {
  auto rooms = kaiwa::detail::decode_handover(in);
  if (!rooms) return;
  check(kaiwa::detail::encode_handover(*rooms) == in);
}

void shard_map_round_trip(std::string_view in) {
  auto m = kaiwa::cluster::shard_map::decode(in);
  if (!m) return;
  check(m->shards() > 0 && m->shards() <= kaiwa::max_shards);
  auto once = m->encode();
  auto again = kaiwa::cluster::shard_map::decode(once);
  check(again && again->encode() == once && again->epoch() == m->epoch());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0:
      command_round_trip(in);
      break;
    case 1:
      link_ids_round_trip(in);
      break;
    case 2:
      handover_round_trip(in);
      break;
    case 3:
      shard_map_round_trip(in);
      break;
  }
  return 0;
}
