#pragma once
// A node's agent in etcd (docs/cluster.md "Metadata in etcd"): it holds the node's lease and
// member key, follows the members, the shard assignments and the controller key by one watch,
// campaigns for the controller, and on the node that holds the controller key runs the
// controller loop (first placement, failover, new epochs for a restarted leader's shards,
// preferred leaders, and the operators' moves, drains and removals it reads from request keys,
// cluster/replica_moves.hpp). No CAF: the node's actors get what it sees through
// `metadata_events`, called on the agent's threads.
//
// Threads: etcd_client's watch thread (delivers `members`, `assignment` and `controller`, one
// update at a time, in revision order), lease_session's renewal thread, and one worker that
// makes every other etcd call (registration, campaigns, the controller's writes, propose_isr,
// revoking an unreachable member's lease), fed by a bounded queue and by coalesced flags.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/assignment_store.hpp"
#include "cluster/election.hpp"
#include "cluster/etcd_client.hpp"
#include "cluster/lease_session.hpp"
#include "cluster/member_info.hpp"
#include "cluster/result.hpp"
#include "cluster/shard_assignment.hpp"
#include "core/shard.hpp"

namespace kaiwa::cluster {

struct metadata_config {
  std::vector<endpoint> etcd;
  // keys: <prefix>members/<node>, <prefix>controller, <prefix>shards/NNNNN. Default: "/kaiwa/"
  std::string prefix = "/kaiwa/";
  std::string node;  // this node's id
  std::string cluster_address, public_address;
  std::uint32_t shards = 0;  // the cluster's shard count (every node the same)
  /// The controller places when it sees this many live members. Default: 3
  std::size_t replication_factor = 3;
  lease_config lease;  // Default: TTL 2 s, 4 renewals
  /// Per etcd call (each endpoint tried). Default: 1 s
  std::chrono::milliseconds call_timeout{1000};
  /// The cluster transport's silence before a member counts as unreachable (the node's
  /// --failure-timeout): a member reported within this long of this node's own lease ending is
  /// not revoked (member_unreachable). Default: 5 s
  std::chrono::milliseconds failure_timeout{5000};
  /// This node's data dir is new (a replaced disk, a wiped dir): start() refuses to register
  /// while any shard's assignment still names this node a replica, as its isr may name it in
  /// sync and a failover make it lead with an empty log. Default: false
  bool fresh_data = false;
  /// Where this node records the id of the cluster its data is of (cluster_marker.hpp), in its
  /// data dir: a node that finds etcd without that cluster's marker knows etcd's data was lost
  /// and places nothing over its replicas. Empty: kept in memory only. Default: empty (the node
  /// sets <data dir>/etcd-cluster-id)
  std::string cluster_id_file;
};

/// Called on the agent's threads; each must return quickly (they post into actors) and must not
/// destroy the agent. `members`, `assignment` and `controller` come one at a time, in revision
/// order (at start, before start() returns, on the thread calling it; then on the watch's, or the
/// worker's while it loads again after a compacted watch);
/// `lease_lost` on the worker, possibly while one of them runs.
struct metadata_events {
  /// The live members, whole, after each change (this node included).
  std::function<void(std::map<std::string, member_info>)> members;
  /// Every assignment at start (load), then each change by watch, in revision order. After a
  /// compacted watch the agent loads again and delivers every assignment again.
  std::function<void(shard_t, versioned_assignment)> assignment;
  /// Who controls, after each change.
  std::function<void(std::optional<controller_term>)> controller;
  /// This node's lease ended (own clock or etcd); the agent opens a new one and re-registers by
  /// itself.
  std::function<void()> lease_lost;
  /// The controller finished draining this node (request_drain): its sessions close after the
  /// grace the drain asked for. Once per drain (of this node's current session), on an agent
  /// thread.
  std::function<void(std::chrono::milliseconds grace)> drained;
};

/// How an operator's request ended: empty when it finished, else why not.
using request_done = std::function<void(std::string error)>;

class metadata_agent {
 public:
  /// Opens the lease, registers <prefix>members/<node> (JSON of member_info without lease) under
  /// it, loads members/ and shards/ (delivering them), starts the watches, campaigns for the
  /// controller. Errors (etcd unreachable, damaged metadata) as values: the node refuses to start
  /// with the message.
  static result<std::unique_ptr<metadata_agent>> start(metadata_config cfg, metadata_events ev);
  ~metadata_agent();  // stops watches/threads, resigns the controller key, revokes the lease
  metadata_agent(const metadata_agent&) = delete;
  metadata_agent& operator=(const metadata_agent&) = delete;

