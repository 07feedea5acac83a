#pragma once
// Moves, drains and removals as replica changes (docs/cluster.md "Moves, drains and removals
// with etcd"): an operator's request is a key in etcd (`<prefix>requests/...`), the controller
// carries it out step by step, each step one compare-and-swap of the shard's assignment under
// its term, and deletes (or marks done) the request when the assignments show it finished.
// The steps are pure functions of the current assignment and the request, like
// replica_planner's plans: a controller that takes over mid-move computes the same next step
// and continues where the last one stopped.

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "cluster/replica_planner.hpp"
#include "cluster/shard_assignment.hpp"

namespace kaiwa::cluster {

/// `kaiwa move SHARD NODE`: the shard's leadership goes to `to`. When `to` is not yet a replica
/// it is added, and `from` (the leader when the move was asked) is dropped once `to` leads, so
/// the shard keeps its replica count; `from` is empty when `to` already was a replica (only the
/// leadership moves).
struct move_request {
  std::string to;
  std::string from;

  friend bool operator==(const move_request&, const move_request&) = default;
};

/// What the controller does next for a move.
struct move_step {
  enum class kind {
    write,    // write `next` (CAS on the shard's mod revision, fenced by the term)
    wait,     // `to` is catching up: its leader adds it to the isr
    done,     // finished: delete the request
    abandon,  // can't go on (`why`): delete the request, the shard stays as it is
  };
  kind what = kind::wait;
  shard_assignment next;
  std::string why;
};

/// The next step of `m` for a shard assigned `a`, with `live` the live members:
/// 1. `to` not a replica: add it, out of sync (it fetches from the leader);
/// 2. `to` not in the isr yet: wait;
/// 3. `to` in sync, not leading: it leads, at epoch + 1, and becomes the first replica (the
///    preferred leader, so the preferred-leader pass keeps it there);
/// 4. `from` still a replica: drop it from replicas and isr;
/// 5. done. Abandoned when `to` is not live, or the shard has max_replicas already.
move_step next_move_step(const shard_assignment& a, const move_request& m, const node_set& live);

struct drain_plan {
  assignments changes;             // one step for each shard that needs one
  std::set<std::string> finished;  // drained nodes with nothing left to do
};

/// One round of the drains of `drained` (a set: several may run at once). With E the live
/// nodes that are not drained, for each shard:
/// - led by a drained node: an in-sync replica in E (the one leading the fewest shards) leads, at
///   epoch + 1; the drained node stays a replica (in sync) for now. No in-sync replica in E: the
///   least-loaded node of E that is not a replica is added (out of sync) to catch up first.
/// - else, holding drained replicas: while fewer than `replication_factor` of its replicas are
///   in E and a node of E is free, that node is added (out of sync); once at least
///   `replication_factor` are in E and all of those are in sync, the drained ones are dropped.
///   When no node is free the drained replicas stay (a follower leaving shrinks the isr).
/// A drained node is finished when no shard it holds needs another step.
drain_plan plan_drain(const assignments& current, const std::set<std::string>& drained,
                      const node_set& live, std::size_t replication_factor);

// -- the request keys' values (JSON, so `etcdctl get` shows them) --------------------------

/// {"to":"n3","from":"n1"}
std::string encode(const move_request& m);
/// Strict: those two fields, strings, `to` a node id, `from` empty or one; at most 1 KiB.
std::optional<move_request> decode_move(std::string_view json);

/// A drain's key: `<prefix>requests/drain/<node>` under the drained node's lease (it ends with
/// the node's session: a node that restarts is no longer drained).
struct drain_request {
  std::chrono::milliseconds grace{0};  // the node's sessions close after this once finished
  bool finished = false;               // the controller saw every shard done
  friend bool operator==(const drain_request&, const drain_request&) = default;
};
/// {"grace_ms":N,"finished":false}
std::string encode(const drain_request& d);
/// Strict: those two fields, grace_ms 0 to 1 h; at most 1 KiB.
std::optional<drain_request> decode_drain(std::string_view json);

}  // namespace kaiwa::cluster
