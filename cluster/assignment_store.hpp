#pragma once
// The shards' replica assignments in etcd (docs/cluster.md "Metadata in etcd"): one key per
// shard, `<prefix>shards/<shard, 5 digits>` -> shard_assignment JSON. Every change is a
// compare-and-swap on the key's mod revision, so two writers can't both change a shard from the
// same state; a writer adds its own fence (the controller's term, election.hpp), so a deposed one
// writes nothing. Nodes follow the assignments by a watch on the prefix (etcd_client::watch with
// `shards_prefix()`; `parse_event` reads its events).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/etcd_client.hpp"
#include "cluster/result.hpp"
#include "cluster/shard_assignment.hpp"
#include "core/shard.hpp"

namespace kaiwa::cluster {

/// An assignment as read, with the mod revision a change of it must name.
struct versioned_assignment {
  shard_assignment assignment;
  std::int64_t mod_revision = 0;
};

struct assignment_table {
  std::int64_t revision = 0;  // etcd's revision at the read: watch from revision + 1
  std::map<shard_t, versioned_assignment> shards;  // the shards that have an assignment
};

/// One shard's change in a batch (assignment_store::update_all).
struct assignment_write {
  shard_t shard = 0;
  shard_assignment next;
  std::int64_t expected = 0;  // the key's mod revision it replaces; 0: only if it has none
};

/// What a watch event says of one shard.
struct assignment_change {
  shard_t shard = 0;
  std::optional<versioned_assignment> now;  // nullopt: the key was deleted
};

class assignment_store {
 public:
  /// `prefix`: the cluster's key prefix (e.g. "/kaiwa/<cluster>/"); `shards`: the cluster's
  /// shard count (a key of a shard past it is refused). `client` must outlive this.
  assignment_store(etcd_client& client, std::string prefix, std::uint32_t shards);

  /// Every shard's assignment, at one revision. errc::protocol when a key or value is not one
  /// this store writes (damaged metadata: the node must not guess).
  result<assignment_table> load();

  /// Writes `next` for `shard` if its key is still at `expected` (its mod revision; 0: only if
  /// it has none) and every condition of `fence` holds. The new mod revision on success;
  /// nullopt when a condition failed (someone changed it first, or the writer is deposed): the
  /// caller re-reads and decides again. errc::invalid when `next` is not valid.
  result<std::optional<std::int64_t>> update(shard_t shard, const shard_assignment& next,
                                             std::int64_t expected,
                                             const std::vector<compare>& fence);

  /// Writes every shard of `writes` or none, in one transaction: each at its `expected` mod
  /// revision, and every condition of `fence`. The new mod revision (the same for all) on
  /// success; nullopt when a condition failed. A controller failing a dead node's shards over
  /// writes hundreds in a few round trips instead of one each. errc::invalid when a `next` is
  /// not valid, a shard is past the count or named twice, or there are more than max_batch.
  result<std::optional<std::int64_t>> update_all(const std::vector<assignment_write>& writes,
                                                 const std::vector<compare>& fence);
  /// Shards one update_all writes at most: etcd takes 128 compares and 128 operations a
  /// transaction (its default --max-txn-ops), and the fence needs a compare or two.
  static constexpr std::size_t max_batch = 100;

  const std::string& shards_prefix() const noexcept { return shards_prefix_; }
  std::string key_of(shard_t shard) const;
  /// The change one watch event of shards_prefix() makes; errc::protocol when it is not one
  /// this store writes.
  result<assignment_change> parse_event(const watch_event& e) const;

 private:
  std::optional<shard_t> shard_of_key(const std::string& key) const;

  etcd_client& client_;
  std::string shards_prefix_;
  std::uint32_t shards_;
};

}  // namespace kaiwa::cluster
