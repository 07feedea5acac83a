#pragma once
// The "rooms" projection: per user, the rooms they are in (member, author, or reader: read
// markers come from the journal), with head, unread count, topic and last message; the public
// room directory; and who may read a room now (search's access check). docs/read-side.md.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.hpp"
#include "core/shard.hpp"
#include "read/page.hpp"
#include "read/projection.hpp"
#include "storage/result.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa::read {

class room_list final : public projection {
 public:
  explicit room_list(storage::journal& journal);

  std::string_view name() const override { return "rooms"; }
  storage::read_family family() const override { return storage::read_family::rooms; }
  storage::status apply(const event& e, storage::read_batch& batch,
                        std::vector<notice>& notices) override;

  // Queries read only `shards` (those this node owns), return items newest first with a sort
  // key below `before` when given (read/page.hpp), at most `limit`. Thread-safe.

  /// `user`'s rooms: items {"room","head","read","unread","topic","private","last","ts"}.
  storage::result<page> rooms(const user_id& user, const std::vector<shard_t>& shards,
                              const std::optional<std::string>& before, std::size_t limit) const;
  /// Public rooms whose name starts with `prefix`: items {"room","head","topic","ts"}.
  storage::result<page> directory(std::string_view prefix, const std::vector<shard_t>& shards,
                                  const std::optional<std::string>& before,
                                  std::size_t limit) const;
  /// Whether `user` may read `room` now: a public room, or a private one they are a member of.
  /// False for a room the projection doesn't know.
  storage::result<bool> may_read(const user_id& user, const room_id& room) const;

 private:
  storage::journal& journal_;
};

}  // namespace kaiwa::read
