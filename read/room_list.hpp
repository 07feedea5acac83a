#pragma once
// The "rooms" projection: per user, the rooms they are in (member, author, or reader: read
// markers come from the journal), with head, unread count, topic and last message; the public
// room directory; and who may read a room now (search's access check). docs/read-side.md.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
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
  // -- limits (docs/read-side.md) --------------------------------------------------------------

  /// `member_added` pushes `invited` to the invitee only when applied within this of its ts.
  static constexpr millis_t invite_notice_ms = 60'000;
  /// A public room's directory key moves when its activity is this much newer than the key's
  /// ts: the directory's order (and its "ts") is exact to this, and a busy room rewrites its
  /// key at most about once per this period, not on every message.
  static constexpr millis_t directory_granularity_ms = 1'000;
  /// When the room's last message is deleted, "last" becomes the newest message not deleted
  /// among this many events before it (else null).
  static constexpr seq_t last_lookback = 100;
  /// `unread` counts over at most this many live messages after the marker; when more follow,
  /// the item has "unread_capped":true and `unread` is a lower bound.
  static constexpr std::size_t unread_scan_limit = 10'000;
  /// Rooms of a user (index entries plus read markers) one `rooms` query considers, per node.
  static constexpr std::size_t rooms_scan_limit = 20'000;
  /// Rooms whose name starts with a non-empty directory prefix one query examines, per node.
  static constexpr std::size_t directory_scan_limit = 10'000;

  explicit room_list(storage::journal& journal);

  std::string_view name() const override { return "rooms"; }
  storage::read_family family() const override { return storage::read_family::rooms; }
  storage::status apply(const event& e, std::string_view stored, storage::read_batch& batch,
                        std::vector<notice>& notices) override;
  storage::result<bool> erase_room(const room_id& room, storage::read_batch& batch,
                                   std::size_t max_ops) override;

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
  /// False for a room the projection doesn't know. For a private room, membership changes in
  /// the log the projection has not applied yet count (a kick hides the room at once).
  storage::result<bool> may_read(const user_id& user, const room_id& room) const;

  // -- the admin API's listings (docs/operations.md) -------------------------------------------

  /// Members counted per room in `list_rooms`; a room with more shows this many.
  static constexpr std::uint64_t members_count_limit = 100'000;
  struct room_row {
    shard_t shard = 0;
    std::string room;
    seq_t head = 0;
    millis_t ts = 0;  // the last event's: the room's last activity
    bool is_private = false;
    std::string owner;
    std::string topic;
    std::uint64_t members = 0;
  };
  /// The rooms of `shards`, in shard then name order, after (`shard`, `room`) when given, at
  /// most `limit`.
  storage::result<std::vector<room_row>> list_rooms(
      std::vector<shard_t> shards, const std::optional<std::pair<shard_t, std::string>>& after,
      std::size_t limit) const;
  struct user_row {
    std::string user;
    std::uint64_t rooms = 0;  // rooms of `shards` they were made a member of or posted in
  };
  /// The users of `shards` (their room list entries, merged across shards), by name, after
  /// `after` when given, at most `limit`.
  storage::result<std::vector<user_row>> list_users(const std::vector<shard_t>& shards,
                                                    const std::optional<std::string>& after,
                                                    std::size_t limit) const;

 private:
  storage::journal& journal_;
};

}  // namespace kaiwa::read
