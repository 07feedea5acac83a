#pragma once
// The room layer: one actor per active room, activated on first use and passivated when idle.
//
// `rooms` owns the CAF actor system. The gateway calls `dispatch` from its I/O threads; each
// command goes to the registry actor responsible for the room (rooms are spread over several
// registries by hash), which activates the room actor if needed and forwards the command.
// The room validates it, appends its events to the journal through group commit, and, once
// they are durable, replies to the sender's link and fans the events out to its subscribers.
//
// Lifecycle: construct, start(), dispatch() from any thread, stop() (each room finishes its
// in-flight commit, then the actor system ends). The journal must outlive stop().

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/command.hpp"
#include "core/shard.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa {

/// Mutual TLS between members (CAF's OpenSSL module): every connection of the cluster port, in
/// and out, presents this node's certificate and accepts only a peer whose certificate the
/// cluster's CA signed. PEM file paths; all three or none (`kaiwa cert` makes them).
struct cluster_tls {
  /// The cluster CA's certificate. Default: none
  std::string ca_file;
  /// This node's certificate, signed by the CA. Default: none
  std::string cert_file;
  /// This node's private key (unencrypted PEM). Default: none
  std::string key_file;

  bool enabled() const noexcept {
    return !ca_file.empty() || !cert_file.empty() || !key_file.empty();
  }
};

/// Joining a cluster (docs/cluster.md). Without it the node owns every shard.
struct cluster_request;

struct cluster_config {
  /// This node's id, unique in the cluster and the same across its restarts. Default: the
  /// gateway's node id (`--node-id`, kaiwa-1)
  std::string node_id;
  /// The cluster listener (CAF's middleman). Port 0: pick one (see rooms::cluster_port). Off
  /// loopback only with `tls`. Default: 127.0.0.1:7070
  std::string host = "127.0.0.1";
  std::uint16_t port = 7070;
  /// Without it (loopback only) members speak plain BASP and anyone who can reach the port is
  /// a member. Default: none
  cluster_tls tls;
  /// host:port of members to join; empty: this node starts the cluster and coordinates it.
  /// Default: empty
  std::vector<std::string> join;
  /// etcd's client endpoints (host:port). With them the cluster's metadata lives in etcd and
  /// every shard is replicated: members register under leases, the controller is elected, and
  /// each shard's leader acks an event once its in-sync replicas hold it (docs/cluster.md
  /// "Replication and failover"); `join` is not used. Empty: the coordinator's map, one copy
  /// of each shard. Default: none
  std::vector<std::string> etcd;
  /// The etcd key prefix of this cluster's metadata. Default: /kaiwa/
  std::string etcd_prefix = "/kaiwa/";
  /// Replicas of each shard (with etcd): the controller places shards once this many members
  /// are registered. Default: 3
  std::size_t replication_factor = 3;
  /// In-sync replicas a shard needs to take writes (with etcd): an ack means the event is on
  /// that many disks. Default: 2
  std::size_t min_insync = 2;
  /// Entries of each shard's replicated log a replica keeps at most (with etcd); the log is
  /// what a follower that falls behind catches up from. Default: 100,000
  std::uint64_t log_retention_entries = 100'000;
  /// Bytes of each shard's replicated log a replica keeps at most, estimated (with etcd);
  /// whichever of the two bounds is less holds. Default: 64 MiB
  std::uint64_t log_retention_bytes = std::uint64_t{64} << 20;
  /// This node's data dir was created by this start (with etcd): it holds none of the data of
  /// replicas etcd may still name it for, so it refuses to register while etcd does.
  /// Default: set by the node
  bool fresh_data = false;
  /// This node's public listener (host:port), shown to operators in its member key.
  /// Default: set by the node
  std::string public_address;
  /// Where shard files are staged during moves. Default: <data dir>/cluster-moves
  std::string staging_dir;
  /// With etcd: where the node records which cluster its data is of (the id in etcd's
  /// `<prefix>cluster` marker), so that it knows etcd's data was lost when that marker is gone.
  /// Default: <data dir>/etcd-cluster-id
  std::string cluster_id_file;
  /// Silence after which a member counts as dead (CAF heartbeats at a fifth of it; a closed
  /// connection counts at once). Default: 5 s
  std::chrono::milliseconds failure_timeout{5000};
  /// How often a lost member is dialled again. Default: 500 ms
  std::chrono::milliseconds redial{500};
  /// This node's load as a JSON object, shown by `kaiwa cluster`. Called on the cluster
  /// actor. Default: set by the node (connections, active rooms, events appended)
  std::function<std::string()> load;
  /// Called, on the cluster actor, once the coordinator has moved every shard of this node away
  /// (a drain), with the grace the drain asked for. Default: set by the node (closes its
  /// sessions with 4010 after the grace)
  std::function<void(std::chrono::milliseconds)> drained;
  /// Answers another member's read query (its bytes) by calling `reply` once, from any thread,
  /// with this node's page (empty: none). Called on the cluster actor. Default: set by the node
  /// (the read side)
  std::function<void(std::string request, std::function<void(std::string)> reply)> answer_query;
  /// A notice another member's read side raised for `user`'s sessions (the whole frame).
  /// Called on the cluster actor. Default: set by the node (pushes it to the user's sessions)
  std::function<void(const user_id& user, const std::string& json)> on_notice;
  /// Replicated shards: the connection to member `node` closed. Called on the cluster actor.
  /// Default: set by rooms (the controller revokes that member's lease: failover starts now)
  std::function<void(const std::string& node)> member_unreachable;
  /// Replicated shards: what the node's metadata agent says (JSON: controller, term, lease),
  /// for `kaiwa cluster`. Called on the cluster actor. Default: set by rooms
  std::function<std::string()> metadata_status;
  /// Replicated shards: an admin move, drain or removal, handed to the node's metadata agent,
  /// which writes it as a request the controller carries out (docs/cluster.md "Moves, drains and
  /// removals with etcd"); `done(error)`, "" when finished, from any thread. Called on the
  /// cluster actor. Default: set by rooms
  std::function<void(const cluster_request&, std::function<void(std::string)> done)> replica_change;
  /// A shard's records were ingested here (a move in). Called on the cluster actor. Default:
  /// set by the node (the read side catches the shard's rooms up)
  std::function<void(shard_t)> ingested;
};

