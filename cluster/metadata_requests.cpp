// Operators' moves, drains and removals (docs/cluster.md "Moves, drains and removals with
// etcd"): each a key under <prefix>requests/, written by the asking node's worker and answered
// when the view shows it ended; carried out step by step by the controller's rounds
// (plan_requests, end_requests), whichever node controls.
#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "cluster/detail/metadata_state.hpp"
#include "cluster/replica_moves.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"

namespace kaiwa::cluster {

std::string metadata_agent::state::move_key(shard_t shard) const {
  auto n = std::to_string(shard);
  return requests_prefix + "move/" + std::string(5 - std::min<std::size_t>(5, n.size()), '0') + n;
}
std::string metadata_agent::state::drain_key(const std::string& node) const {
  return requests_prefix + "drain/" + node;
}
std::string metadata_agent::state::removal_key(const std::string& node) const {
  return requests_prefix + "remove/" + node;
}

std::optional<std::string> metadata_agent::state::outcome(const waiter& w) const {
  auto it = requests.find(w.key);
  bool present = it != requests.end() && it->second.create_revision == w.created;
  if (w.what == waiter::kind::drain) {
    if (present) {
      auto d = decode_drain(it->second.value);
      if (d && d->finished) return std::string{};
      return std::nullopt;
    }
    if (seen_revision < w.created) return std::nullopt;
    return "the drain of " + w.node +
           " ended before it finished: its lease ended (it stopped "
           "or restarted)";
  }
  if (present || seen_revision < w.created) return std::nullopt;
  if (w.what == waiter::kind::move) {
    auto a = shards.find(w.shard);
    if (a != shards.end() && a->second.assignment.leader == w.node) return std::string{};
    if (!members.contains(w.node)) return "the move was abandoned: " + w.node + " is not live";
    return "the move was abandoned (the controller's log says why)";
  }
  if (members.contains(w.node))
    return w.node +
           " is live: only a member that is gone can be "
           "removed";
  std::vector<shard_t> left;
  for (auto& [s, a] : shards)
    if (a.assignment.holds(w.node)) left.push_back(s);
  if (left.empty()) return std::string{};
  return "shards " + join(left) + " still hold " + w.node +
         ": none of their in-sync replicas is live to lead them";
}

void metadata_agent::state::settle_waiters() {
  std::vector<std::pair<request_done, std::string>> answers;
  std::optional<std::chrono::milliseconds> drained_now;
  {
    std::lock_guard lock(view_mtx);
    std::erase_if(waiters, [&](waiter& w) {
      auto o = outcome(w);
      if (!o) return false;
      answers.emplace_back(std::move(w.done), std::move(*o));
      return true;
    });
    // Only a drain of this session: a restarted node may still see the last one's drain key
    // until that session's lease expires.
    if (auto it = requests.find(drain_key(cfg.node));
        it != requests.end() && it->second.create_revision != drained_delivered && session &&
        it->second.lease == session->id()) {
      auto d = decode_drain(it->second.value);
      if (d && d->finished) {
        drained_delivered = it->second.create_revision;
        drained_now = d->grace;
      }
    }
  }
  for (auto& [done, err] : answers) done(std::move(err));
  if (drained_now && ev.drained) ev.drained(*drained_now);
}

void metadata_agent::state::expire_waiters() {
  auto now = steady::now();
  std::vector<waiter> expired;
  {
    std::lock_guard lock(view_mtx);
    std::erase_if(waiters, [&](waiter& w) {
      if (w.deadline > now) return false;
      expired.push_back(std::move(w));
      return true;
    });
  }
  for (auto& w : expired) {
    // Only the request this waiter wrote (a later one for the same key is someone else's).
    auto r = client.txn({compare::create_revision(w.key, compare_result::equal, w.created)},
                        {txn_op::del(w.key)}, {});
    if (!r.ok())
      log(log_level::warn, "metadata_request_withdraw_failed",
          {{"key", w.key}, {"error", r.err().message}});
    w.done(
        "timeout: not finished in time; withdrawn at the step it reached (kaiwa shards "
        "shows where)");
  }
}

void metadata_agent::state::submit(waiter w, const std::string& value, std::int64_t lease) {
  {
    // Only the worker adds waiters: a request written here always gets its waiter.
    std::lock_guard lock(view_mtx);
    if (waiters.size() >= max_requests) return w.done("too many requests under way");
  }
  auto r = client.txn({compare::create_revision(w.key, compare_result::equal, 0)},
                      {txn_op::put(w.key, value, lease)}, {txn_op::get(w.key)});
  if (!r.ok()) return w.done("etcd: " + r.err().message);
  if (r->succeeded) {
    w.created = r->revision;
  } else {
    if (w.what != waiter::kind::drain || r->responses.empty() || r->responses.front().kvs.empty())
      return w.done("one is under way already (" + w.key + ")");
    w.created = r->responses.front().kvs.front().create_revision;
  }
  {
    std::lock_guard lock(view_mtx);
    waiters.push_back(std::move(w));
  }
  post(&state::reconcile_posted);
  settle_waiters();
}

void metadata_agent::state::submit_move(shard_t shard, std::string to,
                                        std::chrono::milliseconds timeout, request_done done) {
  move_request m{to, ""};
  {
    std::lock_guard lock(view_mtx);
    auto a = shards.find(shard);
    if (shard >= cfg.shards || a == shards.end())
      return done("shard " + std::to_string(shard) + " has no assignment yet");
    if (!lost.empty() || held.contains(shard))
      return done("etcd's data was lost: the controller moves nothing (kaiwa cluster says why)");
    if (!members.contains(to)) return done(to + " is not a live member");
    if (a->second.assignment.leader == to) return done({});  // nothing to do
    if (!a->second.assignment.holds(to)) m.from = a->second.assignment.leader;
  }
  waiter w{waiter::kind::move, move_key(shard), 0, steady::now() + timeout, shard, to,
           std::move(done)};
  submit(std::move(w), encode(m), 0);
}

void metadata_agent::state::submit_drain(std::string node, std::chrono::milliseconds grace,
                                         std::chrono::milliseconds timeout, request_done done) {
  std::int64_t lease = 0;
  {
    std::lock_guard lock(view_mtx);
    auto it = members.find(node);
    if (it == members.end()) return done(node + " is not a live member");
    lease = it->second.lease;
  }
  waiter w{waiter::kind::drain, drain_key(node), 0, steady::now() + timeout, 0, node,
           std::move(done)};
  submit(std::move(w), encode(drain_request{grace, false}), lease);
}

void metadata_agent::state::submit_removal(std::string node, std::chrono::milliseconds timeout,
                                           request_done done) {
  {
    std::lock_guard lock(view_mtx);
    if (members.contains(node))
      return done(node + " is live: stop it first (only a member that is gone can be removed)");
    if (std::none_of(shards.begin(), shards.end(),
                     [&](auto& s) { return s.second.assignment.holds(node); }))
      return done(node + " holds no replica");
  }
  waiter w{waiter::kind::removal, removal_key(node), 0, steady::now() + timeout, 0, node,
           std::move(done)};
  submit(std::move(w), "{}", 0);
}

void metadata_agent::state::plan_requests(const std::map<shard_t, versioned_assignment>& current,
                                          const assignments& plain, const node_set& live,
                                          std::vector<assignment_write>& writes,
                                          std::vector<request_end>& ends,
                                          std::set<std::string>& drained,
                                          std::set<shard_t>& moving) {
  std::map<std::string, key_value> reqs;
  {
    std::lock_guard lock(view_mtx);
    reqs = requests;
  }
  std::set<shard_t> taken;
  for (auto& w : writes) taken.insert(w.shard);
  auto add = [&](shard_t s, shard_assignment next) {
    if (!taken.insert(s).second) return;
    writes.push_back({s, std::move(next), current.at(s).mod_revision});
  };
  std::map<std::string, key_value> drains;
  for (auto& [key, kv] : reqs) {
    auto rest = std::string_view(key).substr(requests_prefix.size());
    if (rest.starts_with("move/")) {
      auto m = decode_move(kv.value);
      char* end = nullptr;
      auto digits = std::string(rest.substr(5));
      auto n = std::strtoul(digits.c_str(), &end, 10);
      if (!m || digits.size() != 5 || *end || n >= cfg.shards || !current.contains(n)) {
        log(log_level::error, "metadata_request_damaged", {{"key", key}});
        ends.push_back({kv, std::nullopt});
        continue;
      }
      auto s = static_cast<shard_t>(n);
      moving.insert(s);
      auto step = next_move_step(current.at(s).assignment, *m, live);
      switch (step.what) {
        case move_step::kind::write:
          add(s, std::move(step.next));
          break;
        case move_step::kind::wait:
          break;
        case move_step::kind::done:
          log(log_level::info, "metadata_move_done", {{"shard", std::uint64_t{s}}, {"to", m->to}});
          ends.push_back({kv, std::nullopt});
          break;
        case move_step::kind::abandon:
          log(log_level::warn, "metadata_move_abandoned",
              {{"shard", std::uint64_t{s}}, {"to", m->to}, {"why", step.why}});
          ends.push_back({kv, std::nullopt});
          break;
      }
    } else if (rest.starts_with("drain/")) {
      auto node = std::string(rest.substr(6));
      if (!valid_name(node) || !decode_drain(kv.value)) {
        log(log_level::error, "metadata_request_damaged", {{"key", key}});
        continue;  // under the node's lease: it goes with it
      }
      drained.insert(node);
      drains.emplace(node, kv);
    } else if (rest.starts_with("remove/")) {
      auto node = std::string(rest.substr(7));
      if (!valid_name(node) || live.contains(node)) {
        ends.push_back({kv, std::nullopt});
        continue;
      }
      auto plan = plan_removal(plain, node, live);
      std::size_t added = 0;
      for (auto& [s, a] : plan.changes)
        if (!taken.contains(s)) {
          add(s, std::move(a));
          ++added;
        }
      if (added == 0 && plan.changes.empty()) {
        log(log_level::info, "metadata_removal_done",
            {{"node", node}, {"stranded", join(plan.stranded)}});
        ends.push_back({kv, std::nullopt});
      }
    } else {
      log(log_level::error, "metadata_request_damaged", {{"key", key}});
      ends.push_back({kv, std::nullopt});
    }
  }
  if (drains.empty()) return;
  auto plan = plan_drain(plain, drained, live, cfg.replication_factor);
  for (auto& [s, a] : plan.changes) add(s, std::move(a));
  for (auto& node : plan.finished) {
    auto& kv = drains.at(node);
    auto d = decode_drain(kv.value);
    if (d->finished) continue;
    d->finished = true;
    log(log_level::info, "metadata_drain_done", {{"node", node}});
    ends.push_back({kv, encode(*d)});
  }
}

bool metadata_agent::state::end_requests(const std::vector<request_end>& ends, std::int64_t term) {
  for (auto& e : ends) {
    auto op = e.put ? txn_op::put(e.kv.key, *e.put, e.kv.lease) : txn_op::del(e.kv.key);
    auto r = client.txn({elect.fence(term),
                         compare::mod_revision(e.kv.key, compare_result::equal, e.kv.mod_revision)},
                        {op}, {});
    if (!r.ok()) {
      log(log_level::warn, "metadata_request_end_failed",
          {{"key", e.kv.key}, {"error", r.err().message}});
      return false;
    }
  }
  return true;
}

}  // namespace kaiwa::cluster
