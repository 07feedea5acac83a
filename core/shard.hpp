#pragma once
// Virtual shards: the unit of placement in a cluster. A room belongs to one shard forever (its
// name decides it), a shard to one node at a time (the shard map decides that), and a shard's
// records are one contiguous key range in every column family, so it moves as a few SST files.

#include <cstdint>
#include <string_view>

namespace kaiwa {

using shard_t = std::uint16_t;

/// Virtual shards of a data dir unless configured otherwise.
inline constexpr std::uint32_t default_shards = 1024;
/// Shard ids are 16 bits wide in keys and on the wire.
inline constexpr std::uint32_t max_shards = 65536;

/// The shard of `room` among `shards`: FNV-1a (32-bit) of the name, the same on every node,
/// build and version (std::hash promises none of that).
constexpr shard_t shard_of(std::string_view room, std::uint32_t shards) noexcept {
  std::uint32_t h = 2166136261u;
  for (char c : room) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return static_cast<shard_t>(h % shards);
}

}  // namespace kaiwa
