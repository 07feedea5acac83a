#pragma once
// Storage for read models (projections, docs/read-side.md): column families beside the event log
// in the same RocksDB, reached through the journal (journal::read_batch() etc.).
//
// Keys are built by the projections and, like every key of the node, start with the room's
// shard (2 bytes, big-endian: `shard_prefix`), so a shard's read models move, are exported and
// are dropped with its events. After the shard, byte 0x00 is reserved for the projector's
// per-room offsets (`shard 0x00 room` -> be64 seq); a projection's own keys use tags >= 0x01.
//
// Writes are not synced and don't go through group commit: a projection writes its data and
// its offsets in one batch, so after a crash it resumes from an offset that matches its data
// (whatever was lost is applied again from the log).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/shard.hpp"
#include "storage/result.hpp"

namespace kaiwa::storage {

struct read_access;  // storage's own access to a batch's internals

/// The read models' column families: "read.rooms" (room lists, room directory, membership for
/// access checks) and "read.search" (the full-text index).
enum class read_family : std::uint8_t { rooms, search };
inline constexpr std::size_t read_family_count = 2;

/// The 2-byte big-endian prefix of every key of `shard`.
std::string shard_prefix(shard_t shard);

/// Writes of one projection step. `get` sees the batch's own writes first (RocksDB's
/// WriteBatchWithIndex), so several events of one room can be applied in one batch.
class read_batch {
 public:
  read_batch(read_batch&&) noexcept;
  read_batch& operator=(read_batch&&) noexcept;
  ~read_batch();

  void put(read_family f, std::string_view key, std::string_view value);
  void del(read_family f, std::string_view key);
  result<std::optional<std::string>> get(read_family f, std::string_view key) const;
  /// Operations in the batch, and their bytes (to bound a batch).
  std::size_t count() const;
  std::size_t bytes() const;

 private:
  friend struct read_access;
  struct impl;
  explicit read_batch(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// An ordered walk over committed read-model data of one family, on a consistent snapshot
/// taken when it was made. Not thread-safe; one per query.
class read_cursor {
 public:
  virtual ~read_cursor() = default;
  virtual void seek(std::string_view key) = 0;           // first key >= key
  virtual void seek_for_prev(std::string_view key) = 0;  // last key <= key
  virtual void next() = 0;
  virtual bool valid() const = 0;
  virtual std::string_view key() const = 0;    // valid only while valid() and until it moves
  virtual std::string_view value() const = 0;  // valid only while valid() and until it moves
  /// An error that ended the walk (valid() is then false).
  virtual status state() const = 0;
};

}  // namespace kaiwa::storage
