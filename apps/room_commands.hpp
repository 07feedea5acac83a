#pragma once
// The CLI's room and user management (`kaiwa rooms`, `kaiwa users`, `kaiwa room delete|archive|
// unarchive`), over the admin API (docs/operations.md, "Rooms and users"). Each returns the
// process's exit code: 0 done, 1 failed (the node unreachable or refusing, or not confirmed),
// 2 a usage error.

#include <cstddef>
#include <string>

#include "apps/admin_client.hpp"

namespace kaiwa::app {

struct listing_options {
  std::size_t limit = 100;  // per page, 1 to 1000
  std::string after;        // the cursor a page gave as "next"; empty: from the start
  bool all = false;         // follow "next" until the last page
  bool json = false;        // one JSON reply per page as the node gave it
};

/// The rooms the node holds: a table (last activity as "3 s ago") or --json.
int rooms_command(const admin_target& t, const listing_options& o);
/// The users seen in the node's rooms, with how many rooms each is in.
int users_command(const admin_target& t, const listing_options& o);
/// `room` is a valid name (the caller checks). Deletes it after a confirmation: `yes`, or the
/// room's name typed on a terminal. Without `yes` and with stdin not a terminal it refuses (2).
int room_delete_command(const admin_target& t, const std::string& room, bool yes, bool json);
/// Archives (read-only) or unarchives `room`.
int room_archive_command(const admin_target& t, const std::string& room, bool archive, bool json);

}  // namespace kaiwa::app
