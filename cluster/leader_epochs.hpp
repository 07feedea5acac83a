#pragma once
// A replica's leader-epoch history for one shard (Kafka's leader-epoch cache, KIP-101): for each
// epoch in which this replica's log got entries, the first offset written in it. With it a
// follower that returns after a failure finds where its log and the current leader's part
// (`divergence`) and drops every entry past that point, which no ack can have covered (an ack
// needs the whole in-sync set, docs/cluster.md), before it catches up. Offsets are positions in the
// shard's replicated log, from 1 (0: empty).
//
// Pure data: the replica persists it beside its log and restores it at start.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kaiwa::cluster {

using offset_t = std::uint64_t;
using epoch_t = std::uint64_t;

class leader_epochs {
 public:
  struct entry {
    epoch_t epoch = 0;
    offset_t start = 0;  // the first offset written in `epoch`

    friend bool operator==(const entry&, const entry&) = default;
  };

  leader_epochs() = default;
  /// From a persisted history; nullopt unless epochs and starts strictly grow (an epoch is
  /// recorded by its first entry) and every start is at least 1.
  static std::optional<leader_epochs> from(std::vector<entry> entries);

  /// The log got `offset` in `epoch`: a new entry when the epoch is new. False (nothing
  /// changes) for an epoch older than the latest, an offset not past the latest epoch's start
  /// in a newer one, or offset 0: what a leader of a past epoch sends, refused.
  bool record(epoch_t epoch, offset_t offset);

  /// The latest epoch with entries; 0 when none.
  epoch_t latest() const noexcept { return entries_.empty() ? 0 : entries_.back().epoch; }

  /// The last offset written in `epoch` here, given this log's end: the offset before the next
  /// epoch's start, or log_end for the latest. nullopt for an epoch with no entries here.
  std::optional<offset_t> last_of(epoch_t epoch, offset_t log_end) const;

  /// Forgets entries past `log_end` (after a truncation): an epoch whose start is past it goes.
  void truncate_to(offset_t log_end);

  const std::vector<entry>& entries() const noexcept { return entries_; }

 private:
  std::vector<entry> entries_;
};

/// Where a returning follower's log and the leader's part: the last offset the follower keeps.
/// Entries of one epoch come from that epoch's one leader in one order, so two logs agree up to
/// the end (in the shorter) of the latest epoch both have; what the follower holds past it was
/// never in the leader's log, hence never acked, and goes. The follower gets the leader's whole
/// history (a few entries: one per change of leader) rather than asking epoch by epoch as
/// Kafka's OffsetsForLeaderEpoch does (KIP-279's iteration), and decides alone. nullopt when
/// there is no common epoch and the leader's history no longer reaches the log's start (its
/// oldest entries were dropped by retention): the follower must take a snapshot of the shard.
std::optional<offset_t> divergence(const leader_epochs& follower, offset_t follower_end,
                                   const leader_epochs& leader, offset_t leader_end);

}  // namespace kaiwa::cluster
