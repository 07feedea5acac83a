#pragma once
// Shard handovers as one node sees them: the shards it is handing away (old owner) and the
// subscribers of the shards it took over (new owner), and what a map arriving does to each
// shard. docs/cluster.md, "Moving a shard".
//
// Invariants:
// - A node serves a shard's rooms only while its map names it the owner and the shard is not
//   being handed away (`shard_status::owned`); the registries refuse everything else, so a
//   node that is not the owner never appends to the shard's rooms.
// - A handover stops the shard's rooms (each finishes its in-flight commit) before their data
//   is exported, and the new owner serves them only once the coordinator's next map names it:
//   between the two, the rooms answer `unavailable` on both nodes.
// - Maps sent while other moves are under way still name the old owner of a shard being
//   handed over: the old owner keeps such a shard `releasing` (its handover entry says so)
//   until a map names the new owner, and the new owner keeps the subscribers it received until
//   a map names it. Only a coordinator that restarted voids a handover (its map is the truth).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/shard.hpp"

namespace kaiwa::cluster {

/// Where a node stands with a shard. Written by the cluster actor, read by dispatch and the
/// registries (one atomic load each).
enum class shard_status : std::uint8_t {
  owned,      // this node serves its rooms
  releasing,  // being handed to another node: its rooms answer `unavailable`
  elsewhere,  // another node (or nobody known) owns it: commands go through the cluster actor
};

/// What a map arriving does to one shard (handovers::on_map); the cluster actor carries it out.
enum class map_step {
  none,         // nothing changes
  keep,         // this node's own handover of it is under way: it stays `releasing`
  restore,      // that handover was voided: its rooms get it back, subscribers included
  adopt,        // it became this node's: its rooms take the subscribers that came with it
  handed_over,  // the new owner has it: this node drops its data, `elsewhere`
  lost,         // it went elsewhere without a handover (a coordinator that restarted): `elsewhere`
};

/// The handovers of one node. `Released` is what the rooms of a shard gave up when stopped
/// (their subscribers: given back if the handover fails); `Adopted` is the subscribers that
/// came with a shard ingested here. Owned by the cluster actor; used on its thread only.
template <class Released, class Adopted>
class handovers {
 public:
  // -- the old owner ------------------------------------------------------------------------

  /// Starts handing `s` away (the caller marks it `releasing`). The handover's id: the rooms
  /// answer the release later, and an answer for a handover that was voided meanwhile (or
  /// replaced by a newer one of the same shard) must not land in another.
  std::uint64_t begin(shard_t s) {
    out_[s] = {{}, false, ++last_id_};
    return last_id_;
  }
  /// What the rooms of `s` gave up so far in handover `id`, to export or give back; nullptr
  /// when that handover is no longer under way.
  Released* released(shard_t s, std::uint64_t id) {
    auto h = out_.find(s);
    return h != out_.end() && h->second.id == id ? &h->second.rooms : nullptr;
  }
  /// Ends the handover of `s` as failed: what its rooms gave up, to give back; nullopt when no
  /// handover of `s` is under way.
  std::optional<Released> take_back(shard_t s) {
    auto h = out_.find(s);
    if (h == out_.end()) return std::nullopt;
    auto rooms = std::move(h->second.rooms);
    out_.erase(h);
    return rooms;
  }
  /// The coordinator went down: its next map is the truth about every handover it asked for.
  void coordinator_lost() {
    for (auto& [_, h] : out_) h.stale = true;
  }

  // -- the new owner ------------------------------------------------------------------------

  /// `s` was ingested here with `subscribers`, held until a map names this node its owner.
  void ingested(shard_t s, Adopted subscribers) { in_[s] = std::move(subscribers); }
  /// The subscribers that came with `s`, once; nullopt when none did.
  std::optional<Adopted> take_adopted(shard_t s) {
    auto it = in_.find(s);
    if (it == in_.end()) return std::nullopt;
    auto subs = std::move(it->second);
    in_.erase(it);
    return subs;
  }

  // -- a map arriving -----------------------------------------------------------------------

  /// What a map that names this node the owner of `s` or not (`ours`) does to `s`, which is
  /// `status` here now. A handover that ended (handed_over) is forgotten here.
  map_step on_map(shard_t s, bool ours, shard_status status) {
    auto h = out_.find(s);
    if (ours) {
      if (status == shard_status::owned) return map_step::none;
      if (h != out_.end()) return h->second.stale ? map_step::restore : map_step::keep;
      return map_step::adopt;
    }
    // The adopted subscribers of `s` stay: a map sent for another move may still name the old
    // owner.
    if (h != out_.end()) {
      out_.erase(h);
      return map_step::handed_over;
    }
    return status == shard_status::elsewhere ? map_step::none : map_step::lost;
  }

 private:
  struct handing_away {
    Released rooms;        // to give back to the rooms if the handover fails
    bool stale = false;    // the coordinator that asked for it went away
    std::uint64_t id = 0;  // begin()'s
  };
  std::map<shard_t, handing_away> out_;  // shards this node is handing away
  std::uint64_t last_id_ = 0;
  std::map<shard_t, Adopted> in_;  // subscribers of shards ingested here
};

/// A shard's exported files as they cross to the new owner, in one message: names (no
/// directories) and contents, in the same order.
struct shard_files {
  std::vector<std::string> names;
  std::vector<std::string> contents;
};

/// Reads the files the journal exported for a handover, whole.
shard_files read_shard_files(const std::vector<std::string>& paths);

/// Whether `name`, as the old owner sent it, is a plain file name (not empty, not `.` or `..`,
/// no `/`), so that writing it stays inside the staging directory.
bool plain_file_name(std::string_view name);

/// Writes `files` (names checked with plain_file_name) into `dir`, emptied first, for the
/// journal to ingest; appends their paths to `paths`. Returns why it failed, empty on success.
std::string write_shard_files(const std::string& dir, const shard_files& files,
                              std::vector<std::string>& paths);

}  // namespace kaiwa::cluster
