#pragma once
// The admin CLI commands (`kaiwa status|drain|backup|restore`). Each returns the process's exit
// code and prints one clear line on failure.

#include <chrono>
#include <optional>
#include <string>

#include "apps/admin_client.hpp"

namespace kaiwa::app {

int status_command(const admin_target& t, bool json);
/// A room's state: head, owner, members, subscribers, whether it was active.
int room_command(const admin_target& t, const std::string& room, bool json);
/// A live view refreshed every second from /metrics: full-screen on a terminal (restored on
/// exit and Ctrl-C), successive plain snapshots otherwise; while the node can't be reached it
/// says so and retries. `iterations` refreshes (0: until interrupted); 1 if the last one found
/// the node unreachable.
int top_command(const admin_target& t, int iterations, bool json);
/// Drains `node` (empty: the node asked); in a cluster its shards move away first.
int drain_command(const admin_target& t, const std::string& node, std::chrono::milliseconds grace,
                  bool json);
/// The members, their state, shard counts and load.
int cluster_command(const admin_target& t, bool json);
/// `kaiwa cluster remove NODE` (with etcd): NODE, gone for good, has its replicas re-created on
/// the other members; refused while NODE is live.
int remove_command(const admin_target& t, const std::string& node, bool json);
/// The shard map: owners as ranges, the epoch.
int shards_command(const admin_target& t, bool json);
/// Moves `shard` to `node`; a shard already there is said so and is a success (0).
int move_command(const admin_target& t, unsigned shard, const std::string& node, bool json);
/// The read models: state, progress, pending events, lag, events applied.
int projections_command(const admin_target& t, bool json);
/// Asks for a rebuild of `name` and prints a progress line every half second until it is live
/// again. 0: rebuilt; 1: the admin API failed (unreachable, an error, the node went away);
/// 2: the node refused (no such projection, one rebuilding already, read models off).
int rebuild_command(const admin_target& t, const std::string& name);
/// Asks the node for a checkpoint and copies it into `dir` (missing or empty), with progress.
int backup_command(const admin_target& t, const std::string& dir, bool json);
/// One admin request for the other command files: the body when the node answers `expect`,
/// else nullopt after printing one line (what went wrong, the node's hint).
std::optional<std::string> admin_request(const admin_target& t, const std::string& method,
                                         const std::string& target, int expect);
/// Copies a backup into `data_dir`, which must be missing or empty. The node is not involved.
int restore_command(const std::string& backup_dir, const std::string& data_dir, bool json);

}  // namespace kaiwa::app
