#pragma once
// Atoms and message types exchanged by the room layer's actors (CAF 0.17). Only the actors'
// own .cpp files include this.

#include <caf/all.hpp>

#include <atomic>

#include "actors/command.hpp"
#include "actors/creation_limiter.hpp"
#include "actors/rooms.hpp"
#include "cluster/handover.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kaiwa::command)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<kaiwa::room_subscriber>)

namespace kaiwa::detail {
/// A room stopped for a shard handover, with the subscribers it had.
struct released_room {
  std::string room;
  std::vector<room_subscriber> subscribers;
};
using released_rooms = std::vector<released_room>;
}  // namespace kaiwa::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kaiwa::detail::released_rooms)

namespace kaiwa::storage {
class journal;
}

namespace kaiwa::detail {

using committed_atom = caf::atom_constant<caf::atom("committed")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using presence_atom = caf::atom_constant<caf::atom("presence")>;
using subs_atom = caf::atom_constant<caf::atom("subs")>;
using deleted_atom = caf::atom_constant<caf::atom("deleted")>;

using cluster::shard_status;

/// What every room actor of a node shares. Owned by `rooms`, outlives all room actors.
struct room_env {
  room_env(storage::journal& j, rooms_config c);

  storage::journal& journal;
  rooms_config cfg;
  std::uint32_t shards;
  std::unique_ptr<std::atomic<shard_status>[]> shard_states;  // one per shard

  shard_t shard(const room_id& room) const noexcept { return shard_of(room.str(), shards); }
  shard_status status(shard_t s) const noexcept {
    return shard_states[s].load(std::memory_order_acquire);
  }
  void set_status(shard_t s, shard_status st) noexcept {
    shard_states[s].store(st, std::memory_order_release);
  }

  std::atomic<std::uint64_t> active{0};
  std::atomic<std::uint64_t> activated{0};
  std::atomic<std::uint64_t> passivated{0};
  std::atomic<std::uint64_t> events_appended{0};
  // Written by the cluster actor (see rooms_stats).
  std::atomic<std::uint64_t> shards_owned{0};
  std::atomic<std::uint64_t> members_up{0};
  std::atomic<std::uint64_t> map_epoch{0};
  std::atomic<std::uint64_t> shards_handed_over{0};
  std::atomic<std::uint64_t> shards_taken_over{0};
  std::atomic<std::uint64_t> shards_under_replicated{0};  // led here, isr < replicas
  std::atomic<std::uint64_t> shards_under_min_insync{0};  // led here, isr < min_insync
  std::atomic<std::uint64_t> remote_commands_sent{0};
  std::atomic<std::uint64_t> remote_commands_received{0};
  std::atomic<std::uint64_t> deliveries{0};
  // -- backlog ------------------------------------------------------------------------------
  // A command enters the room layer with command_queued (rooms::dispatch, or the cluster actor
  // for other nodes' sessions and handovers) and leaves it with command_taken, when its room
  // takes it up or a registry or the cluster actor answers it instead. Counted twice: the node's
  // total (`queued`, a metric; CAF 0.17's own mailbox size() is not safe to call under UBSan)
  // and the room's slot (`backlog`, bounded by cfg.room_backlog).
  static constexpr std::size_t backlog_slots = 8192;
  static std::size_t backlog_slot(std::size_t room_hash) noexcept {
    return room_hash % backlog_slots;
  }
  static std::size_t backlog_slot(const room_id& room) noexcept {
    return backlog_slot(std::hash<room_id>{}(room));
  }
  std::unique_ptr<std::atomic<std::uint32_t>[]> backlog;  // backlog_slots of them
  std::atomic<std::uint64_t> backlog_refused{0};
  std::atomic<std::int64_t> queued{0};
  std::atomic<std::int64_t> queued_high_water{0};

  /// Counts a command for the room of `slot` in; false (and nothing counted) when its slot is
  /// full and `op` may be refused: the caller answers `unavailable`. A disconnect (the end of a
  /// session's subscription) and an adoption (subscribers of a handed-over shard) never are.
  [[nodiscard]] bool command_queued(std::size_t slot, room_op op) noexcept {
    auto before = backlog[slot].fetch_add(1, std::memory_order_relaxed);
    if (cfg.room_backlog != 0 && before >= cfg.room_backlog && op != room_op::disconnect &&
        op != room_op::adopt) {
      backlog[slot].fetch_sub(1, std::memory_order_relaxed);
      backlog_refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    auto depth = queued.fetch_add(1, std::memory_order_relaxed) + 1;
    auto cur = queued_high_water.load(std::memory_order_relaxed);
    while (depth > cur &&
           !queued_high_water.compare_exchange_weak(cur, depth, std::memory_order_relaxed)) {
    }
    return true;
  }
  void command_taken(std::size_t slot) noexcept {
    backlog[slot].fetch_sub(1, std::memory_order_relaxed);
    queued.fetch_sub(1, std::memory_order_relaxed);
  }

  /// The node's replication actor when shards are replicated (cluster_config::etcd): rooms
  /// commit through it. Null otherwise: rooms commit to the journal.
  caf::actor replication;

  // -- room creations -----------------------------------------------------------------------
  creation_limiter creations;
  std::atomic<std::uint64_t> creations_refused{0};
};

/// Spawns the actor of `room`; `registry` is told when it is idle.
caf::actor spawn_room(caf::actor_system& sys, room_id room, room_env& env, caf::actor registry);

/// Spawns a registry actor.
caf::actor spawn_registry(caf::actor_system& sys, room_env& env);

}  // namespace kaiwa::detail
