#pragma once
// What the controller decides about shards' replicas, as pure functions of the assignments and
// the live members (docs/cluster.md "Replication and failover"): the first placement, failover
// when leaders die, leadership back to the preferred replica once it is in sync again, and
// replicas re-created elsewhere when a member is removed for good. Deterministic: the same
// input gives the same plan on any node, so a new controller continues where the last stopped.
//
// Each plan is the new assignment of the shards it changes; the controller writes each with
// assignment_store::update (a compare-and-swap under its term) and re-plans on a conflict.
// A plan never makes an assignment that breaks shard_assignment's invariants, and never
// promotes a replica that is not in sync: a shard whose in-sync replicas are all down stays
// without a live leader (its rooms answer `unavailable`) rather than lose acked events (Kafka's
// unclean.leader.election=false).

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cluster/shard_assignment.hpp"
#include "core/shard.hpp"

namespace kaiwa::cluster {

using assignments = std::map<shard_t, shard_assignment>;
using node_set = std::set<std::string>;

/// Every shard of `shards` on `replication_factor` of `nodes` (all of them if fewer), all in
/// sync, at epoch 1. Replica lists rotate over the nodes so each node holds about as many
/// replicas as any other and leads about shards / nodes; the first replica leads (the
/// preferred leader). `nodes` must be valid node ids; empty `nodes` gives no shards.
assignments plan_initial(std::uint32_t shards, const std::vector<std::string>& nodes,
                         std::size_t replication_factor);

struct failover_plan {
  assignments changes;            // new leader, epoch + 1, isr without the dead
  std::vector<shard_t> stranded;  // leader dead and no in-sync replica alive: left as they are
};

/// For each shard whose leader is not in `live`: the in-sync replica that is alive and leads the
/// fewest shards (ties: the earlier in the replica list) becomes leader at epoch + 1, and the
/// isr keeps only live members. Shards whose leader lives are left to their leader (it shrinks
/// its own isr when a follower falls behind).
failover_plan plan_failover(const assignments& current, const node_set& live);

/// Leadership back to each shard's first replica (its preferred leader) where that replica is
/// live and in sync and the current leader is live too (a dead leader is plan_failover's), at
/// epoch + 1: after a node returns and catches up, the leaders spread as plan_initial placed
/// them. At most `max_changes` shards, in shard order (leadership moves pause each shard's
/// writes briefly; the controller spreads them out).
assignments plan_preferred_leaders(const assignments& current, const node_set& live,
                                   std::size_t max_changes);

/// For each shard of `which` (shards whose leader's process restarted: it does not lead an
/// epoch it led before, so without a new epoch the shard has no working leader): the live
/// in-sync replica other than the leader that leads the fewest shards, else the same leader, at
/// epoch + 1, the isr keeping only live members (the restarted leader, live, stays in: its log is
/// what it was; plan_preferred_leaders moves the leadership back once it is preferred). Shards of
/// `which` whose leader is not live are plan_failover's and left out.
assignments plan_restarted(const assignments& current, const std::set<shard_t>& which,
                           const node_set& live);

/// For each shard with `removed` among its replicas: `removed` gives way to the live node that
/// holds the fewest replicas and is not yet one of the shard's (ties: by id), added out of sync
/// (it catches up, then its leader adds it to the isr). A shard `removed` leads gets a new leader
/// as in plan_failover first (epoch + 1), and is stranded if none is in sync. Shards left with
/// fewer replicas when no live node is free keep the ones they have.
failover_plan plan_removal(const assignments& current, const std::string& removed,
                           const node_set& live);

}  // namespace kaiwa::cluster
