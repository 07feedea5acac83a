// The controller's rounds, on the node that holds the controller key: first placement, failover,
// new epochs for a restarted leader's shards, the operators' requests' next steps and preferred
// leaders, written as batched compare-and-swaps fenced by the controller's term.
#include <algorithm>

#include "cluster/detail/metadata_state.hpp"
#include "core/log.hpp"

namespace kaiwa::cluster {

namespace {

/// How many leaders a round moves back to their preferred replicas (once a second:
/// metadata_agent.cpp).
constexpr std::size_t preferred_per_round = 8;
/// A controller round whose writes keep meeting conflicts re-reads and re-plans this often, then
/// waits for the next trigger (a watch event, the next second).
constexpr int max_replans = 3;

}  // namespace

void metadata_agent::state::written(const std::vector<assignment_write>& batch,
                                    std::int64_t revision, std::int64_t term) {
  std::vector<shard_t> which;
  {
    std::lock_guard lock(view_mtx);
    for (auto& w : batch) {
      merge(w.shard, {w.next, revision});
      which.push_back(w.shard);
    }
  }
  log(log_level::info, "metadata_assignments_written",
      {{"count", which.size()}, {"shards", join(which)}, {"term", term}});
}

result<metadata_agent::state::placement> metadata_agent::state::may_place(
    const std::optional<key_value>& mark, const std::optional<cluster_marker>& mk,
    const node_set& live, std::size_t assigned, std::int64_t term) {
  if (!mk) {
    if (assigned == 0 && live.size() < cfg.replication_factor) return placement::none;
    cluster_marker fresh{new_cluster_id(), assigned == cfg.shards};
    auto r = client.txn(
        {elect.fence(term), compare::create_revision(marker_key, compare_result::equal, 0)},
        {txn_op::put(marker_key, encode(fresh))}, {});
    if (!r.ok()) {
      log(log_level::warn, "metadata_marker_write_failed", {{"error", r.err().message}});
      return r.err();
    }
    if (r->succeeded)
      log(log_level::info, "metadata_cluster_created",
          {{"cluster", fresh.id}, {"placed", fresh.placed}});
    return placement::wait;
  }
  if (!mk->placed) {
    if (assigned < cfg.shards)
      return live.size() >= cfg.replication_factor ? placement::place : placement::none;
    auto done = *mk;
    done.placed = true;
    auto r = client.txn({elect.fence(term), compare::mod_revision(marker_key, compare_result::equal,
                                                                  mark->mod_revision)},
                        {txn_op::put(marker_key, encode(done))}, {});
    if (!r.ok()) {
      log(log_level::warn, "metadata_marker_write_failed", {{"error", r.err().message}});
      return r.err();
    }
    return placement::none;
  }
  if (assigned < cfg.shards && !missing_logged) {
    std::vector<shard_t> missing;
    {
      std::lock_guard lock(view_mtx);
      for (shard_t s = 0; s < cfg.shards; ++s)
        if (!shards.contains(s)) missing.push_back(s);
    }
    log(log_level::error, "metadata_assignments_missing",
        {{"count", missing.size()},
         {"shards", join(missing)},
         {"effect",
          "not placed anew: their replicas may hold data at a higher epoch; they "
          "are unavailable"},
         {"todo",
          "restore etcd from its latest snapshot (docs/operations.md \"etcd's data "
          "lost\")"}});
  }
  missing_logged = assigned < cfg.shards;
  return placement::none;
}

bool metadata_agent::state::reconcile(bool preferred, std::vector<shard_t>& last_stranded) {
  for (int round = 0; round < max_replans; ++round) {
    auto term = my_term();
    if (!term) return true;
    node_set live;
    std::map<shard_t, versioned_assignment> current;
    std::set<shard_t> restarted;  // led by a member that registered since they were written
    std::optional<key_value> mark;
    std::optional<cluster_marker> mk;
    std::map<std::string, std::string> foreign;  // members naming a cluster etcd has no marker of
    std::size_t held_now = 0;
    {
      std::lock_guard lock(view_mtx);
      if (!lost.empty()) return true;  // writes nothing over data etcd doesn't describe
      for (auto& [id, m] : members)
        if (!m.cluster.empty() && (!marker || m.cluster != marker->id))
          foreign.emplace(id, m.cluster);
        else
          live.insert(id);
      // A held shard is written again only by someone else (an operator): then it is the
      // controller's again.
      std::erase_if(held, [&](shard_t s) {
        auto it = shards.find(s);
        return it != shards.end() && it->second.mod_revision > recovered_at;
      });
      held_now = held.size();
      for (auto& [s, a] : shards)
        if (!held.contains(s)) current.emplace(s, a);
      for (auto& [s, a] : current)
        if (auto it = members.find(a.assignment.leader);
            it != members.end() && it->second.registered > a.mod_revision)
          restarted.insert(s);
      mark = marker_kv;
      mk = marker;
    }
    if (!foreign.empty() && !mk) {
      auto& [id, cluster] = *foreign.begin();
      declare_lost("member " + id + "'s data is of cluster " + cluster +
                   ", but etcd holds no cluster marker (" + marker_key +
                   "): etcd's data was lost while that member's replicas hold data");
      return true;
    }
    if (foreign != last_foreign) {
      for (auto& [id, cluster] : foreign)
        if (!last_foreign.contains(id))
          log(log_level::error, "metadata_member_foreign",
              {{"member", id},
               {"cluster", cluster},
               {"etcd_cluster", mk->id},
               {"effect", "it gets no shard: its data is of another cluster"}});
      last_foreign = foreign;
    }
    assignments plain;
    for (auto& [s, a] : current) plain.emplace(s, a.assignment);

    std::vector<assignment_write> writes;
    auto placing = may_place(mark, mk, live, current.size() + held_now, *term);
    if (!placing.ok()) return false;
    if (*placing == placement::wait) return true;
    if (*placing == placement::place) {
      auto initial = plan_initial(cfg.shards, {live.begin(), live.end()}, cfg.replication_factor);
      for (auto& [s, a] : initial)
        if (!current.contains(s)) writes.push_back({s, std::move(a), 0});
    }
    auto failover = plan_failover(plain, live);
    for (auto& [s, a] : failover.changes)
      writes.push_back({s, std::move(a), current.at(s).mod_revision});
    if (failover.stranded != last_stranded) {
      if (!failover.stranded.empty())
        log(log_level::error, "metadata_shards_stranded",
            {{"count", failover.stranded.size()}, {"shards", join(failover.stranded)}});
      last_stranded = failover.stranded;
    }
    // A leader that registered again (its process restarted within its lease's TTL, so no
    // failover ran) does not lead the epoch it led before: a new epoch for its shards.
    auto again = plan_restarted(plain, restarted, live);
    if (!again.empty()) {
      std::vector<shard_t> which;
      for (auto& [s, a] : again) which.push_back(s);
      log(log_level::info, "metadata_restarted_leader",
          {{"count", which.size()}, {"shards", join(which)}});
    }
    for (auto& [s, a] : again) writes.push_back({s, a, current.at(s).mod_revision});
    std::vector<request_end> ends;
    std::set<std::string> drained;
    std::set<shard_t> moving;
    plan_requests(current, plain, live, writes, ends, drained, moving);
    if (preferred) {
      // Not onto a drained node, and not on a shard written above (a restarted leader's
      // new epoch among them) or a move is under way on.
      node_set eligible;
      for (auto& n : live)
        if (!drained.contains(n)) eligible.insert(n);
      auto settled = plain;
      for (auto& w : writes) settled.erase(w.shard);
      for (auto s : moving) settled.erase(s);
      for (auto& [s, a] : plan_preferred_leaders(settled, eligible, preferred_per_round))
        writes.push_back({s, std::move(a), current.at(s).mod_revision});
    }
    if (!ends.empty() && !end_requests(ends, *term)) return false;
    if (writes.empty()) return true;

    // In batches (a dead node's hundreds of shards in a few round trips). A batch that fails a
    // condition: if the term ended, the round stops; otherwise (a leader changed its isr
    // meanwhile) its shards are tried one at a time, so the others go through, and the round
    // reloads and plans the conflicting ones again.
    std::vector<compare> fence{elect.fence(*term)};
    bool conflict = false;
    auto write = [&](const std::vector<assignment_write>& batch) {
      auto r = store.update_all(batch, fence);
      if (!r.ok())
        log(log_level::warn, "metadata_assignments_write_failed",
            {{"count", batch.size()}, {"error", r.err().message}});
      else if (*r)
        written(batch, **r, *term);
      return r;
    };
    for (std::size_t i = 0; i < writes.size(); i += assignment_store::max_batch) {
      if (!my_term()) return true;
      auto end = std::min(writes.size(), i + assignment_store::max_batch);
      std::vector<assignment_write> batch(writes.begin() + i, writes.begin() + end);
      auto r = write(batch);
      if (!r.ok()) return false;
      if (*r) continue;
      conflict = true;
      auto holder = elect.current();
      if (!holder.ok()) return false;
      if (!*holder || (*holder)->term != *term) {
        log(log_level::warn, "metadata_controller_deposed", {{"node", cfg.node}, {"term", *term}});
        return true;
      }
      if (batch.size() == 1) continue;
      for (auto& w : batch) {
        if (!my_term()) return true;
        auto one = write({w});
        if (!one.ok()) return false;
      }
    }
    // The marker is marked placed at once (the next round), not at the next second's.
    if (*placing == placement::place) post(&state::reconcile_posted);
    if (!conflict) return true;
    auto t = store.load();
    if (!t.ok()) return false;
    std::lock_guard lock(view_mtx);
    for (auto& [s, a] : t->shards) merge(s, std::move(a));
  }
  return true;
}

}  // namespace kaiwa::cluster
