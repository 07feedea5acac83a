#pragma once
// A shard leader's view of its replicas (docs/cluster.md "Replication and failover"): how far
// each has durably appended the shard's log, the high watermark (the offset every in-sync
// replica holds: what may be acked to clients), and which followers should leave or join the
// in-sync set (isr). Pure: the leader's replication loop feeds it and acts on what it says; a
// change of the isr takes effect once the leader's compare-and-swap of the shard's assignment has
// succeeded (set_isr), so a deposed leader can't shrink it.
//
// The rules, Kafka's: an ack waits for every member of the isr (not any `min_insync` of the
// replicas), so whichever in-sync replica leads next holds every acked event; the shard takes
// writes only while the isr has at least `min_insync` members, so an ack always means that many
// disks; a follower that has not caught up with the leader's log end for `max_lag` leaves the
// isr (replica.lag.time.max.ms), and one that reaches the high watermark joins it again.

#include <chrono>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "cluster/leader_epochs.hpp"

namespace kaiwa::cluster {

struct in_sync_config {
  /// Members the isr needs for the shard to take writes. Default: 2 (of replication factor 3)
  std::size_t min_insync = 2;
  /// How long a follower may stay behind the leader's log end before it leaves the isr: long
  /// enough for a burst or a compaction stall, short enough that acks don't hang on a dead
  /// follower for longer than a failover takes. Default: 1 s
  std::chrono::milliseconds max_lag{1000};
};

class in_sync_tracker {
 public:
  using clock = std::chrono::steady_clock;

  /// The leader `self` with these replicas and isr (from the shard's assignment; self in both),
  /// its own log durable up to `log_end`, at `now`. Followers start as caught up at `now`.
  in_sync_tracker(std::string self, const std::vector<std::string>& replicas,
                  std::vector<std::string> isr, offset_t log_end, in_sync_config cfg,
                  clock::time_point now);

  /// The leader's own log is durable up to `end`.
  void appended(offset_t end);
  /// `follower` has durably appended up to `end` (its acknowledgement of a replication batch).
  /// Ignored for a node that is not a replica; a smaller end than one already reported is kept
  /// as the larger (acks may arrive out of order). `sent_end` and `sent_at`: the leader's log
  /// end when it sent its latest request to `follower`, and when; an end that reaches it was
  /// caught up then, however much the leader appended while the answer was on its way
  /// (without it a follower a round trip behind a steady stream of writes would lag out).
  void acked(const std::string& follower, offset_t end, clock::time_point now,
             offset_t sent_end = 0, clock::time_point sent_at = {});

  /// The highest offset every isr member holds, and every member of an isr change in flight
  /// (Kafka's "maximal isr", KIP-497): acks up to it may go to clients. It never passes a
  /// follower that is about to join, so a joiner holds every acked event when it is in.
  offset_t high_watermark() const;
  /// `follower` can't be reached now (its node's connection closed, or its member key is gone):
  /// it counts as lagging at once, so the next proposal drops it without waiting max_lag (a
  /// write would otherwise wait that long for a dead follower), and it is not taken back in
  /// until it answers again. What it held is forgotten: it may return with less (a data dir
  /// restored from a backup, a machine's power lost under `--durability async`), and only its
  /// answers then say what it holds; the end remembered from before would take it straight
  /// back into the isr without the acked events it lacks.
  void unreachable(const std::string& follower);

  /// The isr is big enough for the shard to take writes.
  bool writable() const { return isr_.size() >= cfg_.min_insync; }

  /// Isr followers behind the log end for longer than max_lag: the isr to propose without them.
  std::vector<std::string> lagging(clock::time_point now) const;
  /// Replicas outside the isr that hold everything up to the high watermark, and the log this
  /// leader started with (which holds every event an earlier epoch acked): ready to join.
  std::vector<std::string> caught_up() const;
  /// The leader is writing `next` as the isr (a compare-and-swap in flight): until it is
  /// settled, the high watermark counts its members too.
  void proposing(std::vector<std::string> next);
  /// The isr after a successful compare-and-swap of the assignment (or as the controller set
  /// it); settles a proposal. Members that are not replicas are ignored; the leader stays in.
  void set_isr(std::vector<std::string> isr, clock::time_point now);
  /// The proposal failed (a conflict, a deposed leader): the isr stays as it was.
  void proposal_failed() { pending_.clear(); }

  const std::vector<std::string>& isr() const noexcept { return isr_; }
  offset_t end_of(const std::string& replica) const;

 private:
  struct follower {
    offset_t end = 0;
    clock::time_point caught_up_at;  // last time its end reached the leader's log end
    bool unreachable = false;        // its connection closed; cleared by its next answer
  };

  bool in_isr(const std::string& node) const;

  std::string self_;
  std::map<std::string, follower> followers_;
  std::vector<std::string> isr_;
  std::vector<std::string> pending_;  // an isr being written, empty when none
  offset_t log_end_ = 0;
  offset_t led_from_ = 0;  // log_end_ when this leader began: what earlier epochs may have acked
  in_sync_config cfg_;
};

}  // namespace kaiwa::cluster
