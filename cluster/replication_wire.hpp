#pragma once
// The byte form of replication's messages between nodes (docs/cluster.md "Replication and
// failover"): a leader's append request, a follower's answer, and the epoch-history exchange a
// follower reconciles with. They come from the cluster port, so a decoder reads lengths and counts
// only against the bytes that are there (nothing is allocated by a declared size), bounds every
// part, and refuses trailing bytes. Little-endian fixed-width integers, u32-length-prefixed
// strings, like the rest of kaiwa's cluster wire (actors/detail/wire.hpp).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/leader_epochs.hpp"
#include "core/shard.hpp"

namespace kaiwa::cluster {

/// Entries one append may carry, and their bytes together: a batch is what a leader sends a
/// follower in one go (more waits for the answer). Default: 1,024 entries, 32 MiB
inline constexpr std::size_t max_append_entries = 1024;
inline constexpr std::size_t max_append_bytes = std::size_t{32} << 20;
/// An epoch history longer than this is refused: it has one entry per change of leader that
/// the retained log still holds.
inline constexpr std::size_t max_history_entries = 4096;

struct wire_entry {
  epoch_t epoch = 0;
  std::string payload;  // storage/replica_payload.hpp's bytes

  friend bool operator==(const wire_entry&, const wire_entry&) = default;
};

/// Leader -> follower: entries from offset `first`, and the high watermark.
struct append_message {
  shard_t shard = 0;
  epoch_t epoch = 0;
  offset_t first = 0;
  offset_t high_watermark = 0;
  std::vector<wire_entry> entries;

  friend bool operator==(const append_message&, const append_message&) = default;
};

/// Follower -> leader: what it did with an append (follower_state's decision).
struct append_answer {
  enum class kind : std::uint8_t {
    appended = 0,
    stale = 1,
    reconcile = 2,
    behind = 3,
    invalid = 4
  };
  shard_t shard = 0;
  kind what = kind::appended;
  epoch_t epoch = 0;     // stale: the follower's; else the leader's, echoed
  offset_t log_end = 0;  // the follower's log end after the append (its ack), or where it ends

  friend bool operator==(const append_answer&, const append_answer&) = default;
};

/// Follower -> leader: "send me your epoch history"; leader -> follower: the history, with the
/// leader's epoch and log end.
struct history_request {
  shard_t shard = 0;
  epoch_t epoch = 0;  // the epoch of the leader the follower wants to follow

  friend bool operator==(const history_request&, const history_request&) = default;
};
struct history_message {
  shard_t shard = 0;
  epoch_t epoch = 0;
  offset_t log_end = 0;
  std::vector<leader_epochs::entry> history;

  friend bool operator==(const history_message&, const history_message&) = default;
};

/// A snapshot of the shard (its SST files, journal::export_shard) for a follower whose next
/// entry the leader's log no longer holds, in chunks of at most this many bytes, one in flight
/// at a time. Default: 1 MiB
inline constexpr std::size_t max_snapshot_chunk = std::size_t{1} << 20;
/// A snapshot file's name: a column family's (export_shard names each file after its family),
/// checked before it becomes part of a path.
inline constexpr std::size_t max_snapshot_file_name = 32;

/// Leader -> follower: chunk `seq` (from 0) of snapshot `id`: `data` goes at the end of the file
/// `file`. `last`: the snapshot's final chunk, after which the follower installs it.
struct snapshot_chunk {
  shard_t shard = 0;
  epoch_t epoch = 0;
  std::uint64_t id = 0;
  std::uint32_t seq = 0;
  std::string file;
  bool last = false;
  std::string data;
  friend bool operator==(const snapshot_chunk&, const snapshot_chunk&) = default;
};
/// Follower -> leader: the chunks of snapshot `id` before `next` are written; `installed`: the
/// snapshot is the follower's shard now (the leader sends it the log from there).
struct snapshot_ack {
  shard_t shard = 0;
  epoch_t epoch = 0;
  std::uint64_t id = 0;
  std::uint32_t next = 0;
  bool installed = false;
  friend bool operator==(const snapshot_ack&, const snapshot_ack&) = default;
};

/// A snapshot file name as the follower accepts it: 1 to max_snapshot_file_name of [a-z.],
/// not starting with a dot.
bool valid_snapshot_file(std::string_view name);

std::string encode(const append_message& m);
std::string encode(const append_answer& m);
std::string encode(const history_request& m);
std::string encode(const history_message& m);
std::string encode(const snapshot_chunk& m);
std::string encode(const snapshot_ack& m);

/// Nullopt for bytes that are not exactly one such message within the bounds above (a history
/// must also be one leader_epochs::from accepts).
std::optional<append_message> decode_append(std::string_view bytes);
std::optional<append_answer> decode_answer(std::string_view bytes);
std::optional<history_request> decode_history_request(std::string_view bytes);
std::optional<history_message> decode_history(std::string_view bytes);
/// A chunk must also have a valid file name and at most max_snapshot_chunk bytes.
std::optional<snapshot_chunk> decode_snapshot_chunk(std::string_view bytes);
std::optional<snapshot_ack> decode_snapshot_ack(std::string_view bytes);

/// The shard a message is about, read without decoding the rest (every kind starts with its
/// type, then the shard): for the node's replication actor to pick the shard's replica, which
/// decodes the message whole. nullopt when `bytes` doesn't start as a message does.
std::optional<shard_t> shard_of_message(std::string_view bytes);

}  // namespace kaiwa::cluster
