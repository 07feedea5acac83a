#pragma once
// What the admin API shows of the cluster (docs/operations.md): GET /admin/v1/cluster and
// /admin/v1/cluster/shards, as JSON. The cluster actor gathers the figures; these only write.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/controller.hpp"
#include "cluster/members.hpp"
#include "cluster/shard_assignment.hpp"
#include "cluster/shard_map.hpp"

namespace kaiwa::cluster {

/// The members as `self` sees them: the map's epoch and coordinator, the coordinator's moves
/// (`moves`: this node's controller, idle unless it coordinates), and per member its address,
/// state (up, draining, down), shard count and, when it reported one, its load (raw JSON).
/// With replicated shards, `etcd` (raw JSON, empty: none) is what the node's metadata agent
/// says: the controller, its term, this node's lease.
std::string members_view(const shard_map& map, const std::string& self, std::uint32_t shards,
                         const controller& moves, const is_up& up,
                         const std::map<std::string, std::string>& loads,
                         const std::string& etcd = {});

/// The owner of each shard; a shard `self` is handing away (`releasing`) says "moving". With
/// replicated shards the owner is the leader, and `assigned` (one per shard, empty when not
/// replicated) adds each shard's epoch, replicas and in-sync replicas.
std::string shards_view(const shard_map& map, const std::string& self, std::uint32_t shards,
                        const std::function<bool(shard_t)>& releasing,
                        const std::vector<std::optional<shard_assignment>>& assigned = {});

}  // namespace kaiwa::cluster
