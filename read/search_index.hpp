#pragma once
// The "search" projection: a full-text index of message text (read/text.hpp tokens) in
// RocksDB, and its query: newest first, only what the user may read now. docs/read-side.md.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "core/ids.hpp"
#include "core/shard.hpp"
#include "read/page.hpp"
#include "read/projection.hpp"
#include "read/text.hpp"
#include "storage/result.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa::read {

class room_list;

struct search_config {
  /// Work one query may do: index seeks, access checks of a room not checked yet, checks of a
  /// stored text. Past it the query returns the hits found so far (the newest ones, complete up
  /// to the last) with more=true. Default: 20,000
  std::size_t max_steps = 20'000;
};

class search_index final : public projection {
 public:
  /// `access` answers who may read a room; it must outlive this index.
  search_index(storage::journal& journal, const room_list& access, search_config cfg = {});

  /// Makes the family hold this build's layout: an index written in another layout (an older
  /// release's) is dropped with its offsets, logged, so that the projector rebuilds it when it
  /// starts. Call before the projector starts.
  storage::status check_format();

  std::string_view name() const override { return "search"; }
  storage::read_family family() const override { return storage::read_family::search; }
  storage::status apply(const event& e, std::string_view stored, storage::read_batch& batch,
                        std::vector<notice>& notices) override;
  storage::result<bool> erase_room(const room_id& room, storage::read_batch& batch,
                                   std::size_t max_ops) override;

  /// Messages matching `q` that `user` may read, in `room` only when given, from `shards` (those
  /// this node owns), newest first, sort key below `before` when given, at most `limit`. Items
  /// are the stored event ({"op":"event",...}) plus "highlight". Thread-safe.
  storage::result<page> search(const user_id& user, const query& q,
                               const std::optional<room_id>& room,
                               const std::vector<shard_t>& shards,
                               const std::optional<std::string>& before, std::size_t limit) const;

 private:
  storage::journal& journal_;
  const room_list& access_;
  search_config cfg_;
};

}  // namespace kaiwa::read
