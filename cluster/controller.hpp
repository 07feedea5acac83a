#pragma once
// The coordinator's bookkeeping of shard moves: the queue, the moves under way, the batch they
// form and who waits for it (an operator's `kaiwa move`, a drain). It decides; the cluster
// actor carries out (asks the old owner to hand over, publishes maps). docs/cluster.md,
// "Moving a shard" and "Draining a node".

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cluster/members.hpp"
#include "cluster/shard_map.hpp"

namespace kaiwa::cluster {

/// How long the coordinator waits for one handover (stop, export, ingest) to end.
inline constexpr std::chrono::seconds move_timeout{120};
/// Moves the coordinator runs at once (each of a different shard): a drain or a join moves
/// hundreds of shards, each a few milliseconds of stopping, exporting, ingesting and publishing.
/// Two halve a drain's time for 2-3 ms more pause per room; four pause each room ~10 ms more
/// (docs/benchmarks.md).
inline constexpr std::size_t concurrent_moves = 2;
/// Tries of one move before it fails (and fails its batch). A handover fails for reasons that
/// pass: the old owner is not yet connected to a node that just joined (it dials it on the map
/// that admitted it, which the coordinator sends just before its first moves), a disk or a
/// connection slow under load. Each failed try is aborted (the old owner serves the shard again)
/// and tried again later, so a join or a drain still ends with the shards spread.
inline constexpr std::uint32_t move_tries = 5;
/// The wait before the second try; it doubles for each try after (1 + 2 + 4 + 8 s: a move
/// gives up 15 s after its first failure, plus the tries' own time).
inline constexpr std::chrono::milliseconds move_retry_delay{1000};

/// Answers whoever asked for a move or a plan: empty when done, else why not.
using move_reply = std::function<void(std::string)>;
/// The members shards are spread over: those up and not draining.
std::vector<std::string> balanced_nodes(const shard_map& map, const is_up& up);

/// `map` with `node` draining (it gets no shards, and a rebalance empties it), or why it
/// can't be drained.
std::variant<shard_map, std::string> with_draining(const shard_map& map, const std::string& node);

/// The coordinator's moves. Owned by the cluster actor; used on its thread only. Replies are
/// called on that thread too, from the calls below.
class controller {
 public:
  using clock = std::chrono::steady_clock;

  /// A move the actor starts now: asks `move.from` to hand `move.shard` to `move.to`, then
  /// calls finish(). `move.from` is the owner in the map at the time.
  struct started {
    shard_move move;
  };

  /// A try of a move that ended (finish()): the actor publishes or aborts it, then calls
  /// `reply`; or, when `retry_in` is set, aborts it and runs start() again after `retry_in`
  /// (the move waits in the queue until then; `reply` is null).
  struct ended {
    shard_move move;
    move_reply reply;  // null for a planned move, or a move tried again
    clock::duration took;
    std::optional<clock::duration> retry_in;
  };

  /// The batch ended (end_batch()): what to log.
  struct batch_summary {
    std::uint64_t moves = 0;  // started since the queue was last empty
    std::uint64_t failed = 0;
    clock::duration took{};
  };

  /// Queues the moves that even out `map` over `nodes`, but not those of a member that is
  /// down (nothing to hand over without it) nor those of a shard already queued or moving.
  /// `reply` is answered, and `drained` told it is empty (after `grace`), when the batch ends.
  /// Returns how many moves it queued: with none, the caller ends the batch if idle().
  std::size_t plan(const shard_map& map, const std::vector<std::string>& nodes, const is_up& up,
                   move_reply reply = nullptr, std::string drained = {},
                   std::chrono::milliseconds grace = {});

  /// An operator's move of `s` (of `shards`) to `to`. Answers at once when there is nothing to
  /// do or it can't be done; returns true when it was queued (the caller runs start()).
  bool enqueue(const shard_map& map, std::uint32_t shards, shard_t s, const std::string& to,
               move_reply reply);

  /// Takes moves from the queue up to concurrent_moves under way. A queued move whose shard
  /// already moves, or whose next try is not due yet, waits; one whose shard is already at its
  /// target is answered done; one whose owner or target is down fails (and fails the batch).
  std::vector<started> start(const shard_map& map, const is_up& up, clock::time_point now);

  /// The try of moving `s` ended with `err` (empty: handed over). A failed try is queued again
  /// (due after move_retry_delay, doubled per try) until the move's move_tries are spent; only
  /// then does the move fail. Requires that it is under way.
  ended finish(shard_t s, const std::string& err, clock::time_point now);

  /// Nothing queued and nothing under way: the batch can end.
  bool idle() const noexcept { return moving_.empty() && queue_.empty(); }
  /// When idle: plan again before ending the batch. Members that joined while a plan ran were
  /// planned around it; not after an operator's move alone (evening out would undo it), nor
  /// after a failure (it would be retried at once, forever).
  bool replan() const noexcept { return batch_planned_ && batch_failed_ == 0; }

  /// Ends the batch: answers who waited for it (an error when a move failed) and, when none
  /// failed, calls `drained(node, grace)` for each drain first.
  batch_summary end_batch(
      clock::time_point now,
      const std::function<void(const std::string&, std::chrono::milliseconds)>& drained);

  /// Shards moving from or to `node` (it went down: their handover may fail).
  std::vector<shard_t> moving_with(const std::string& node) const;

  bool moving() const noexcept { return !moving_.empty(); }
  std::size_t queued() const noexcept { return queue_.size(); }
  std::uint64_t moves_done() const noexcept { return moves_done_; }
  std::uint64_t moves_failed() const noexcept { return moves_failed_; }
  std::uint64_t moves_retried() const noexcept { return moves_retried_; }

 private:
  struct queued_move {
    shard_move move;
    move_reply reply;  // an operator's `kaiwa move`; null for a planned one
    std::uint32_t failed_tries = 0;
    clock::time_point due{};  // not started before (a try again)
  };
  struct running_move {
    queued_move q;
    clock::time_point started;
  };
  /// Who waits for a batch of moves to end: a drain (and the node it empties).
  struct plan_waiter {
    move_reply reply;
    std::string drained;
    std::chrono::milliseconds grace{0};  // the drained node's sessions close after it
  };

  std::deque<queued_move> queue_;           // to run, concurrent_moves at a time
  std::map<shard_t, running_move> moving_;  // under way, by shard
  std::vector<plan_waiter> plan_waiters_;
  std::uint64_t batch_moves_ = 0;  // moves started since the queue was last empty
  std::uint64_t batch_failed_ = 0;
  bool batch_planned_ = false;  // the batch includes moves planned by plan()
  clock::time_point batch_started_;
  std::uint64_t moves_done_ = 0;
  std::uint64_t moves_failed_ = 0;
  std::uint64_t moves_retried_ = 0;  // failed tries queued again
};

}  // namespace kaiwa::cluster
