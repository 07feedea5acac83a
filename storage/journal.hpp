#pragma once
// The node's durable store: every room's event log plus snapshots, room metadata, read markers
// and send dedupe keys, each in its own RocksDB column family.
//
// Writes go through group commit: any thread hands `commit()` a write_set; one writer thread
// takes everything queued since its last write, commits it as one RocksDB WriteBatch with one
// WAL sync (when durability is sync) and then runs each write_set's completion, in submission
// order, on the writer thread. Reads are thread-safe and go straight to RocksDB.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.hpp"
#include "core/shard.hpp"
#include "storage/read_store.hpp"
#include "storage/result.hpp"

namespace kaiwa::storage {

struct journal_config {
  /// Directory of the RocksDB database; created when missing. Default: ./kaiwa-data
  std::string dir = "./kaiwa-data";
  /// true: a commit completes after its WAL write is fsynced (durability = sync).
  /// false: after the write reached the OS (durability = async). Default: true
  bool sync = true;
  /// A group commit slower than this is logged with its figures. Default: 100 ms
  std::chrono::milliseconds slow_write{100};
  /// Virtual shards (keys start with the room's shard). Fixed when the data dir is created; a
  /// dir opened with another count is refused. Default: 1024
  std::uint32_t shards = default_shards;
  /// RocksDB's block cache, shared by the log and the read models: most of the node's memory
  /// for data, and fixed whatever the data's size. Default: 256 MiB
  std::size_t block_cache_bytes = std::size_t{256} << 20;
  /// Memtables of every family together; past it the largest is flushed. Default: 256 MiB
  std::size_t memtable_bytes = std::size_t{256} << 20;
};

/// The writes one room (or one request) commits atomically.
class write_set {
 public:
  void put_event(const room_id& room, seq_t seq, std::string_view json);
  void put_snapshot(const room_id& room, std::string_view state);
  void put_meta(const room_id& room, std::string_view meta);
  void put_dedupe(const room_id& room, const user_id& user, std::string_view cid, seq_t seq);
  void put_marker(const user_id& user, const room_id& room, seq_t seq);

  bool empty() const noexcept { return ops_.empty(); }

 private:
  friend class journal;
  struct op {
    std::uint8_t family;
    std::string key;  // its first two bytes are the room's shard, filled in by the journal
    std::string value;
    std::size_t room_at = 0;  // where the key names the room
    std::size_t room_len = 0;
  };
  std::vector<op> ops_;
};

/// Counters the writer keeps; read them from any thread.
struct journal_stats {
  std::uint64_t commits = 0;     // RocksDB writes (each one WAL sync when sync)
  std::uint64_t write_sets = 0;  // write_sets committed
};

class journal {
 public:
  using completion = std::function<void(const status&)>;

  /// Opens (creating if needed) the database in `cfg.dir` and starts the writer thread.
  static result<std::unique_ptr<journal>> open(const journal_config& cfg);
  ~journal();

  journal(const journal&) = delete;
  journal& operator=(const journal&) = delete;

  /// Queues `ws` for the next group commit; `done` runs on the writer thread after it.
  /// Completions run in submission order, and each is destroyed before the next one runs (so
  /// the completion of a later commit, even of an empty write_set, is a barrier: every earlier
  /// completion has run and released what it captured). After stop(), `done` runs at once with
  /// errc::stopped.
  void commit(write_set ws, completion done);

  /// Commits what is queued, stops the writer thread and closes the database. Idempotent.
  /// Reads must not run concurrently with or after stop(): the node stops every reader (the
  /// gateway's threads, the room actors) first.
  void stop();

  // -- reads ------------------------------------------------------------------------------

  /// Up to `limit` events with seq > `after`, ascending.
  result<std::vector<std::string>> events_after(const room_id& room, seq_t after,
                                                std::size_t limit) const;
  result<std::optional<std::string>> event(const room_id& room, seq_t seq) const;
  /// The highest seq stored for `room`, 0 when it has no events.
  result<seq_t> last_seq(const room_id& room) const;
  result<std::optional<std::string>> snapshot(const room_id& room) const;
  result<std::optional<seq_t>> dedupe(const room_id& room, const user_id& user,
                                      std::string_view cid) const;
  /// The user's read marker in `room`, 0 when none.
  result<seq_t> marker(const user_id& user, const room_id& room) const;
  /// The user's read markers in the rooms of `shard`: (room, seq), by room name.
  result<std::vector<std::pair<room_id, seq_t>>> markers_of(const user_id& user,
                                                            shard_t shard) const;

  /// A room on disk and its highest seq.
  struct room_head {
    room_id room;
    seq_t last = 0;
  };
  /// Rooms with events, in key order (shard, then name): up to `limit` after `after` (a room
  /// returned earlier; none: from the first), only those of `shard` when given. Two seeks per
  /// room; for catching up projections, not for requests.
  result<std::vector<room_head>> room_heads(const std::optional<room_id>& after, std::size_t limit,
                                            std::optional<shard_t> shard = std::nullopt) const;

