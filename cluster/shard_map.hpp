#pragma once
// The cluster's placement: which node owns each virtual shard, and who the members are.
// Pure data, no threads: the coordinator changes it, every node caches and persists a copy.
//
// `epoch` grows by one on every change of an owner, so of two maps the one with the higher epoch
// is the newer; a node applies a map only if it is newer than the one it has.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/shard.hpp"

namespace kaiwa::cluster {

struct cluster_member {
  std::string id;
  std::string address;    // host:port of its cluster listener
  bool draining = false;  // being emptied: gets no shards

  friend bool operator==(const cluster_member&, const cluster_member&) = default;
};

struct shard_move {
  shard_t shard = 0;
  std::string from;
  std::string to;
};

class shard_map {
 public:
  shard_map() = default;
  /// Every shard owned by `owner`, at epoch 1: a new cluster's map.
  shard_map(std::uint32_t shards, const std::string& owner);

  std::uint64_t epoch() const noexcept { return epoch_; }
  std::uint32_t shards() const noexcept { return static_cast<std::uint32_t>(owners_.size()); }
  const std::string& owner(shard_t s) const { return owners_.at(s); }
  /// Gives `s` to `node` and bumps the epoch.
  void assign(shard_t s, const std::string& node);
  /// Bumps the epoch after a change of `members`.
  void touch() noexcept { ++epoch_; }
  /// Shards owned by `node`.
  std::uint32_t count(std::string_view node) const;

  std::vector<cluster_member> members;
  std::string coordinator;

  /// Text form for persistence and the wire; decode() returns nullopt on anything malformed.
  std::string encode() const;
  static std::optional<shard_map> decode(std::string_view text);

 private:
  std::uint64_t epoch_ = 0;
  std::vector<std::string> owners_;
};

/// The moves that even out shard counts over `nodes` (each ends with floor or ceil of
/// shards / nodes) and empty every other node, moving as few shards as possible. Deterministic.
std::vector<shard_move> plan_rebalance(const shard_map& map, const std::vector<std::string>& nodes);

}  // namespace kaiwa::cluster