/// An admin question about the cluster, answered as JSON by rooms::cluster_admin.
struct cluster_request {
  enum class kind { members, shards, move, drain, remove };
  kind what = kind::members;
  shard_t shard = 0;  // move
  std::string node;   // move: the new owner; drain: the node to empty; remove: the member gone
  std::chrono::milliseconds grace{0};  // drain: then its sessions close after this
};

struct rooms_config {
  /// Write a snapshot of a room's state every this many events. Default: 1000
  std::uint64_t snapshot_every = 1000;
  /// Stop a room's actor after this long with no commands and no subscribers. Default: 60 s
  std::chrono::milliseconds idle_timeout{60'000};
  /// Registry actors that rooms are spread over. Default: 4
  std::size_t registries = 4;
  /// CAF scheduler threads; 0 means one a CPU this process may use (available_cpus()). Default: 0
  std::size_t threads = 0;
  /// A room activation (recovery) slower than this is logged with its figures. Default: 100 ms
  std::chrono::milliseconds slow_activation{100};
  /// Commands dispatched to a room and not yet taken up by it (queued in its registry's and its
  /// own mailbox) beyond which more are answered `unavailable` (CAF 0.17 mailboxes are
  /// unbounded). Counted per slot of 8,192 by the room name's hash, so rooms sharing a slot share
  /// the bound. `disconnect` and handovers are never refused. 0: no bound. Default: 10000
  std::uint32_t room_backlog = 10'000;
  /// Rooms one user may create per minute on this node (`create`, and `join`/`send` of a
  /// missing room); more are answered `rate_limited`. A token bucket of this size, refilled
  /// evenly over the minute, per user (at most 100,000 users tracked). 0: no limit. Default: 60
  std::uint32_t room_creations_per_minute = 60;
  /// Deletes a room's data (storage::journal, "deleting a room": its log, then its read
  /// models) and calls `done` once, from any thread, with whether all of it succeeded. Called
  /// on the room's actor, which serves nothing else until `done`. Unset: deletion is refused.
  /// Default: set by the node
  std::function<void(const room_id& room, std::function<void(bool ok)> done)> delete_room;
  /// Set to run as a member of a cluster.
  std::optional<cluster_config> cluster;
};

/// Counters for metrics and status; read from any thread.
struct rooms_stats {
  std::uint64_t active = 0;
  std::uint64_t activated = 0;
  std::uint64_t passivated = 0;
  std::uint64_t events_appended = 0;
  std::uint64_t deliveries = 0;       // frames handed to subscribers' sessions by fan-out
  std::uint64_t commands_queued = 0;  // dispatched, not yet taken up by their room
  std::uint64_t commands_queued_high_water = 0;  // the most ever queued at once
  std::uint64_t backlog_refused = 0;             // commands refused: their room's backlog was full
  std::uint64_t creations_refused = 0;           // room creations refused by the per-user limit
  // Cluster (zero when not clustered).
  std::uint64_t shards_owned = 0;              // shards this node serves
  std::uint64_t members_up = 0;                // members this node is connected to, itself included
  std::uint64_t map_epoch = 0;                 // epoch of this node's shard map
  std::uint64_t shards_handed_over = 0;        // moves out of this node that completed
  std::uint64_t shards_taken_over = 0;         // shards ingested from other nodes
  std::uint64_t shards_under_replicated = 0;   // led here with fewer in sync than replicas
  std::uint64_t shards_under_min_insync = 0;   // led here, too few in sync to take writes
  std::uint64_t remote_commands_sent = 0;      // commands routed to other nodes
  std::uint64_t remote_commands_received = 0;  // commands from other nodes' sessions
  // Replicated shards (with etcd), as of the last retention pass (once a second).
  std::uint64_t replicated_log_entries = 0;      // every replica's log here together
  std::uint64_t replicated_log_bytes = 0;        // their bytes, estimated
  std::uint64_t followers_behind_log_start = 0;  // of shards led here: need a snapshot
  std::uint64_t replicated_entries_trimmed = 0;  // deleted by retention, ever
  std::uint64_t snapshots_sent = 0;              // shard snapshots followers installed from here
  std::uint64_t snapshots_installed = 0;         // shard snapshots installed here from leaders
  std::uint64_t snapshots_failed = 0;            // exports, transfers or ingests that failed
  // etcd's data lost (docs/cluster.md "When etcd's data is lost"): 1 while it doesn't describe
  // this node's cluster; and the shards the controller leaves alone after a restore.
  std::uint64_t metadata_lost = 0;
  std::uint64_t shards_held = 0;
};

class rooms {
 public:
  rooms(rooms_config cfg, storage::journal& journal);
  ~rooms();

