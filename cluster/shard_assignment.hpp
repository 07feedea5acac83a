#pragma once
// A shard's replica assignment, as the cluster's metadata in etcd holds it (one key per shard,
// docs/cluster.md "Metadata in etcd"): which nodes keep the shard's data, which of them lead it,
// which are in sync, and the epoch that fences every leader but the current one.
//
// The invariants (checked by `valid`, so an assignment that breaks them is never stored and one
// read from etcd that breaks them is refused as damaged):
// - replicas: 1 to max_replicas distinct node ids (core/ids.hpp valid_name);
// - isr (the in-sync replicas): a non-empty subset of replicas, holding every event acked so far;
// - leader: a member of isr, so a leader chosen from the isr has every acked event;
// - epoch >= 1, raised on every change of leader, so of two leaders the one with the higher
//   epoch is the current one and followers refuse appends of a lower one.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::cluster {

/// Replicas one shard may have: replication factor 3 is the default, 5 the most a deployment
/// needs to survive two failures; 7 leaves room and bounds what a decode accepts.
inline constexpr std::size_t max_replicas = 7;

struct shard_assignment {
  std::uint64_t epoch = 0;
  std::string leader;
  std::vector<std::string> replicas;  // in placement order
  std::vector<std::string> isr;       // a subset of replicas

  bool in_sync(std::string_view node) const;
  bool holds(std::string_view node) const;  // node is one of the replicas

  friend bool operator==(const shard_assignment&, const shard_assignment&) = default;
};

/// Why `a` breaks an invariant above; nullopt when it holds them all.
std::optional<std::string> invalid_reason(const shard_assignment& a);
inline bool valid(const shard_assignment& a) { return !invalid_reason(a); }

/// `{"epoch":N,"leader":"..","replicas":[..],"isr":[..]}`: JSON, so that `etcdctl get` shows an
/// operator what the node sees. `a` must be valid.
std::string encode(const shard_assignment& a);
/// Strict: exactly those four fields, of those types, at most 4 KiB, and valid; nullopt for
/// anything else (what etcd holds is checked like any other input).
std::optional<shard_assignment> decode_assignment(std::string_view json);

}  // namespace kaiwa::cluster
