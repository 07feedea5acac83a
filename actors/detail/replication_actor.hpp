#pragma once
// The replication actor: one per node, owning a cluster::shard_replica for each shard the node
// holds a replica of (leading or following as the shard's assignment in etcd says), over the
// shard's replicated log in the node's journal (cluster/journal_store). docs/cluster.md
// "Replication and failover" is the protocol; this actor is its glue: it turns assignments,
// peers' messages, rooms' writes and a 50 ms tick into calls on the replicas, posts the
// journal's completions back to its own mailbox (so every replica runs on one thread), and
// writes the isr changes its leaders propose through `hooks.propose_isr`.
//
// Spawned detached (a thread of its own): its replicas read the log from RocksDB in their
// handlers, which must not hold up the scheduler's workers. Only the node's glue (rooms.cpp)
// and the tests include this.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include "cluster/shard_replica.hpp"
#include "core/shard.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa::detail {

/// (assign_atom, shard_t, std::string assignment_json, std::int64_t mod_revision): the shard's
/// assignment as etcd holds it (cluster::encode), with the key's mod revision. Delivered in
/// revision order; one no newer than the last applied for the shard is ignored.
using assign_atom = caf::atom_constant<caf::atom("rassign")>;
/// (replicate_atom, shard_t, std::string payload) -> std::int32_t code: a room's write
/// (journal::replica_payload) through the shard's leader. The code is replicate_acked, or
/// 1 + cluster::replicate_error (replicate_code).
using replicate_atom = caf::atom_constant<caf::atom("rrepl")>;
/// (peer_msg_atom, std::string from_node, std::string bytes): a cluster::replication_wire
/// message from `from_node`'s replication actor.
using peer_msg_atom = caf::atom_constant<caf::atom("rpeer")>;
/// (replication_status_atom) -> std::string: the replicas of this node as JSON, for the admin
/// view and tests: `[{"shard":N,"epoch":E,"leader":"..","leading":B,"serving":B,"log_end":N,
/// "applied":N,"high_watermark":N,"isr":[..],"revision":R},...]` by shard, one per shard this
/// node holds a replica of.
/// (peer_down_atom, node) / (peer_up_atom, node): the cluster layer lost / regained its
/// connection to `node`. Leaders drop an unreachable follower from the isr at their next tick
/// rather than after max_lag, and a new leader doesn't count one as caught up.
using peer_down_atom = caf::atom_constant<caf::atom("rpeerdown")>;
using peer_up_atom = caf::atom_constant<caf::atom("rpeerup")>;
using replication_status_atom = caf::atom_constant<caf::atom("rstatus")>;

/// replicate's reply when the write is acked: durable on every in-sync replica (at least
/// min_insync of them) and applied to this node's records.
inline constexpr std::int32_t replicate_acked = 0;
/// replicate's reply when the write was not acked. not_leader: this node doesn't lead the shard,
/// or its lease is not surely valid. not_enough_in_sync: fewer than min_insync in sync, or
/// max_pending_replicates writes of the shard already wait for their ack. deposed: a newer
/// leader exists, or the lease lapsed before the ack (the write may or may not survive).
/// storage: this node's disk failed.
constexpr std::int32_t replicate_code(cluster::replicate_error e) {
  return 1 + static_cast<std::int32_t>(e);
}
/// Writes of one shard waiting for their ack at most; more are refused (not_enough_in_sync):
/// the room actors hold their clients' commands meanwhile. Default: 4,096
inline constexpr std::size_t max_pending_replicates = 4096;

/// How much of each shard's replicated log every replica keeps (its records are the shard's
/// data; the log is what followers catch up from): at most the last `max_entries` entries and
/// about `max_bytes` (RocksDB's estimate), whichever is less, trimmed once a second when the
/// log is a sixteenth past the bound. Never an entry not applied here, nor, on a leader, one an
/// in-sync follower has yet to fetch; a follower that falls further behind can't catch up from
/// the log (docs/cluster.md "Retention").
struct log_retention {
  /// Default: 100,000
  std::uint64_t max_entries = 100'000;
  /// Default: 64 MiB
  std::uint64_t max_bytes = std::uint64_t{64} << 20;
};