  /// The room's metadata record (room_state::meta), nullopt when it has none.
  result<std::optional<std::string>> room_meta(const room_id& room) const;

  // -- deleting a room --------------------------------------------------------------------
  // A deletion is: mark_deleting, delete_room_log, the read side's forget_room, unmark_deleting.
  // The mark (a synced write in the default family) is what makes it crash-safe: the node finds
  // the rooms still marked at start (`rooms_being_deleted`) and does the rest again, and every
  // step is idempotent.

  status mark_deleting(const room_id& room);
  status unmark_deleting(const room_id& room);
  /// Rooms marked and not unmarked, by name.
  result<std::vector<room_id>> rooms_being_deleted() const;
  /// Deletes every record of `room` in the log's families, in one synced write: its events,
  /// snapshot, meta, dedupe keys and every user's read marker in it. Other rooms (those of its
  /// shard too) are untouched. The caller makes sure nothing of the room is being committed (the
  /// room's actor waits for its commit in flight). The read models are not touched.
  status delete_room_log(const room_id& room);

  // -- read models (storage/read_store.hpp) -----------------------------------------------

  /// A batch for one projection step (reads through it see its writes).
  read_batch new_read_batch() const;
  /// Writes `b` atomically and without the WAL: what a crash loses (since the family's last
  /// flush) is applied again from the projection's offsets, which the same family holds. The
  /// writer thread writes it between group commits (at most one per commit round); this blocks
  /// until it is written. errc::stopped once the journal stops. `durable`: through the WAL,
  /// synced, for what nothing would redo after a crash (the erasure of a deleted room's records,
  /// whose deletion mark is cleared next).
  status write_reads(read_batch b, bool durable = false);
  result<std::optional<std::string>> read_get(read_family f, std::string_view key) const;
  /// A walk over committed data of `f`, on a snapshot taken now.
  std::unique_ptr<read_cursor> new_read_cursor(read_family f) const;
  /// Deletes everything of `f` (every shard, offsets included) and compacts the range away, so
  /// walks don't step over the tombstones. Blocks for the compaction.
  status drop_reads(read_family f);
  /// Writes every read family's memtable to its files (and waits): from then on what their
  /// walks see is durable, so deletions computed from it and written `durable` stay right
  /// after a crash (which would otherwise bring back the unflushed writes' older state).
  status flush_reads();

  /// Called on the writer thread after each successful group commit with the rooms that got
  /// events and the highest seq written for each (edits rewrite older seqs; those don't lower
  /// it). Must be cheap: it delays the next commit. Set it before the first commit, once.
  struct appended {
    std::string room;
    seq_t seq = 0;
  };
  void on_appended(std::function<void(const std::vector<appended>&)> fn);

  journal_stats stats() const;
  /// False while writes fail (since the last write failed, until one succeeds): the node is
  /// then not ready.
  bool writable() const noexcept;
  /// Rooms stored (counted exactly: the rooms of the shards this node holds) and the database's
  /// size (SST files plus memtables, RocksDB's estimates).
  struct disk_stats {
    std::uint64_t rooms = 0;
    std::uint64_t bytes = 0;
    std::uint64_t read_bytes = 0;  // of `bytes`: the read models (read.* families)
  };
  disk_stats disk() const;

  /// The rooms that appended the most events in the last whole second, busiest first.
  struct room_rate {
    std::string room;
    std::uint64_t events = 0;
  };
  std::vector<room_rate> hot_rooms(std::size_t limit) const;

  /// Appends the journal's histograms (commit batch size, write latency) in Prometheus text.
  void render_metrics(std::string& out) const;

  // -- a shard's replicated log (issue 13; docs/cluster.md "Replication and failover") ------
  // Every replica of a shard, leader and followers alike, appends the shard's entries (offsets
  // 1, 2, ..., one per write_set the leader took, with the epoch it led in) to its log with a
  // WAL sync, and applies them to the log's families only once the leader says every in-sync
  // replica has them (the high watermark). So what a replica applied was acked, and a returning
  // replica truncates what it holds past where its log parts from the leader's by deleting
  // entries, never undoing records. Entries live in the `replog` family, keyed by shard, so
  // they move, export and drop with it; the read models are not replicated (each replica's
  // projections follow its own applied records). Offsets and epochs are checked by the caller
  // (cluster/leader_epochs, cluster/in_sync_tracker); payloads are checked here, since they
  // come from the cluster port.

  /// One entry of a shard's replicated log. `payload`: replica_payload's bytes.
  struct replica_entry {
    std::uint64_t offset = 0;
    std::uint64_t epoch = 0;
    std::string payload;
    /// The first entry of its epoch in the log: appended with it, (epoch, offset) goes into the
    /// log's epoch history (replica_history), so opening a replica doesn't read the log back.
    bool starts_epoch = false;
  };
  /// Offsets stay below this: entry keys sort before the shard's metadata keys.
  static constexpr std::uint64_t max_replica_offset = (std::uint64_t{1} << 56) - 1;
  /// A payload's bound (what a write_set holds: one room's commit, or a request's records).
  /// Default: 16 MiB
  static constexpr std::size_t max_replica_payload = std::size_t{16} << 20;

