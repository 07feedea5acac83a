#pragma once
// A client request addressed to a room, as the gateway hands it to the room layer. The gateway
// has already checked shapes (names, lengths, types); the room checks meaning (membership,
// ownership, existence).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/client_link.hpp"
#include "core/ids.hpp"

namespace kaiwa {

enum class room_op : std::uint8_t {
  join,
  leave,
  send,
  edit,
  del,
  history,
  create,
  invite,
  kick,
  typing,
  read,
  presence,
  disconnect,  // the link closed: drop its subscription without a reply
  info,        // admin: the room's state, for /admin/v1/rooms/{room}
  snapshot,    // admin: write a snapshot now
  adopt,       // cluster: subscribers handed over with the room's shard (never crosses nodes)
  set_topic,   // the owner changes the topic. Ops cross nodes by number: new ones go last.
  destroy,     // admin: delete the room, its log and its read models (rooms_config::delete_room)
  archive,     // admin: make the room read-only
  unarchive,   // admin: make it writable again
};

struct room_subscriber {
  std::shared_ptr<client_link> link;
  user_id user;
};

struct command {
  room_op op = room_op::send;
  room_id room;
  user_id user;                       // who asks (authenticated by the gateway)
  std::string id;                     // the request's id as raw JSON; empty when none
  std::shared_ptr<client_link> link;  // where replies go

  std::string text;                      // send, edit
  std::string cid;                       // send
  std::string topic;                     // create, set_topic
  std::vector<std::string> members;      // create
  bool is_private = false;               // create
  user_id target;                        // invite, kick
  seq_t ref = 0;                         // edit, delete
  seq_t seq = 0;                         // read
  std::optional<seq_t> since;            // join
  std::optional<seq_t> before;           // history
  std::optional<seq_t> after;            // history
  std::uint32_t limit = 50;              // history
  std::vector<room_subscriber> adopted;  // adopt
  bool was_active = true;  // set by the registry: false if this command activated the room
};

}  // namespace kaiwa