  /// This node's lease surely holds now (lease_session::valid): leaders ack only while it does.
  bool lease_valid() const;
  /// A leader's isr change: CAS on `expected` (the mod revision of the assignment it leads by),
  /// no controller fence. Runs on an agent thread; `done(new mod revision | nullopt on conflict
  /// or error)` from that thread (or at once, on the caller's thread, when the agent's queue is
  /// full or it is stopping).
  void propose_isr(shard_t shard, shard_assignment next, std::int64_t expected,
                   std::function<void(std::optional<std::int64_t>)> done);
  /// This node's leader of `shard` at `epoch` stepped down on a disk error and won't lead that
  /// epoch again: writes the shard's assignment with another live in-sync replica leading at
  /// epoch + 1 and this node out of the isr (plan_failover's choice, this node counted dead), by
  /// compare-and-swap on the assignment's mod revision without a controller fence, as
  /// propose_isr. Nothing is written when the agent's view no longer names this node leader at
  /// `epoch`, or when no other in-sync replica is live (logged: the shard has no leader until
  /// one is, or this node registers again, e.g. restarted on a repaired disk). The outcome is
  /// logged; runs on an agent thread.
  void resign(shard_t shard, std::uint64_t epoch);
  /// The cluster layer saw `node`'s connections close (kill -9 is seen at once): the controller
  /// revokes that member's lease so failover starts now instead of at lease expiry; any other
  /// node revokes it only if `node` is the controller (so a killed controller is replaced, and
  /// its shards failed over, at once too). Otherwise a no-op. Ignored (logged) while this node's
  /// own lease is not surely valid, or ended less than failure_timeout ago: a node cut off from
  /// the others and from etcd sees every member unreachable, and its reports, carried out once
  /// the partition heals, would revoke the healthy controller's lease (a soak round saw it:
  /// shards led by a node cut off a moment before, a subscriber left behind).
  void member_unreachable(const std::string& node);

  // -- operators' requests (docs/cluster.md "Moves, drains and removals with etcd") -----------
  // Each is a key under <prefix>requests/ that the controller carries out, whichever node holds
  // the controller key (now or after a failover): it survives the controller and the asking
  // node. `done` is called once, on an agent thread (or at once on the caller's when the
  // request is refused): when finished, refused, abandoned, or past `timeout` (a move or removal
  // past it is withdrawn and stops at the step it reached; a drain past it is withdrawn and the
  // node is no longer drained).

  /// `kaiwa move`: `shard`'s leadership to `to` (a live member), adding it as a replica first if
  /// it is not one and dropping the old leader's replica once `to` leads.
  void request_move(shard_t shard, std::string to, std::chrono::milliseconds timeout,
                    request_done done);
  /// `kaiwa drain`: leadership of every shard `node` leads to other in-sync replicas, its
  /// replicas re-created on spare nodes where the replication factor needs them; then `node`
  /// gets metadata_events::drained(grace). The drain key lives under `node`'s lease: `node` is
  /// drained (no leadership from the preferred-leader pass) until it restarts.
  void request_drain(std::string node, std::chrono::milliseconds grace,
                     std::chrono::milliseconds timeout, request_done done);
  /// `kaiwa cluster remove`: `node` (not live) is gone for good; its replicas are re-created on
  /// the least-loaded live nodes (replica_planner's plan_removal).
  void request_removal(std::string node, std::chrono::milliseconds timeout, request_done done);

  /// For the admin view: controller term, members with leases, and whether etcd still describes
  /// this cluster. {"controller":"n1"|null,"term":N,"lease":N,"lease_ttl_ms_left":N,
  /// "cluster_id":"..."|"","metadata_lost":bool,"metadata_problem":"..."|"","shards_held":[N...],
  /// "members":[{"id","cluster_address","public_address","lease","cluster"}...]}
  std::string status_json() const;

  /// etcd's data no longer describes the cluster this node's data is of (docs/cluster.md "When
  /// etcd's data is lost"): its marker is gone or another's, or etcd's revision went backwards,
  /// and no load has found the cluster again since. The controller writes nothing meanwhile.
  bool metadata_lost() const;
  /// Shards the controller leaves alone because etcd holds an older assignment of them than this
  /// node saw before etcd's data was lost (restored from an older backup), or none at all after
  /// the first placement finished.
  std::size_t shards_held() const;

  struct state;

 private:
  explicit metadata_agent(std::unique_ptr<state> s);
  std::unique_ptr<state> state_;
};

}  // namespace kaiwa::cluster
