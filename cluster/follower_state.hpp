#pragma once
// A follower's decisions for one shard (docs/cluster.md "Replication and failover"): which of a
// leader's append requests it takes, and what it answers. Pure: the follower's replication loop
// gives it each request and does what it says (append entries to storage, apply up to the high
// watermark, reconcile its log with a new leader's, or answer a refusal).
//
// What it guarantees:
// - **Fencing.** A request of an epoch older than the highest the follower has seen is refused,
//   with that epoch, so a deposed leader learns it is deposed and nothing it sends is appended.
// - **No divergence.** A leader of a newer epoch is followed only after the follower has
//   reconciled its log with that leader's (leader_epochs `divergence`: drop what was never in
//   the leader's log), so every replica's log is a prefix of its leader's.
// - **Gapless, no duplicates.** Entries are appended only at the follower's log end, in order; a
//   request that starts past the end is answered with the end (the leader resends from there),
//   and entries the follower already has (a resent batch) are skipped.
// - **Applied means acked.** The follower applies up to the leader's high watermark, never past
//   its own log end.

#include <cstdint>
#include <optional>
#include <vector>

#include "cluster/leader_epochs.hpp"

namespace kaiwa::cluster {

/// A leader's append request, as the follower sees it (the payloads are storage's concern).
struct append_request {
  epoch_t epoch = 0;             // the leader's epoch
  offset_t first = 0;            // the offset of entries[0] (or, with no entries, log end + 1)
  std::vector<epoch_t> entries;  // each entry's epoch, in offset order from `first`
  offset_t high_watermark = 0;   // what every in-sync replica holds
};

struct append_decision {
  enum class kind {
    append,     // append entries [skip, skip + count) of the request, then apply up to apply_to
    stale,      // the leader is deposed: answer `epoch` (the follower's), append nothing
    reconcile,  // a new leader: fetch its epoch history, truncate to the divergence, then retry
    behind,     // the request starts past the log end: answer `log_end`, the leader resends
    invalid,    // the request contradicts itself (epochs out of order, newer than the leader's)
  };
  kind what = kind::append;
  std::size_t skip = 0;   // entries already held (a resent batch)
  std::size_t count = 0;  // entries to append
  offset_t apply_to = 0;  // apply up to here once appended (0: nothing new to apply)
  epoch_t epoch = 0;      // stale: the epoch the follower has seen
  offset_t log_end = 0;   // behind: where the follower's log ends
};

class follower_state {
 public:
  /// From what storage holds: the log's end, what was applied, its epoch history, and the
  /// highest leader epoch this replica has followed (persisted with the log).
  follower_state(offset_t log_end, offset_t applied, leader_epochs history, epoch_t followed);

  /// What to do with `req`. Doesn't change the state: after doing what it says, the caller
  /// reports it with appended() / applied() / reconciled().
  append_decision decide(const append_request& req) const;

  /// `req`'s entries [skip, skip + count) are durable in the log.
  void appended(const append_request& req, std::size_t skip, std::size_t count);
  /// Entries up to `offset` are applied to the families.
  void applied(offset_t offset);
  /// The log is truncated to `keep_through` (the divergence with the leader of `epoch`), which
  /// the follower now follows.
  void reconciled(offset_t keep_through, epoch_t epoch);

  offset_t log_end() const noexcept { return log_end_; }
  offset_t applied_offset() const noexcept { return applied_; }
  epoch_t followed() const noexcept { return followed_; }
  const leader_epochs& history() const noexcept { return history_; }

 private:
  offset_t log_end_;
  offset_t applied_;
  leader_epochs history_;
  epoch_t followed_;
};

}  // namespace kaiwa::cluster
