#pragma once
// One shard's replica on one node, leader or follower: the replication protocol of
// docs/cluster.md ("Replication and failover") put together from its parts (follower_state,
// in_sync_tracker, leader_epochs, replication_wire) over a store of the shard's log. It knows
// no threads and no network: its owner (an actor) calls it from one thread at a time, gives it
// the messages that arrive, and runs the completions the store reports on that same thread; it
// sends through `send`. So the protocol is tested as it runs, in one process, deterministically
// (tests/cluster/shard_replica_test.cpp), and the actor around it stays glue.
//
// A leader appends each write to its own log (durable), sends entries to each follower (one
// batch in flight per follower), and counts a write acked once the high watermark passes it:
// then every replica of the isr holds it, and the leader applies it to its records and runs the
// write's completion (the client's ack). Followers append what they get, answer with their log
// end, and apply up to the high watermark each append carries. A leader told of a newer epoch
// stops (its pending writes fail `deposed`); a follower told of a newer leader reconciles its
// log with that leader's history first.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/follower_state.hpp"
#include "cluster/in_sync_tracker.hpp"
#include "cluster/leader_epochs.hpp"
#include "cluster/shard_assignment.hpp"
#include "core/shard.hpp"

namespace kaiwa::cluster {

struct log_entry {
  offset_t offset = 0;
  epoch_t epoch = 0;
  std::string payload;
  /// Set by the replica on an append: the first entry of its epoch in this log, which the store
  /// records in the log's epoch history (read back at open instead of the whole log).
  bool starts_epoch = false;
};

/// A shard's log on this node (storage::journal's replicated log, or a fake in tests). append and
/// apply complete later, through `done`, which the owner runs on its thread.
class replica_store {
 public:
  virtual ~replica_store() = default;
  virtual void append(std::vector<log_entry> entries, std::function<void(bool ok)> done) = 0;
  /// Applies entries (read back from the log) to the records.
  virtual void apply(std::vector<log_entry> entries, std::function<void(bool ok)> done) = 0;
  /// Entries after `after`, at most `max_entries`; nullopt when the log can't be read. They
  /// start past `after + 1` when retention trimmed the log there.
  virtual std::optional<std::vector<log_entry>> read(offset_t after, std::size_t max_entries) = 0;
  virtual bool truncate(offset_t keep_through) = 0;
};

/// Why a write was not acked.
enum class replicate_error {
  not_leader,          // this replica doesn't lead the shard (any more)
  not_enough_in_sync,  // fewer than min_insync replicas in sync: the shard takes no writes
  deposed,             // a newer leader exists: the write may or may not survive (like a timeout)
  storage,             // this node's disk failed
};

class shard_replica {
 public:
  using clock = std::chrono::steady_clock;
  /// Sends `bytes` (a replication_wire message) to `node`.
  using send_fn = std::function<void(const std::string& node, std::string bytes)>;
  /// A write's outcome: nullopt when acked (applied on the leader after every in-sync replica
  /// had it).
  using acked_fn = std::function<void(std::optional<replicate_error>)>;

  /// `store` holds the shard's log from `log_end`, applied up to `applied`, with `history`;
  /// `followed` is the highest leader epoch this replica has followed or led.
  shard_replica(shard_t shard, std::string self, replica_store& store, send_fn send,
                offset_t log_end, offset_t applied, leader_epochs history, epoch_t followed,
                in_sync_config cfg);

  /// Leads the shard as `a` says (a names this node leader, at an epoch above any followed).
  /// Entries in its log past what was applied are the new epoch's to commit: they are sent and
  /// applied like new writes once the isr holds them. At the epoch it leads, takes the
  /// assignment's replicas and isr (the controller replacing a removed member); `a` must be no
  /// older than the isr this leader last wrote (isr_written), or acks would stop waiting for a
  /// member etcd still names in sync.
  void lead(const shard_assignment& a, clock::time_point now);
  /// Follows the leader `a` names.
  void follow(const shard_assignment& a);

  /// Leader: appends one write (its records' payload) and replicates it; `acked` runs once.
  void replicate(std::string payload, acked_fn acked);
  /// A message from `from`.
  void on_message(const std::string& from, std::string_view bytes, clock::time_point now);
  /// Leader: sends the high watermark to followers with nothing in flight (so they apply), sends
  /// again a batch unanswered for 250 ms (lost with a broken connection), and returns the isr
  /// it should propose, if it should change (laggards out, caught-up in).
  std::optional<std::vector<std::string>> tick(clock::time_point now);
  /// Leader: the isr change it proposed was written (or failed).
  void isr_written(std::vector<std::string> isr, clock::time_point now);
  void isr_failed();
  /// Leader: `node` can't be reached now (in_sync_tracker::unreachable); otherwise nothing.
  void peer_unreachable(const std::string& node);
  /// Leader: stops leading (its owner's reason: the lease no longer surely holds, the replica is
  /// dropped); its pending writes fail with `why`. It may lead again at the same epoch (lead) if
  /// the assignment still names it: its log, and the followers', go on where they were.
  void step_down(replicate_error why);

