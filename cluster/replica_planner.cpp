#include "cluster/replica_planner.hpp"

#include <algorithm>
#include <optional>

namespace kaiwa::cluster {

namespace {

/// Shards each node leads in `a`.
std::map<std::string, std::size_t> leader_counts(const assignments& a) {
  std::map<std::string, std::size_t> n;
  for (auto& [s, x] : a) ++n[x.leader];
  return n;
}

/// The live in-sync replica (other than `excluded`) that leads the fewest shards; ties go to
/// the earlier in the replica list (so the preferred leader wins when it can).
std::optional<std::string> pick_leader(const shard_assignment& a, const node_set& live,
                                       const std::map<std::string, std::size_t>& leads,
                                       const std::string& excluded) {
  std::optional<std::string> best;
  std::size_t best_leads = 0;
  for (auto& r : a.replicas) {
    if (r == excluded || !live.contains(r) || !a.in_sync(r)) continue;
    auto it = leads.find(r);
    auto n = it == leads.end() ? 0 : it->second;
    if (!best || n < best_leads) {
      best = r;
      best_leads = n;
    }
  }
  return best;
}

/// `a` led by `leader` from the next epoch, its isr without members that are not live (or are
/// `excluded`).
shard_assignment promoted(shard_assignment a, const std::string& leader, const node_set& live,
                          const std::string& excluded) {
  a.leader = leader;
  ++a.epoch;
  std::erase_if(a.isr, [&](const std::string& r) { return r == excluded || !live.contains(r); });
  return a;
}

}  // namespace

assignments plan_initial(std::uint32_t shards, const std::vector<std::string>& nodes,
                         std::size_t replication_factor) {
  assignments out;
  auto sorted = nodes;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  if (sorted.empty()) return out;
  auto rf = std::clamp<std::size_t>(replication_factor, 1, std::min(sorted.size(), max_replicas));
  for (std::uint32_t s = 0; s < shards; ++s) {
    shard_assignment a;
    a.epoch = 1;
    for (std::size_t k = 0; k < rf; ++k) a.replicas.push_back(sorted[(s + k) % sorted.size()]);
    a.isr = a.replicas;
    a.leader = a.replicas.front();
    out.emplace(static_cast<shard_t>(s), std::move(a));
  }
  return out;
}

failover_plan plan_failover(const assignments& current, const node_set& live) {
  failover_plan plan;
  auto leads = leader_counts(current);
  for (auto& [s, a] : current) {
    if (live.contains(a.leader)) continue;
    auto next = pick_leader(a, live, leads, a.leader);
    if (!next) {
      plan.stranded.push_back(s);
      continue;
    }
    --leads[a.leader];
    ++leads[*next];
    plan.changes.emplace(s, promoted(a, *next, live, a.leader));
  }
  return plan;
}

assignments plan_restarted(const assignments& current, const std::set<shard_t>& which,
                           const node_set& live) {
  assignments out;
  auto leads = leader_counts(current);
  for (auto s : which) {
    auto it = current.find(s);
    if (it == current.end() || !live.contains(it->second.leader)) continue;
    auto& a = it->second;
    auto next = pick_leader(a, live, leads, a.leader).value_or(a.leader);
    --leads[a.leader];
    ++leads[next];
    out.emplace(s, promoted(a, next, live, {}));
  }
  return out;
}

assignments plan_preferred_leaders(const assignments& current, const node_set& live,
                                   std::size_t max_changes) {
  assignments out;
  for (auto& [s, a] : current) {
    if (out.size() == max_changes) break;
    auto& preferred = a.replicas.front();
    if (a.leader == preferred || !live.contains(a.leader) || !live.contains(preferred) ||
        !a.in_sync(preferred))
      continue;
    auto b = a;
    b.leader = preferred;
    ++b.epoch;
    out.emplace(s, std::move(b));
  }
  return out;
}

failover_plan plan_removal(const assignments& current, const std::string& removed,
                           const node_set& live) {
  failover_plan plan;
  auto leads = leader_counts(current);
  std::map<std::string, std::size_t> holds;  // replicas each live node holds, as the plan goes
  for (auto& n : live)
    if (n != removed) holds[n] = 0;
  for (auto& [s, a] : current)
    for (auto& r : a.replicas)
      if (auto it = holds.find(r); it != holds.end()) ++it->second;

  for (auto& [s, a] : current) {
    if (!a.holds(removed)) continue;
    auto b = a;
    if (a.leader == removed) {
      auto next = pick_leader(a, live, leads, removed);
      if (!next) {
        plan.stranded.push_back(s);
        continue;
      }
      --leads[removed];
      ++leads[*next];
      b = promoted(a, *next, live, removed);
    }
    std::erase(b.replicas, removed);
    std::erase(b.isr, removed);
    // The least-loaded live node that isn't a replica yet (map order: ties by id).
    std::optional<std::string> add;
    for (auto& [n, count] : holds)
      if (!b.holds(n) && (!add || count < holds[*add])) add = n;
    if (add) {
      b.replicas.push_back(*add);
      ++holds[*add];
    }
    plan.changes.emplace(s, std::move(b));
  }
  return plan;
}

}  // namespace kaiwa::cluster
