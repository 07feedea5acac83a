#pragma once
// A shard snapshot on its way from a leader to a follower whose next entry the leader's log no
// longer holds (docs/cluster.md "Snapshot catch-up"): the SST files journal::export_shard wrote,
// sent as cluster::snapshot_chunk messages of at most max_snapshot_chunk bytes, one in flight at
// a time (the follower acknowledges each), and written back into files on the follower for
// journal::ingest_shard. Files only: the replication actor owns both ends and does the export,
// the sending and the ingest. Each end removes its directory when it goes.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster/replication_wire.hpp"

namespace kaiwa::detail {

/// A snapshot's bytes a follower takes at most: past it the transfer is refused. Default: 64 GiB
inline constexpr std::uint64_t max_snapshot_bytes = std::uint64_t{64} << 30;

class snapshot_sender {
 public:
  using clock = std::chrono::steady_clock;

  /// The files in `dir` (export_shard's, named after their families), each cut into chunks.
  /// nullopt when a file can't be read or the whole is over max_snapshot_bytes.
  static std::optional<snapshot_sender> make(shard_t shard, cluster::epoch_t epoch,
                                             std::uint64_t id, std::string dir,
                                             const std::vector<std::string>& paths);
  snapshot_sender(snapshot_sender&&) noexcept;
  snapshot_sender& operator=(snapshot_sender&&) = delete;
  ~snapshot_sender();

  std::uint64_t id() const noexcept { return id_; }
  std::uint64_t bytes() const noexcept { return bytes_; }
  /// The chunk to send, encoded: the next one not acknowledged, or once every one was, the last
  /// (sent again, it asks the follower to say again that it installed the snapshot). nullopt
  /// when its file can't be read.
  std::optional<std::string> current() const;
  /// The follower acknowledged chunks before `next`: true when that moves the transfer on.
  bool acked(std::uint32_t next);
  /// The follower has acknowledged a chunk: it is there, and the transfer under way.
  bool started() const noexcept { return next_ > 0; }
  /// Every chunk acknowledged: the follower installs the snapshot (and says so).
  bool all_acked() const noexcept { return next_ >= chunks_.size(); }

  clock::time_point sent;      // when current() was last sent: resent after a while unanswered
  clock::time_point progress;  // when it began or a chunk was last acknowledged
  cluster::offset_t log_end =
      0;  // the leader's log end before the export: the follower's is no less

 private:
  struct chunk {
    std::size_t file = 0;
    std::uint64_t at = 0;
    std::uint32_t size = 0;
  };
  snapshot_sender() = default;

  shard_t shard_ = 0;
  cluster::epoch_t epoch_ = 0;
  std::uint64_t id_ = 0;
  std::string dir_;  // empty once moved from
  std::vector<std::string> paths_;
  std::vector<chunk> chunks_;
  std::uint32_t next_ = 0;
  std::uint64_t bytes_ = 0;
};

class snapshot_receiver {
 public:
  /// Receives snapshot `id` into `dir` (emptied first).
  snapshot_receiver(std::string dir, std::uint64_t id);
  ~snapshot_receiver();
  snapshot_receiver(const snapshot_receiver&) = delete;
  snapshot_receiver& operator=(const snapshot_receiver&) = delete;

  enum class outcome {
    written,   // the chunk was the next one: written
    repeated,  // already written (its acknowledgement was lost): acknowledge again
    ignored,   // past the next one: the leader resends in order
    complete,  // the last chunk, written: the files are whole
    failed,    // a file can't be written, or the snapshot is over max_snapshot_bytes
  };
  outcome take(const cluster::snapshot_chunk& c);

  std::uint64_t id() const noexcept { return id_; }
  std::uint32_t next() const noexcept { return next_; }
  /// The files written, one per family, for ingest_shard.
  const std::vector<std::string>& paths() const noexcept { return paths_; }

 private:
  std::string dir_;
  std::uint64_t id_;
  std::uint32_t next_ = 0;
  std::uint64_t bytes_ = 0;
  bool complete_ = false;
  std::vector<std::string> paths_;
};

}  // namespace kaiwa::detail
