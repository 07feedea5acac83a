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

class search_index final : public projection {
 public:
  /// `access` answers who may read a room; it must outlive this index.
  search_index(storage::journal& journal, const room_list& access);

  std::string_view name() const override { return "search"; }
  storage::read_family family() const override { return storage::read_family::search; }
  storage::status apply(const event& e, storage::read_batch& batch,
                        std::vector<notice>& notices) override;

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
};

}  // namespace kaiwa::read