/// How the actor reaches the rest of the node; all five must be set.
struct replication_hooks {
  /// Sends `bytes` to `node`'s replication actor (the lead routes via cluster actors); called
  /// on the replication actor.
  std::function<void(const std::string& node, std::string bytes)> send;
  /// A leader's isr change: the shard's assignment `next` (same epoch, leader and replicas, a
  /// new isr) written by compare-and-swap on `expected`, the mod revision of the assignment it
  /// leads by. `done(new mod revision | nullopt on conflict or error)` from any thread.
  std::function<void(shard_t, cluster::shard_assignment next, std::int64_t expected,
                     std::function<void(std::optional<std::int64_t>)> done)>
      propose_isr;
  /// This node's lease surely holds now. False: lead nothing, ack nothing (a leader steps down
  /// and leads again at its epoch once the lease holds, if the assignment still names it).
  std::function<bool()> lease_valid;
  /// Called on the replication actor: this node now serves the shard (leads it, and applied its
  /// log up to where it ended at the promotion, so its records hold every event acked before)
  /// / stops serving it (stepped down, deposed, no longer a replica, or the actor stopped).
  std::function<void(shard_t, bool serving)> serving;
  /// Called on the replication actor: this node's leader of the shard at `epoch` stepped down
  /// because its disk failed (an append or an apply) while the assignment still names it: it
  /// won't lead that epoch again, so the shard needs another leader (the metadata agent's
  /// `resign`). Called again every second while the assignment still names it at that epoch.
  std::function<void(shard_t, cluster::epoch_t epoch)> resign;
};

/// Counters of the node's replication, updated by the actor and read from any thread (the
/// metrics endpoint). Monotonic.
struct replication_metrics {
  std::atomic<std::uint64_t> appends_sent{0};       // append messages sent to followers
  std::atomic<std::uint64_t> append_bytes_sent{0};  // their bytes
  std::atomic<std::uint64_t> messages_received{0};  // replication messages from peers
  std::atomic<std::uint64_t> bytes_received{0};     // their bytes
  std::atomic<std::uint64_t> unknown_shard{0};      // messages for a shard held here by no replica
  std::atomic<std::uint64_t> writes_acked{0};       // replicate answered replicate_acked
  std::atomic<std::uint64_t> writes_failed{0};      // replicate answered anything else
  std::atomic<std::uint64_t> writes_refused_full{0};   // of those: max_pending_replicates reached
  std::atomic<std::uint64_t> isr_shrinks{0};           // isr changes written that dropped a member
  std::atomic<std::uint64_t> isr_expands{0};           // isr changes written that added one
  std::atomic<std::uint64_t> isr_proposals_failed{0};  // compare-and-swaps lost or failed
  std::atomic<std::uint64_t> lease_step_downs{0};      // leaders stepped down for their lease
  std::atomic<std::uint64_t> storage_resigns{0};       // leaders resigned on a disk error
  std::atomic<std::uint64_t> invalid_assignments{0};   // refused: not JSON of a valid assignment
  std::atomic<std::uint64_t> log_trims{0};             // retention's range deletions
  std::atomic<std::uint64_t> entries_trimmed{0};       // entries they deleted
  // Gauges, as of the last retention pass (once a second): every replica's log together, and
  // followers that leaders here can't catch up from the log (behind its start).
  std::atomic<std::uint64_t> log_entries{0};
  std::atomic<std::uint64_t> log_bytes{0};
  std::atomic<std::uint64_t> followers_behind_log_start{0};
  std::atomic<std::uint64_t> snapshots_sent{0};       // to followers, installed by them
  std::atomic<std::uint64_t> snapshot_bytes_sent{0};  // their chunks' bytes, resends included
  std::atomic<std::uint64_t> snapshots_installed{0};  // received and ingested here
  std::atomic<std::uint64_t> snapshots_failed{0};     // exports, transfers or ingests that failed
};

/// Snapshots a node sends at once (each an export of one shard on disk). Default: 2
inline constexpr std::size_t max_snapshots_sending = 2;

/// `self` is this node's id. `staging_dir`: where snapshots of shards are exported and received
/// (a directory of their own under it per snapshot). `journal` must outlive the actor: the node
/// ends it (an exit message; its pending writes are answered not_leader and its shards reported not
/// served) and waits for it before the journal stops, since it reads the journal in its handlers.
/// `metrics` (optional) is shared with whoever renders them.
caf::actor spawn_replication(caf::actor_system& sys, storage::journal& journal, std::string self,
                             cluster::in_sync_config cfg, replication_hooks hooks,
                             std::string staging_dir,
                             std::shared_ptr<replication_metrics> metrics = nullptr,
                             log_retention retention = {});

}  // namespace kaiwa::detail