  /// The records of `ws` as a replicated entry's payload (its keys stamped with their shard).
  /// Every record of a write_set is of one room, hence one shard.
  std::string replica_payload(write_set& ws) const;
  /// Appends `entries` to `shard`'s log, in one group commit (WAL-synced when the journal is);
  /// `done` runs when they are durable. Entries already there are overwritten (a re-sent batch).
  /// An offset of 0 or past max_replica_offset: `done` runs at once with errc::invalid.
  void append_replica_entries(shard_t shard, std::vector<replica_entry> entries, completion done);
  /// Applies `entries` (in offset order, the next after `replica_position().applied`) to the
  /// log's families, with the new applied offset, in one group commit. One apply of a shard in
  /// flight at a time. errc::invalid, and nothing written, when the first entry is not the next
  /// to apply (applied twice, or a gap), or a payload is not one replica_payload makes of records
  /// of `shard`'s rooms (a record of another shard, a read model's or the log's own family, a key
  /// or length that doesn't parse, a payload over max_replica_payload).
  status apply_replica_entries(shard_t shard, const std::vector<replica_entry>& entries,
                               completion done);
  /// Up to `max_entries` entries of `shard` after `after`, ascending, stopping before the one
  /// that would pass `max_bytes` (at least one entry when there is one).
  result<std::vector<replica_entry>> replica_entries(shard_t shard, std::uint64_t after,
                                                     std::size_t max_entries,
                                                     std::size_t max_bytes) const;
  struct replica_offsets {
    std::uint64_t log_start = 1;  // the first entry held: those before were trimmed
    std::uint64_t log_end = 0;    // the last entry's offset; log_start - 1 when the log is empty
    std::uint64_t applied = 0;    // the last entry applied to the families
  };
  result<replica_offsets> replica_position(shard_t shard) const;
  /// The log's epoch history: for each epoch with entries, the first offset it holds, by epoch
  /// (Kafka's leader-epoch checkpoint). A few keys, one per change of leader.
  struct replica_epoch {
    std::uint64_t epoch = 0;
    std::uint64_t start = 0;
  };
  result<std::vector<replica_epoch>> replica_history(shard_t shard) const;
  /// Deletes `shard`'s entries after `keep_through`, and the history's epochs that start past it
  /// (synced). errc::invalid when that would delete an applied entry: records are never undone.
  status truncate_replica_log(shard_t shard, std::uint64_t keep_through);
  /// Retention: deletes `shard`'s entries before `start` with one range deletion and records
  /// `start` as the log's start; the history keeps the epoch holding `start`, from `start`, and
  /// those after. Not synced (a crash that loses it brings back the entries and the old start
  /// together). errc::invalid past the applied offset: the last applied entry stays, so the
  /// log is empty only when it has never had entries.
  status trim_replica_log(shard_t shard, std::uint64_t start);
  /// The log's size: its entries (log_end + 1 - log_start) and RocksDB's estimate of their bytes.
  struct replica_log_stats {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;
  };
  result<replica_log_stats> replica_log_size(shard_t shard) const;

  // -- shard handover (cluster moves) -----------------------------------------------------

  std::uint32_t shards() const noexcept;

  /// Writes every record of `shard` into SST files in `dir` (created; one file per column
  /// family that has any, named `<family>.sst`), read at one snapshot of the database. The files
  /// are what `ingest_shard` takes on another node.
  struct shard_files {
    std::vector<std::string> paths;
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
  };
  result<shard_files> export_shard(shard_t shard, const std::string& dir) const;
  /// Replaces whatever this database holds of `shard` with exported files (named as
  /// `export_shard` names them). The files are moved into the database. errc::invalid, nothing
  /// changed, when a file holds a key outside `shard`'s range.
  status ingest_shard(shard_t shard, const std::vector<std::string>& paths);
  /// Deletes every record of `shard`.
  status drop_shard(shard_t shard);
  /// Records of `shard`, counted by scanning up to `limit`.
  result<std::uint64_t> count_shard(shard_t shard, std::uint64_t limit = ~std::uint64_t{0}) const;

  /// Small durable settings of the node (the cluster's shard map, its members), written with
  /// a WAL sync.
  result<std::optional<std::string>> setting(std::string_view key) const;
  status put_setting(std::string_view key, std::string_view value);

  /// A consistent copy of the database in `dir` (which must not exist), made with hard links
  /// where the file system allows: a backup that a node can open as its data dir.
  struct checkpoint_info {
    std::uint64_t files = 0;
    std::uint64_t bytes = 0;
  };
  result<checkpoint_info> checkpoint(const std::string& dir) const;

 private:
  struct impl;
  explicit journal(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

}  // namespace kaiwa::storage