  bool leading() const noexcept { return role_ == role::leader; }
  /// It last stopped leading because its disk failed (an append or an apply), not by its
  /// owner's step_down or a newer epoch: the shard needs another leader. Cleared by lead().
  bool storage_failed() const noexcept { return storage_failed_; }
  epoch_t epoch() const noexcept { return epoch_; }
  /// The highest epoch this replica has followed or led (its log's included): lead() takes
  /// only an epoch above it, or the epoch it led and stepped down from.
  epoch_t followed() const noexcept { return followed_; }
  offset_t log_end() const noexcept { return log_end_; }
  /// Leader: where its log ended when it took the lead, the appends it then had in flight as a
  /// follower included (they land as this leader's log). Its owner serves the shard's rooms
  /// only once this much is applied: an entry still landing at the promotion, applied after a
  /// room had recovered, would share a seq with that room's next write.
  offset_t led_from() const noexcept { return led_from_; }
  offset_t applied() const noexcept { return applied_; }
  /// What may be acked: what every in-sync replica holds, while they are at least min_insync
  /// (with fewer, no write of this leader is acked or applied: an ack means that many disks;
  /// only the log it leads from, up to led_from(), is applied once the isr holds it).
  offset_t high_watermark() const;
  const leader_epochs& history() const noexcept { return history_; }
  /// The highest log start retention may set now: never past the last applied entry (the log
  /// keeps it), and on a leader never past an in-sync follower's log end + 1 (what it fetches
  /// next stays in the log).
  offset_t trim_limit() const;
  /// Leader: followers whose next entry is before this log's start (trimmed): they can't catch
  /// up from the log and stay out of the isr until they get a snapshot of the shard.
  std::vector<std::string> behind_log_start() const;
  /// Leader: `node` installed a snapshot of the shard: it is sent the log from where its own
  /// now ends (its answer to an empty append says where).
  void snapshot_installed(const std::string& node);

 private:
  enum class role { none, leader, follower };
  struct peer {
    offset_t next = 1;          // the next offset to send it
    bool in_flight = false;     // a batch sent, not answered
    clock::time_point sent;     // when it was sent: unanswered for resend_after, it is sent again
    offset_t sent_end = 0;      // the log end then: an answer reaching it was caught up at `sent`
    bool before_start = false;  // its next entry was trimmed: nothing more is sent to it
  };

  /// An append up to `last` completed: false when the log is damaged (this or an earlier
  /// append failed) and nothing after it counts until repair() cut the store back.
  bool landed(offset_t last, bool ok);
  void repair();
  /// Leader: the log grew; tell the tracker and the followers, apply what is acked.
  void progress();
  void reassigned(const shard_assignment& a, clock::time_point now);
  void send_to(const std::string& node);
  void advance();
  void on_append(const std::string& from, std::string_view bytes);
  void on_answer(const std::string& from, std::string_view bytes, clock::time_point now);
  void on_history_request(const std::string& from, std::string_view bytes);
  void on_history(const std::string& from, std::string_view bytes);
  void answer(const std::string& to, std::uint8_t kind, offset_t log_end);

  shard_t shard_;
  std::string self_;
  replica_store& store_;
  send_fn send_;
  in_sync_config cfg_;
  clock::time_point now_;  // the latest time the owner gave (lead, on_message, tick)

  role role_ = role::none;
  epoch_t epoch_ = 0;                  // the epoch led or followed
  std::string leader_;                 // follower: whom it follows
  std::vector<std::string> replicas_;  // the latest assignment's: who may send appends
  offset_t log_end_ = 0;               // durable in the log
  offset_t appending_ = 0;             // the log's end once every append made lands
  offset_t led_from_ = 0;              // see led_from()
  offset_t applied_ = 0;
  bool applying_ = false;
  std::size_t appends_in_flight_ = 0;  // made to the store, not completed
  bool damaged_ = false;               // an append failed: the store may hold entries past log_end_
  bool storage_failed_ = false;        // the last step-down as leader was for `storage`
  leader_epochs history_;
  epoch_t followed_ = 0;

  // Leader only.
  std::unique_ptr<in_sync_tracker> tracker_;
  std::map<std::string, peer> peers_;
  std::deque<std::pair<offset_t, acked_fn>> waiting_;  // by offset
  bool proposing_ = false;

  // Follower only.
  std::unique_ptr<follower_state> follower_;
  bool reconciling_ = false;
  bool needs_snapshot_ = false;  // reconciling: the leader's history doesn't reach this log
};

}  // namespace kaiwa::cluster
