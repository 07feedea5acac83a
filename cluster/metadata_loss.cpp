// etcd's data lost (docs/cluster.md "When etcd's data is lost"): the cluster marker taken into
// the view and the cluster's id recorded in the data dir; a marker gone or another cluster's, or
// etcd's revision gone backwards, declared lost until a load finds the cluster again.
#include "cluster/detail/metadata_state.hpp"
#include "core/log.hpp"

namespace kaiwa::cluster {

bool metadata_agent::state::set_marker(std::optional<key_value> kv) {
  marker_kv = std::move(kv);
  marker = marker_kv ? decode_marker(marker_kv->value) : std::nullopt;
  if (marker_kv && !marker)
    log(log_level::error, "metadata_marker_damaged", {{"key", marker_kv->key}});
  if (!marker || !known_id.empty()) return false;
  known_id = marker->id;
  return true;
}

std::optional<std::string> metadata_agent::state::marker_problem(
    const std::optional<cluster_marker>& m) const {
  if (known_id.empty()) return std::nullopt;
  if (!m)
    return "the cluster's marker key " + marker_key + " is gone from etcd: its keys were " +
           "deleted, or etcd was started on an empty data dir, while this node's data is of "
           "cluster " +
           known_id;
  if (m->id != known_id)
    return "etcd holds the metadata of cluster " + m->id + " under " + cfg.prefix +
           ", but this node's data is of cluster " + known_id;
  return std::nullopt;
}

void metadata_agent::state::declare_lost(const std::string& what) {
  bool first = false;
  {
    std::lock_guard lock(view_mtx);
    if (lost.empty()) {
      first = true;
      lost = what;
      if (!shards.empty()) before = shards;
    }
  }
  if (!first) return;
  log(log_level::error, "metadata_lost",
      {{"node", cfg.node},
       {"what", what},
       {"effect",
        "the controller places, fails over and moves no shard until etcd holds this "
        "cluster's metadata again; shards keep the leaders they have while their in-sync "
        "replicas are all up, and no shard is placed anew over the replicas' data"},
       {"todo",
        "restore etcd from its latest snapshot (etcdctl snapshot restore; the nodes "
        "resynchronise by themselves, see docs/operations.md \"etcd's data lost\")"}});
  post(&state::resync_posted);
}

void metadata_agent::state::probe() {
  std::int64_t seen = 0;
  {
    // Read before the call: the watch may see later revisions while it runs.
    std::lock_guard lock(view_mtx);
    seen = seen_revision;
  }
  auto r = client.get(marker_key);
  if (!r.ok()) return;  // etcd unreachable: nothing to conclude (the lease says the rest)
  std::optional<std::string> problem;
  bool resync = false;
  {
    std::lock_guard lock(view_mtx);
    if (!lost.empty()) {
      resync = true;  // until a load finds the cluster again
    } else if (r->revision < seen) {
      problem = "etcd's revision went backwards (from " + std::to_string(seen) + " to " +
                std::to_string(r->revision) +
                "): it was restarted on an empty data dir or restored from an older backup";
    } else {
      problem = marker_problem(r->kvs.empty() ? std::nullopt : decode_marker(r->kvs.front().value));
    }
  }
  if (problem) declare_lost(*problem);
  if (resync) post(&state::resync_posted);
}

status metadata_agent::state::record_known() {
  std::string id;
  {
    std::lock_guard lock(view_mtx);
    id = known_id;
  }
  if (id == recorded) return {};
  if (!cfg.cluster_id_file.empty()) {
    if (auto r = record_id(cfg.cluster_id_file, id); !r.ok()) return r;
    log(log_level::info, "metadata_cluster_recorded",
        {{"node", cfg.node}, {"cluster", id}, {"file", cfg.cluster_id_file}});
  }
  recorded = id;
  return {};
}

bool metadata_agent::state::do_record() {
  auto r = record_known();
  if (!r.ok())
    log(log_level::error, "metadata_cluster_record_failed",
        {{"node", cfg.node}, {"error", r.err().message}});
  return r.ok();
}

}  // namespace kaiwa::cluster
