#pragma once
// The projector: the one thread that feeds every projection (read/projection.hpp) the events
// of the log, per room in seq order, exactly once (docs/read-side.md, "Projections").
//
// The journal tells it, after each group commit, which rooms got events up to which seq
// (journal::on_appended, on the writer thread: one lock per commit). It keeps those rooms in a
// dirty map (room -> highest seq noted, when first noted), bounded by the rooms that exist,
// and its thread takes them oldest first: it reads each projection's offset for the room
// (`shard 0x00 room` -> be64 seq, in the projection's family), reads the events after it
// (chunks of at most `chunk`), applies them, and writes data and new offsets in one batch
// together with other rooms' (bounded by `batch_ops` and `batch_bytes`). A crash loses a
// batch, data and offsets together, and the events are applied again from the log.
//
// At start, and for each shard moved in (`catch_up_shard`), it walks the rooms on disk and
// marks those whose last seq is past an offset: until the start's walk is done and applied, a
// projection is `catching_up`. `rebuild` drops one projection's family and applies every room
// from seq 0 (`rebuilding`); queries of a projection that is not `live` answer `unavailable`
// (read_side). Notices (e.g. `invited`) go out after their batch committed, never from a
// rebuild or a catch-up's old events (older than `notice_max_age` when applied).
//
// Errors (a failed read, a failed write, a projection's error): logged, the rooms stay dirty,
// and the thread waits `retry` (doubling up to `max_retry`) before it tries again.
//
// Lifecycle: construct (registers with the journal), start(), stop() before the journal stops.
// Every public member is thread-safe.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.hpp"
#include "core/shard.hpp"
#include "read/projection.hpp"
#include "storage/result.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa::read {

struct projector_config {
  /// Events read from the log per room per step. Default: 256
  std::size_t chunk = 256;
  /// A batch of several rooms is written once it holds this many operations... Default: 512
  /// (The journal's writer writes a batch between two group commits, journal::write_reads:
  /// bigger batches made the acks wait, 4,096 ops and 4 MiB cost a quarter of the throughput
  /// at saturation; docs/read-side.md.)
  std::size_t batch_ops = 512;
  /// ...or this many bytes. Default: 512 KiB
  std::size_t batch_bytes = 512 << 10;
  /// Rooms read per page when walking the rooms on disk (catch-up, rebuild). Default: 1024
  std::size_t walk_page = 1024;
  /// Wait after a failure before trying again; doubles up to `max_retry`. Default: 200 ms, 10 s
  std::chrono::milliseconds retry{200};
  std::chrono::milliseconds max_retry{10'000};
  /// The projector thread runs under SCHED_IDLE (Linux, per thread), so that the write path
  /// gets the CPU first: any of the node's threads that wakes preempts it. Default: true
  bool idle_priority = true;
  /// Notices of events older than this when applied are dropped (a catch-up after a long
  /// downtime doesn't replay old invitations). Default: 60 s
  std::chrono::milliseconds notice_max_age{60'000};
};

enum class projection_state : std::uint8_t { catching_up, live, rebuilding };
std::string_view to_string(projection_state s) noexcept;

/// One projection's figures, for metrics and the admin API.
struct projection_stats {
  std::string name;
  projection_state state = projection_state::catching_up;
  /// While catching up or rebuilding, 0 to 1: events applied of those to apply in the rooms
  /// walked so far, times the share of the rooms walked (1 when live).
  double progress = 1;
  /// Of the catch-up (at start) or the rebuild: rooms walked and rooms done, and the events
  /// they had to apply and have applied.
  std::uint64_t rooms_done = 0;
  std::uint64_t rooms_total = 0;
  std::uint64_t events_done = 0;
  std::uint64_t events_total = 0;
  /// Events noted and not yet applied. A room noted since its last apply counts at least one
  /// until the thread has read its offset (then exactly).
  std::uint64_t pending = 0;
  /// Age of the oldest note not yet applied; 0 when nothing is pending. O(1): queries ask it.
  double lag_seconds = 0;
  /// Events applied since the node started.
  std::uint64_t applied = 0;
};

/// Erases `room`'s records and offsets from `projections` (after flushing the read families), in
/// durable batches of about `batch_ops` operations: what forget_room runs on the projector's
/// thread, and what the read side runs itself when no projector does (projections off).
storage::status erase_room(storage::journal& journal, const std::vector<projection*>& projections,
                           const room_id& room, std::size_t batch_ops);

class projector {
 public:
  /// Gets the notices of one committed batch, on the projector's thread.
  using notice_sink = std::function<void(std::vector<notice>)>;

  /// `projections` must outlive the projector; their names and families are distinct.
  projector(storage::journal& journal, std::vector<projection*> projections, projector_config cfg,
            notice_sink notices);
  ~projector();

  projector(const projector&) = delete;
  projector& operator=(const projector&) = delete;

  /// Starts the thread; it begins with the catch-up walk.
  void start();
  /// Ends the thread after the batch in progress. Idempotent.
  void stop();

  /// Marks the rooms of `shard` for catch-up (a shard ingested from another node).
  void catch_up_shard(shard_t shard);
  /// Erases `room`'s records from every projection, offsets included (the room was deleted),
  /// on the projector's thread after the batch in progress, in durable batches; then `done`
  /// runs there (at once with an error when the projector is stopped). Events of the room the
  /// log holds by then (it was created again) are applied again from the start.
  void forget_room(const room_id& room, std::function<void(storage::status)> done);
  /// Drops projection `name` and rebuilds it from the log. An error message when there is no
  /// such projection or it is rebuilding already.
  std::optional<std::string> rebuild(std::string_view name);

  /// nullopt for an unknown name.
  std::optional<projection_state> state(std::string_view name) const;
  std::vector<projection_stats> stats() const;

  /// Waits until no room is pending for any projection and all are live, or `limit` passed;
  /// true when they are. For tests and benchmarks.
  bool wait_idle(std::chrono::milliseconds limit) const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;  // shared with the journal's callback, which may outlive us
};

}  // namespace kaiwa::read
