#pragma once
// The events of a room's log (PROTOCOL.md, Rooms and events) and their one JSON encoding,
// which is at once what the journal stores and what clients receive.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.hpp"
#include "core/json.hpp"

namespace kaiwa {

enum class event_type : std::uint8_t {
  message,
  edit,
  del,  // "delete"
  created,
  member_added,
  member_removed,
  topic,
};

std::string_view to_string(event_type t) noexcept;

/// The largest `text` of a message or edit, in bytes (PROTOCOL.md, "send"): the gateway
/// answers a longer one too_large.
inline constexpr std::size_t max_text_bytes = 16384;

struct event {
  room_id room;
  seq_t seq = 0;
  millis_t ts = 0;
  event_type type = event_type::message;
  user_id from;
  std::string text;                  // message, edit
  std::string cid;                   // message (optional)
  seq_t ref = 0;                     // edit, delete
  user_id user;                      // member_added, member_removed
  std::string topic;                 // created, topic
  bool is_private = false;           // created
  std::vector<std::string> members;  // created (private rooms)
  // The stored record of a message (or edit) is rewritten in place when the message changes
  // (PROTOCOL.md extension, docs/protocol.md "Edited and deleted messages"):
  bool deleted = false;      // message, edit: redacted; `text` and `cid` are gone
  millis_t edited_ts = 0;    // message: when it was last edited (0: never); `text` is current
  std::vector<seq_t> edits;  // message: the seqs of its edit events, oldest first
};

/// The stored form of message `m` after `e` (an edit or delete of it) is appended: the current
/// text, or redacted. A delete also redacts the edit events in `m.edits`; see `redacted`.
event rewritten(event m, const event& e);

/// `e` (a message or an edit) without its text: seq, ts, type, from (and ref) stay.
event redacted(event e);

/// Writes `{"op":"event",...}` for `e`.
void encode_event(json_writer& w, const event& e);

/// Parses an event written by encode_event; nullopt if `json` is not one.
std::optional<event> decode_event(std::string_view json);

}  // namespace kaiwa
