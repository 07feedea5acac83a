#pragma once
// The event-sourced core of a room, free of actors and I/O so that it can be tested alone.
//
// `decide` turns a command into the events it causes (or a rejection) without changing the
// state; `apply` changes the state by one event. Recovery is `from_snapshot` followed by
// `apply` of every later event, so the state after recovery equals the state before the
// crash by construction.

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "actors/command.hpp"
#include "core/errc.hpp"
#include "core/event.hpp"

namespace kaiwa {

/// Edits a message may have; more are refused with bad_request.
constexpr std::size_t max_edits_per_message = 100;

struct rejection {
  errc code;
  std::string message;
};

class room_state {
 public:
  using decision = std::variant<rejection, std::vector<event>>;

  explicit room_state(room_id room) : room_(std::move(room)) {}

  // -- properties ---------------------------------------------------------------------------

  const room_id& room() const noexcept { return room_; }
  seq_t head() const noexcept { return head_; }
  millis_t last_ts() const noexcept { return last_ts_; }
  bool exists() const noexcept { return exists_; }
  bool is_private() const noexcept { return private_; }
  /// Read-only: history, join, read markers and search work; what would append is refused.
  /// Not an event: it is kept in the snapshot (and the meta record), which archive and
  /// unarchive write at once, so it survives restarts without changing the clients' log.
  bool archived() const noexcept { return archived_; }
  void set_archived(bool a) noexcept { archived_ = a; }
  const user_id& owner() const noexcept { return owner_; }
  const std::string& topic() const noexcept { return topic_; }
  bool is_member(const user_id& u) const { return members_.contains(u.str()); }
  const std::set<std::string>& members() const noexcept { return members_; }

  // -- commands and events ------------------------------------------------------------------

  /// The events `c` appends, with seq and ts assigned (ts never goes backwards). `referenced`
  /// is the event `c.ref` names, for edit and delete. Join and send on a missing room create
  /// it as a public room (PROTOCOL.md, Rooms and events).
  decision decide(const command& c, millis_t now, const std::optional<event>& referenced) const;

  /// Rejects a user who may not read this room (history, presence, read, typing).
  std::optional<rejection> check_read(const user_id& u) const;

  void apply(const event& e);

  // -- snapshots ----------------------------------------------------------------------------

  std::string snapshot() const;
  /// The room's metadata record (head, last ts, private, owner), which the journal keeps beside
  /// the log: written when the room is created and with each snapshot.
  std::string meta() const;
  static std::optional<room_state> from_snapshot(room_id room, std::string_view json);

 private:
  event next_event(event_type t, const user_id& from, millis_t now, seq_t offset = 1) const;

  room_id room_;
  seq_t head_ = 0;
  millis_t last_ts_ = 0;
  bool exists_ = false;
  bool private_ = false;
  bool archived_ = false;
  user_id owner_;
  std::string topic_;
  std::set<std::string> members_;
  std::set<seq_t> deleted_;  // messages deleted; edits and deletes of them are refused
};

}  // namespace kaiwa
