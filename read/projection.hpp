#pragma once
// A projection: a read model kept up to date from the event log (CQRS, docs/read-side.md).
//
// The projector (read/projector.hpp) feeds each projection every room's events in seq order,
// exactly once: it keeps the projection's offset per room (`shard 0x00 room` in the
// projection's family) and writes it in the same batch as what `apply` wrote. A projection
// therefore needs no idempotence of its own, but `apply` must write nothing outside the batch.

#include <string>
#include <string_view>
#include <vector>

#include "core/event.hpp"
#include "core/ids.hpp"
#include "storage/read_store.hpp"

namespace kaiwa::read {

/// A push to a user's live sessions that an applied event calls for (e.g. `invited`), sent
/// after the batch committed, and never while a projection is rebuilt.
struct notice {
  user_id user;
  std::string json;  // the whole frame, e.g. {"op":"invited",...}
};

class projection {
 public:
  virtual ~projection() = default;
  /// Its name in `kaiwa projections`, `kaiwa rebuild NAME` and metrics: "rooms", "search".
  virtual std::string_view name() const = 0;
  /// The column family holding all of its data (and its offsets).
  virtual storage::read_family family() const = 0;
  /// Applies `e`, the next event of its room after the offset. `e` is the stored record: a
  /// message that was later edited or deleted arrives in its current form (its edit and delete
  /// events follow it). `stored` is its JSON as the log holds it (what clients receive): a
  /// projection that keeps the event keeps these bytes, not a re-encoding. Reads go through
  /// `batch` (they see its writes). An error leaves the batch to be dropped and the events
  /// applied again later.
  virtual storage::status apply(const event& e, std::string_view stored, storage::read_batch& batch,
                                std::vector<notice>& notices) = 0;
  /// Deletes `room`'s records (not its offset: the projector's) into `batch`, stopping once
  /// the batch holds about `max_ops` operations; true when nothing of the room is left after
  /// it. Reads see committed data only, so the caller writes the batch and calls again until
  /// true. For a deleted room, whose log is gone already.
  virtual storage::result<bool> erase_room(const room_id& room, storage::read_batch& batch,
                                           std::size_t max_ops) = 0;
};

}  // namespace kaiwa::read
