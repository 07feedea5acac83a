#pragma once
// The cluster's marker in etcd (`<prefix>cluster`, docs/cluster.md "When etcd's data is lost"):
// the id the first placement gave the cluster, and whether that placement finished. Written by
// the controller only (create-only, then once more to say "placed"), under its fence. Every node
// records the id in its data dir and publishes it in its member key, so a controller that finds
// the marker gone, or another cluster's, knows that replicas hold data etcd no longer describes
// and places nothing over them.

#include <optional>
#include <string>
#include <string_view>

#include "cluster/result.hpp"

namespace kaiwa::cluster {

struct cluster_marker {
  std::string id;       // 32 lowercase hex digits, random
  bool placed = false;  // every shard had an assignment once: a missing one is never placed anew
  friend bool operator==(const cluster_marker&, const cluster_marker&) = default;
};

/// 128 random bits as 32 lowercase hex digits.
std::string new_cluster_id();
/// A cluster id as new_cluster_id makes them.
bool valid_cluster_id(std::string_view id);

/// {"id":"...","placed":bool}. `m.id` must be valid.
std::string encode(const cluster_marker& m);
/// Strict: those two fields, each once, the id valid, at most 256 bytes; nullopt otherwise.
std::optional<cluster_marker> decode_marker(std::string_view json);

/// The cluster id recorded in the file at `path`: empty when there is no file; an error when it
/// can't be read or holds no valid id (a damaged record is not guessed at).
result<std::string> read_recorded_id(const std::string& path);
/// Records `id` in the file at `path`, durably (written to a temporary file, synced, renamed,
/// the directory synced), so a node that restarts still knows which cluster its data is of.
status record_id(const std::string& path, const std::string& id);

}  // namespace kaiwa::cluster
