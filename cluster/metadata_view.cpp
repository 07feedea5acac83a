// The agent's view of what etcd holds (members, assignments, the controller key, operators'
// requests, the marker): loaded at one revision, then followed by one watch, and delivered to
// metadata_events in revision order. A compacted watch is loaded again.
#include <algorithm>

#include "cluster/detail/metadata_state.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"

namespace kaiwa::cluster {

std::shared_ptr<lease_session> metadata_agent::state::current_session() const {
  std::lock_guard lock(view_mtx);
  return session;
}

std::optional<std::int64_t> metadata_agent::state::my_term() const {
  std::lock_guard lock(view_mtx);
  if (!controller || controller->node != cfg.node || !session || !session->valid() ||
      controller_lease != session->id())
    return std::nullopt;
  return controller->term;
}

void metadata_agent::state::merge(shard_t shard, versioned_assignment a) {
  auto& cur = shards[shard];
  if (cur.mod_revision < a.mod_revision) cur = std::move(a);
}

std::optional<member_info> metadata_agent::state::member_of(const key_value& kv) const {
  auto m = decode_member(kv.value);
  if (!m || kv.key != members_prefix + m->id) return std::nullopt;
  m->lease = kv.lease;
  m->registered = kv.mod_revision;
  return m;
}

result<metadata_agent::state::loaded> metadata_agent::state::load() {
  auto r = client.txn(
      {},
      {txn_op::get_prefix(members_prefix), txn_op::get_prefix(store.shards_prefix()),
       txn_op::get(elect.key()), txn_op::get_prefix(requests_prefix), txn_op::get(marker_key)},
      {});
  if (!r.ok()) return r.err();
  if (!r->succeeded || r->responses.size() != 5)
    return error{errc::protocol, "a read of the metadata came back without its five ranges", 0};
  loaded out;
  out.revision = r->revision;
  for (auto& kv : r->responses[0].kvs) {
    auto m = member_of(kv);
    if (!m) return error{errc::protocol, "member key " + kv.key + ": not a member", 0};
    out.members[m->id] = std::move(*m);
  }
  for (auto& kv : r->responses[1].kvs) {
    watch_event as_put;  // what a put of this key would have said: one parser for both
    as_put.kv = kv;
    auto c = store.parse_event(as_put);
    if (!c.ok()) return c.err();
    out.shards[c->shard] = std::move(*c->now);
  }
  if (!r->responses[2].kvs.empty()) {
    auto& kv = r->responses[2].kvs.front();
    if (!valid_name(kv.value))
      return error{errc::protocol, "the controller key " + kv.key + " holds no node id", 0};
    out.controller = controller_term{kv.value, kv.create_revision};
    out.controller_lease = kv.lease;
  }
  for (auto& kv : r->responses[3].kvs) out.requests[kv.key] = kv;
  if (!r->responses[4].kvs.empty()) {
    auto& kv = r->responses[4].kvs.front();
    if (!decode_marker(kv.value))
      return error{errc::protocol, "the cluster marker " + kv.key + " holds no cluster id", 0};
    out.marker = kv;
  }
  return out;
}

void metadata_agent::state::adopt(loaded l) {
  std::map<std::string, member_info> m;
  std::map<shard_t, versioned_assignment> s;
  std::optional<std::string> problem;
  bool recovered = false, unregistered = false, learned = false;
  std::vector<shard_t> now_held;
  std::string cluster;
  {
    std::lock_guard lock(view_mtx);
    members = l.members;
    shards = l.shards;
    controller = l.controller;
    controller_lease = l.controller_lease;
    requests = l.requests;
    // A load while etcd's data is lost starts a new history: its revisions are not comparable
    // with those seen before (etcd restarted empty, or restored from a backup).
    seen_revision = lost.empty() ? std::max(seen_revision, l.revision) : l.revision;
    learned = set_marker(l.marker);
    problem = marker_problem(marker);
    if (!problem && !lost.empty()) {
      recovered = true;
      lost.clear();
      recovered_at = l.revision;
      // Assignments older than this node saw before the loss (a restore from an older backup)
      // are not what the replicas follow: left alone (docs/cluster.md says why).
      held.clear();
      for (auto& [shard, b] : before) {
        auto it = shards.find(shard);
        if (it == shards.end()) continue;  // missing: never placed anew once placed
        auto& a = it->second.assignment;
        if (a.epoch < b.assignment.epoch || (a.epoch == b.assignment.epoch && !(a == b.assignment)))
          held.insert(shard);
      }
      before.clear();
      now_held.assign(held.begin(), held.end());
      cluster = known_id;
    }
    unregistered = !members.contains(cfg.node);
    m = members;
    // A held shard's restored assignment is not delivered: the node's routing and replicas
    // keep the newer one they follow (its leader goes on serving).
    for (auto& [shard, a] : shards)
      if (!held.contains(shard)) s.emplace(shard, a);
  }
  if (problem) declare_lost(*problem);
  if (recovered)
    log(log_level::warn, "metadata_recovered",
        {{"node", cfg.node},
         {"cluster", cluster},
         {"revision", l.revision},
         {"held", now_held.size()},
         {"held_shards", join(now_held)}});
  if (unregistered) post(&state::register_posted);
  if (learned) post(&state::record_posted);
  if (ev.members) ev.members(std::move(m));
  if (ev.assignment)
    for (auto& [shard, a] : s) ev.assignment(shard, a);
  deliver_controller();
  if (!l.controller) post(&state::campaign_posted);
  post(&state::reconcile_posted);
  settle_waiters();
}

void metadata_agent::state::deliver_controller() {
  std::optional<controller_term> c;
  {
    std::lock_guard lock(view_mtx);
    if (delivered_any_controller && delivered_controller == controller) return;
    delivered_any_controller = true;
    delivered_controller = controller;
    c = controller;
  }
  if (ev.controller) ev.controller(std::move(c));
}

void metadata_agent::state::start_watch(std::int64_t from) {
  watch = client.watch(cfg.prefix, from, [this](const watch_update& u) { on_watch(u); });
}

void metadata_agent::state::on_watch(const watch_update& u) {
  if (u.what == watch_update::kind::compacted) {
    log(log_level::warn, "metadata_watch_compacted",
        {{"node", cfg.node}, {"compact_revision", u.compact_revision}});
    return post(&state::resync_posted);
  }
  {
    // While etcd's data is lost the watch may replay another history (an etcd restored under
    // a watch resumed from the empty one's revision): nothing it says is taken; the worker's
    // loads, each second until the cluster is found again, are.
    std::lock_guard lock(view_mtx);
    if (!lost.empty()) return;
  }
  // Each event is applied and delivered before the next: deliveries follow revision order
  // across members, assignments and the controller (an update may hold many revisions).
  bool reconcile = false, vacant = false, register_again = false, learned = false;
  // An event is applied before its revision counts as seen: a request's waiter that finds the
  // revision of its key's creation seen, and the key absent, takes the request as ended (its
  // lease gone), so the two must change together (settle_waiters runs on the worker too).
  bool lost_now = false;
  auto apply = [&](const watch_event& e) {
    auto& key = e.kv.key;
    bool put = e.what == watch_event::type::put;
    {
      std::lock_guard lock(view_mtx);
      // A leader's isr change may be the step a move or a drain waits for.
      if (!requests.empty() && key.starts_with(store.shards_prefix())) reconcile = true;
    }
    if (key == marker_key) {
      std::optional<std::string> problem;
      {
        std::lock_guard lock(view_mtx);
        learned |= set_marker(put ? std::optional<key_value>(e.kv) : std::nullopt);
        problem = marker_problem(marker);
      }
      reconcile = true;
      if (problem) {
        // The rest of this update (a deleted prefix's every key) is etcd's data going: the
        // view keeps what it had, the worker loads again.
        declare_lost(*problem);
        lost_now = true;
        return;
      }
    } else if (key.starts_with(requests_prefix)) {
      {
        std::lock_guard lock(view_mtx);
        if (put)
          requests[key] = e.kv;
        else
          requests.erase(key);
      }
      reconcile = true;
    } else if (key.starts_with(members_prefix)) {
      std::map<std::string, member_info> m;
      {
        std::lock_guard lock(view_mtx);
        auto id = key.substr(members_prefix.size());
        if (!put) {
          // Deleted while this node's lease holds (by hand, or with the whole prefix): it
          // registers again. A lease that ended is the lease loss's to handle.
          if (id == cfg.node && session && session->valid()) register_again = true;
          if (members.erase(id) == 0) return;
        } else if (auto member = member_of(e.kv)) {
          members[id] = std::move(*member);
        } else {
          log(log_level::error, "metadata_member_damaged", {{"key", key}});
          return;
        }
        m = members;
      }
      reconcile = true;
      if (ev.members) ev.members(std::move(m));
    } else if (key.starts_with(store.shards_prefix())) {
      auto c = store.parse_event(e);
      if (!c.ok()) {
        log(log_level::error, "metadata_assignment_damaged",
            {{"key", key}, {"error", c.err().message}});
        return;
      }
      {
        std::lock_guard lock(view_mtx);
        if (!c->now) {
          // Only an operator deletes one; the controller places it anew.
          log(log_level::error, "metadata_assignment_deleted", {{"key", key}});
          shards.erase(c->shard);
          return;
        }
        merge(c->shard, *c->now);
      }
      if (ev.assignment) ev.assignment(c->shard, std::move(*c->now));
    } else if (key == elect.key()) {
      {
        std::lock_guard lock(view_mtx);
        if (put && valid_name(e.kv.value)) {
          controller = controller_term{e.kv.value, e.kv.create_revision};
          controller_lease = e.kv.lease;
        } else {
          if (put) log(log_level::error, "metadata_controller_damaged", {{"key", key}});
          controller.reset();
          controller_lease = 0;
        }
        vacant = !controller;
      }
      reconcile = true;
      deliver_controller();
    }
  };
  for (auto& e : u.events) {
    apply(e);
    if (lost_now) return;
    std::lock_guard lock(view_mtx);
    seen_revision = std::max(seen_revision, e.kv.mod_revision);
  }
  if (vacant) post(&state::campaign_posted);
  if (reconcile) post(&state::reconcile_posted);
  if (register_again) post(&state::register_posted);
  if (learned) post(&state::record_posted);
  settle_waiters();
}

bool metadata_agent::state::do_resync() {
  watch.reset();
  auto l = load();
  if (!l.ok()) {
    log(log_level::error, "metadata_reload_failed",
        {{"node", cfg.node}, {"error", l.err().message}});
    return false;
  }
  auto from = l->revision + 1;
  adopt(std::move(*l));
  start_watch(from);
  return true;
}

}  // namespace kaiwa::cluster