  rooms(const rooms&) = delete;
  rooms& operator=(const rooms&) = delete;

  /// Starts the actor system (and joins the cluster when configured); an error message when
  /// the cluster listener can't be bound, its TLS credentials don't load or don't fit
  /// together, or it would listen off loopback without them.
  std::optional<std::string> start();
  /// Hands `c` to its room. Thread-safe. After stop(), replies `unavailable`.
  void dispatch(command c);
  /// Stops every room actor after its in-flight commit, then the actor system. Idempotent.
  void stop();

  rooms_stats stats() const;

  /// False while a cluster member does not know the shard map yet (it can't route anything).
  bool ready() const;
  /// The cluster listener's port once started; 0 when not clustered.
  std::uint16_t cluster_port() const;
  /// Answers `r` with an HTTP status and a JSON body, from any thread, once.
  void cluster_admin(cluster_request r, std::function<void(int, std::string)> done);

  /// The shards this node serves now (every shard when not clustered). Any thread.
  std::vector<shard_t> owned_shards() const;
  /// Clustered: sends `request` (a read query's bytes) to every other member and calls `done`
  /// once, on the cluster actor, with the answers that came within `timeout` and whether a
  /// member that owns shards gave none (down, silent, or no page). Not clustered, or stopped:
  /// `done` at once, with nothing (partial when stopped). Any thread.
  void ask_members(std::string request, std::chrono::milliseconds timeout,
                   std::function<void(std::vector<std::string>, bool)> done);
  /// Clustered: hands a notice for `user` (the whole frame) to every other member that is up.
  /// Any thread.
  void broadcast_notice(const user_id& user, std::string json);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kaiwa
