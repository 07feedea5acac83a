#include "cluster/metadata_agent.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "cluster/cluster_marker.hpp"
#include "cluster/replica_moves.hpp"
#include "cluster/replica_planner.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"
#include "core/log.hpp"

namespace kaiwa::cluster {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

/// propose_isr calls waiting for the worker (a node leads at most max_shards; each leader has
/// one proposal out at a time), and member_unreachable reports. Past it a proposal fails at once
/// (its leader proposes again) and an unreachable member is left to its lease's expiry.
constexpr std::size_t max_proposals = 65536;
constexpr std::size_t max_unreachable = 1024;
/// Operators' requests waiting for the worker, and waiting for their end: past either a request
/// is refused at once (an operator asks again).
constexpr std::size_t max_requests = 1024;
/// How often the controller moves leaders back to their preferred replicas, and how many a round.
constexpr auto preferred_period = 1s;
constexpr std::size_t preferred_per_round = 8;
/// A failed etcd step (a new lease, a registration, a campaign, a controller round) is tried
/// again after this, doubling up to the second bound.
constexpr auto retry_first = 200ms;
constexpr auto retry_last = 1000ms;
/// A controller round whose writes keep meeting conflicts re-reads and re-plans this often, then
/// waits for the next trigger (a watch event, the next second).
constexpr int max_replans = 3;

std::string join(const std::vector<shard_t>& shards) {
  std::string out;
  for (auto s : shards) {
    if (!out.empty()) out += ',';
    out += std::to_string(s);
  }
  return out;
}

}  // namespace

// The agent's state, shared by its threads (see the header). Two locks, never held together
// and never while an event callback or an etcd call runs: `view_mtx` for what etcd holds as the
// watch (and loads) saw it plus the current lease session, `mtx` for the worker's queue and flags.
struct metadata_agent::state {
  metadata_config cfg;
  metadata_events ev;
  etcd_client client;
  assignment_store store;
  election elect;
  std::string members_prefix;
  std::string member_key;
  std::string requests_prefix;  // <prefix>requests/: move/NNNNN, drain/<node>, remove/<node>
  std::string marker_key;       // <prefix>cluster: cluster_marker

  // -- the view ----------------------------------------------------------------------------
  mutable std::mutex view_mtx;
  std::map<std::string, member_info> members;
  // Merged by mod revision (the newer wins): the watch, the controller's own writes, its loads.
  std::map<shard_t, versioned_assignment> shards;
  std::optional<controller_term> controller;
  std::int64_t controller_lease = 0;                    // the lease the controller key lives under
  std::optional<controller_term> delivered_controller;  // what `controller` said last
  bool delivered_any_controller = false;
  // Operators' requests as etcd holds them, by key; and the newest revision the view has seen
  // (a waiter whose key is absent at or past its creation knows it was deleted).
  std::map<std::string, key_value> requests;
  std::int64_t seen_revision = 0;
  std::int64_t drained_delivered = 0;  // create revision of this node's drain key delivered
  struct waiter {
    enum class kind { move, drain, removal } what;
    std::string key;
    std::int64_t created = 0;  // the key's create revision
    steady::time_point deadline;
    shard_t shard = 0;
    std::string node;  // move: the target; drain, removal: the node
    request_done done;
  };
  std::vector<waiter> waiters;
  // Replaced by the worker only; read (under view_mtx) by lease_valid, status_json and my_term.
  std::shared_ptr<lease_session> session;

  // -- etcd's data lost (docs/cluster.md "When etcd's data is lost") ----------------------
  // The marker as etcd holds it (the key, for its mod revision), and the cluster this node's
  // data is of, learned from the marker; `recorded` (the worker's) is what the data dir's file
  // holds, and what the member key publishes.
  std::optional<key_value> marker_kv;
  std::optional<cluster_marker> marker;
  std::string known_id, recorded;
  // What happened, from its detection until a load finds this cluster's marker again; empty
  // while etcd describes the cluster. Meanwhile the controller writes nothing.
  std::string lost;
  // The view when it was lost (the last one etcd described the cluster in), compared with what
  // a restored etcd holds; then the shards whose restored assignment is older than it, left
  // alone until someone writes them (`recovered_at`: the revision of the load that recovered).
  std::map<shard_t, versioned_assignment> before;
  std::set<shard_t> held;
  std::int64_t recovered_at = 0;
  // The worker's: what it logged last, so each state is logged once.
  std::map<std::string, std::string> last_foreign;
  bool missing_logged = false;

  // -- the worker ----------------------------------------------------------------------------
  struct proposal {
    assignment_write write;
    std::function<void(std::optional<std::int64_t>)> done;
  };
  std::mutex mtx;
  std::condition_variable cv;
  bool stopping = false;
  std::deque<proposal> proposals;
  std::deque<std::string> unreachable_nodes;
  std::deque<std::function<void()>> jobs;  // operators' requests, written by the worker
  // Posted by the watch and lease threads, coalesced: each says "do this once more".
  bool lease_lost_posted = false, resync_posted = false, campaign_posted = false,
       reconcile_posted = false, register_posted = false, record_posted = false;
  std::thread worker;
  std::unique_ptr<watcher> watch;  // the worker's after start (a resync replaces it)

  state(metadata_config c, metadata_events e)
      : cfg(std::move(c)),
        ev(std::move(e)),
        client(cfg.etcd, cfg.call_timeout),
        store(client, cfg.prefix, cfg.shards),
        elect(client, cfg.prefix + "controller", cfg.node),
        members_prefix(cfg.prefix + "members/"),
        member_key(members_prefix + cfg.node),
        requests_prefix(cfg.prefix + "requests/"),
        marker_key(cfg.prefix + "cluster") {}

  ~state() {
    {
      std::lock_guard lock(mtx);
      stopping = true;
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
    watch.reset();
    for (auto& p : proposals) p.done(std::nullopt);
    for (auto& w : waiters) w.done("the node is stopping");
    auto term = my_term();
    if (term) (void)elect.resign(*term);
    std::shared_ptr<lease_session> s;
    {
      std::lock_guard lock(view_mtx);
      s = std::move(session);
    }
    if (s) s->close();  // revokes: the member key goes now
  }

  // -- posting to the worker -----------------------------------------------------------------

  void post(bool state::*flag) {
    {
      std::lock_guard lock(mtx);
      this->*flag = true;
    }
    cv.notify_all();
  }

  /// Queues `p`; false (and nothing queued) when the queue is full or the agent stops.
  bool enqueue(proposal& p) {
    {
      std::lock_guard lock(mtx);
      if (stopping || proposals.size() >= max_proposals) return false;
      proposals.push_back(std::move(p));
    }
    cv.notify_all();
    return true;
  }

  /// Queues an operator's request for the worker; false when the queue is full or it stops.
  bool enqueue_job(std::function<void()>& job) {
    {
      std::lock_guard lock(mtx);
      if (stopping || jobs.size() >= max_requests) return false;
      jobs.push_back(std::move(job));
    }
    cv.notify_all();
    return true;
  }

  bool enqueue_unreachable(const std::string& node) {
    {
      std::lock_guard lock(mtx);
      if (stopping || unreachable_nodes.size() >= max_unreachable) return false;
      unreachable_nodes.push_back(node);
    }
    cv.notify_all();
    return true;
  }

  // -- the view --------------------------------------------------------------------------------

  std::shared_ptr<lease_session> current_session() const {
    std::lock_guard lock(view_mtx);
    return session;
  }

  /// This node's term while it holds the controller key under its current, valid lease.
  std::optional<std::int64_t> my_term() const {
    std::lock_guard lock(view_mtx);
    if (!controller || controller->node != cfg.node || !session || !session->valid() ||
        controller_lease != session->id())
      return std::nullopt;
    return controller->term;
  }

  /// Keeps `a` for `shard` unless the view already has a newer one. Under view_mtx.
  void merge(shard_t shard, versioned_assignment a) {
    auto& cur = shards[shard];
    if (cur.mod_revision < a.mod_revision) cur = std::move(a);
  }

  struct loaded {
    std::int64_t revision = 0;
    std::map<std::string, member_info> members;
    std::map<shard_t, versioned_assignment> shards;
    std::optional<controller_term> controller;
    std::int64_t controller_lease = 0;
    std::map<std::string, key_value> requests;
    std::optional<key_value> marker;
  };

  /// A member key's value as a member; nullopt when it isn't one a node writes.
  std::optional<member_info> member_of(const key_value& kv) const {
    auto m = decode_member(kv.value);
    if (!m || kv.key != members_prefix + m->id) return std::nullopt;
    m->lease = kv.lease;
    m->registered = kv.mod_revision;
    return m;
  }

  /// Members, assignments, the controller and the marker at one revision (one transaction), so
  /// one watch from the revision after it misses nothing of any.
  result<loaded> load() {
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

  /// Replaces the view by `l` and delivers all of it. On the thread that owns delivery: start()'s
  /// caller before the watch runs, or the worker while no watch runs.
  void adopt(loaded l) {
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
          if (a.epoch < b.assignment.epoch ||
              (a.epoch == b.assignment.epoch && !(a == b.assignment)))
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

  /// Tells `controller` what the view says if that is not what it said last.
  void deliver_controller() {
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

  void start_watch(std::int64_t from) {
    watch = client.watch(cfg.prefix, from, [this](const watch_update& u) { on_watch(u); });
  }

  /// On the watch thread: applies each event to the view and delivers it, in turn.
  void on_watch(const watch_update& u) {
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
    for (auto& e : u.events) {
      auto& key = e.kv.key;
      bool put = e.what == watch_event::type::put;
      {
        std::lock_guard lock(view_mtx);
        seen_revision = std::max(seen_revision, e.kv.mod_revision);
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
            if (members.erase(id) == 0) continue;
          } else if (auto member = member_of(e.kv)) {
            members[id] = std::move(*member);
          } else {
            log(log_level::error, "metadata_member_damaged", {{"key", key}});
            continue;
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
          continue;
        }
        {
          std::lock_guard lock(view_mtx);
          if (!c->now) {
            // Only an operator deletes one; the controller places it anew.
            log(log_level::error, "metadata_assignment_deleted", {{"key", key}});
            shards.erase(c->shard);
            continue;
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
    }
    if (vacant) post(&state::campaign_posted);
    if (reconcile) post(&state::reconcile_posted);
    if (register_again) post(&state::register_posted);
    if (learned) post(&state::record_posted);
    settle_waiters();
  }

  // -- etcd's data lost --------------------------------------------------------------------

  /// Takes the marker key (or its absence) into the view, and learns the cluster's id from it
  /// when this node has none yet: true then (the worker is to record it in the data dir; the
  /// next registration publishes it). Under view_mtx.
  bool set_marker(std::optional<key_value> kv) {
    marker_kv = std::move(kv);
    marker = marker_kv ? decode_marker(marker_kv->value) : std::nullopt;
    if (marker_kv && !marker)
      log(log_level::error, "metadata_marker_damaged", {{"key", marker_kv->key}});
    if (!marker || !known_id.empty()) return false;
    known_id = marker->id;
    return true;
  }

  /// Why etcd's data doesn't describe this node's cluster, by the marker `m` etcd holds; nullopt
  /// when it does (or no cluster was placed yet). Under view_mtx.
  std::optional<std::string> marker_problem(const std::optional<cluster_marker>& m) const {
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

  /// etcd no longer describes this cluster: logged once per incident (what happened, what to
  /// do); the view keeps what it had (the last one etcd described the cluster in) until a load
  /// replaces it, and the worker loads again each second until the cluster is found again.
  void declare_lost(const std::string& what) {
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

  /// Once a second on the worker: whether etcd still has this cluster's marker and a revision at
  /// least the one the view has seen. A watch cannot tell: on an etcd restarted empty it waits
  /// silently for a revision the new history won't reach for a long time.
  void probe() {
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
        problem =
            marker_problem(r->kvs.empty() ? std::nullopt : decode_marker(r->kvs.front().value));
      }
    }
    if (problem) declare_lost(*problem);
    if (resync) post(&state::resync_posted);
  }

  // -- operators' requests ---------------------------------------------------------------------

  std::string move_key(shard_t shard) const {
    auto n = std::to_string(shard);
    return requests_prefix + "move/" + std::string(5 - std::min<std::size_t>(5, n.size()), '0') + n;
  }
  std::string drain_key(const std::string& node) const { return requests_prefix + "drain/" + node; }
  std::string removal_key(const std::string& node) const {
    return requests_prefix + "remove/" + node;
  }

  /// How `w` ended by what the view shows; nullopt while it runs. Under view_mtx.
  std::optional<std::string> outcome(const waiter& w) const {
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

  /// Answers the waiters whose request ended, and delivers this node's finished drain.
  void settle_waiters() {
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

  /// On the worker: withdraws the requests past their deadline and answers them.
  void expire_waiters() {
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

  /// Writes request `key` = `value` (under `lease`) unless it exists, and waits for its end.
  /// An existing drain of the same node is joined instead.
  void submit(waiter w, const std::string& value, std::int64_t lease) {
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

  void submit_move(shard_t shard, std::string to, std::chrono::milliseconds timeout,
                   request_done done) {
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

  void submit_drain(std::string node, std::chrono::milliseconds grace,
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

  void submit_removal(std::string node, std::chrono::milliseconds timeout, request_done done) {
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

  /// A request key the controller is done with: deleted (or, a drain, marked finished) if it
  /// is still as read, under the controller's fence.
  struct request_end {
    key_value kv;
    std::optional<std::string> put;  // nullopt: delete
  };

  /// The controller's part of the operators' requests for one round: the assignment writes of
  /// their next steps (shards not in `writes` already), the request keys done with, the drained
  /// nodes and the shards a move is under way on (the preferred-leader pass leaves both alone).
  void plan_requests(const std::map<shard_t, versioned_assignment>& current,
                     const assignments& plain, const node_set& live,
                     std::vector<assignment_write>& writes, std::vector<request_end>& ends,
                     std::set<std::string>& drained, std::set<shard_t>& moving) {
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
            log(log_level::info, "metadata_move_done",
                {{"shard", std::uint64_t{s}}, {"to", m->to}});
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

  /// Deletes or marks the request keys the controller is done with, each if it is unchanged.
  bool end_requests(const std::vector<request_end>& ends, std::int64_t term) {
    for (auto& e : ends) {
      auto op = e.put ? txn_op::put(e.kv.key, *e.put, e.kv.lease) : txn_op::del(e.kv.key);
      auto r = client.txn({elect.fence(term), compare::mod_revision(e.kv.key, compare_result::equal,
                                                                    e.kv.mod_revision)},
                          {op}, {});
      if (!r.ok()) {
        log(log_level::warn, "metadata_request_end_failed",
            {{"key", e.kv.key}, {"error", r.err().message}});
        return false;
      }
    }
    return true;
  }

  // -- the worker's steps: each true when done, false to be tried again after a backoff ------

  /// A new lease in place of a lost one. The old lease is revoked (its keys, the member key and
  /// any controller key, go now): this node stopped acting on it, and a lapse is then always a
  /// failure the controller sees, never a gap it may or may not have noticed.
  bool renew_session() {
    auto old = current_session();
    if (old && old->valid()) return true;
    if (old) {
      old->close();
      auto r = client.lease_revoke(old->id());
      if (!r.ok() && r.err().etcd_code != 5)
        log(log_level::warn, "metadata_old_lease_revoke_failed",
            {{"node", cfg.node}, {"error", r.err().message}});
    }
    auto s = lease_session::open(client, cfg.lease, [this] { post(&state::lease_lost_posted); });
    if (!s.ok()) {
      log(log_level::warn, "metadata_lease_failed",
          {{"node", cfg.node}, {"error", s.err().message}});
      return false;
    }
    std::lock_guard lock(view_mtx);
    session = std::move(*s);
    return true;
  }

  /// Records the cluster id this node learned in its data dir (once). The worker's, and start's
  /// before the worker runs.
  status record_known() {
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

  bool do_record() {
    auto r = record_known();
    if (!r.ok())
      log(log_level::error, "metadata_cluster_record_failed",
          {{"node", cfg.node}, {"error", r.err().message}});
    return r.ok();
  }

  /// Puts this node's member key under `lease`, naming the cluster its data is of (recorded in
  /// the data dir first, so a node never publishes an id it could forget). Only a registration
  /// puts it: a put under the same lease would look like a restart to plan_restarted.
  status register_member(std::int64_t lease) {
    if (auto r = record_known(); !r.ok()) return r;
    member_info me{cfg.node, cfg.cluster_address, cfg.public_address, 0, 0, recorded};
    auto r = client.put(member_key, encode(me), lease);
    if (!r.ok()) return r.err();
    log(log_level::info, "metadata_registered",
        {{"node", cfg.node}, {"lease", lease}, {"cluster", me.cluster}});
    return {};
  }

  /// Takes the controller key under `lease` if nobody holds it. Who holds it comes by the watch.
  status campaign(std::int64_t lease) {
    auto r = elect.campaign(lease);
    if (r.ok() && r->node == cfg.node)
      log(log_level::info, "metadata_controller_won", {{"node", cfg.node}, {"term", r->term}});
    // errc::invalid: an earlier session of this node holds the key until its lease ends.
    if (r.ok() || r.err().code == errc::invalid) return {};
    return r.err();
  }

  bool do_register() {
    auto s = current_session();
    if (!s || !s->valid()) return false;
    auto r = register_member(s->id());
    if (!r.ok())
      log(log_level::warn, "metadata_register_failed",
          {{"node", cfg.node}, {"error", r.err().message}});
    return r.ok();
  }

  bool do_campaign() {
    auto s = current_session();
    if (!s || !s->valid()) return false;
    {
      std::lock_guard lock(view_mtx);
      if (controller) return true;  // held (the watch says when it goes)
    }
    auto r = campaign(s->id());
    if (!r.ok())
      log(log_level::warn, "metadata_campaign_failed",
          {{"node", cfg.node}, {"error", r.err().message}});
    return r.ok();
  }

  bool do_resync() {
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

  /// Takes what the controller wrote into the view (the watch brings it later) and logs it.
  void written(const std::vector<assignment_write>& batch, std::int64_t revision,
               std::int64_t term) {
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

  enum class placement { place, none, wait };

  /// Whether this round places the shards that have no assignment (`assigned` have one): only
  /// in the first placement (or one a previous controller left half done), never once the marker
  /// says it finished (a missing shard is logged instead: its replicas may hold data at higher
  /// epochs, which a placement at epoch 1 would wedge or lose). A new cluster's marker is written
  /// first (`wait`: the watch brings it, and the next round places); the marker is marked placed
  /// once every shard has an assignment.
  result<placement> may_place(const std::optional<key_value>& mark,
                              const std::optional<cluster_marker>& mk, const node_set& live,
                              std::size_t assigned, std::int64_t term) {
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
      auto r =
          client.txn({elect.fence(term),
                      compare::mod_revision(marker_key, compare_result::equal, mark->mod_revision)},
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

  /// One controller round: first placement of the shards that have none, failover of the shards
  /// whose leader is not live, a new epoch for the shards whose leader registered again since
  /// they were written (plan_restarted), and (`preferred`) leadership back to preferred
  /// replicas. Writes are CAS on the mod revision fenced by the term; a failed condition
  /// re-reads and re-plans.
  bool reconcile(bool preferred, std::vector<shard_t>& last_stranded) {
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
          log(log_level::warn, "metadata_controller_deposed",
              {{"node", cfg.node}, {"term", *term}});
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

  /// The controller revokes an unreachable member's lease; any other node revokes the lease of
  /// an unreachable controller (the lease its key lives under, its member key's too): a killed
  /// controller would otherwise control, and its shards stay led by it, until that lease
  /// expires. Safe whoever is wrong (epochs and CAS fence every write); the cost of a node cut
  /// off from the controller alone is a needless change of controller and of its shards' leaders.
  void unreachable(const std::string& node) {
    if (node == cfg.node) return;
    bool controlling = my_term().has_value();
    std::int64_t lease = 0;
    {
      std::lock_guard lock(view_mtx);
      if (controlling) {
        if (auto it = members.find(node); it != members.end()) lease = it->second.lease;
      } else if (controller && controller->node == node) {
        lease = controller_lease;
      }
    }
    if (lease == 0) return;
    auto r = client.lease_revoke(lease);
    if (r.ok())
      log(log_level::info, controlling ? "metadata_member_revoked" : "metadata_controller_revoked",
          {{"member", node}, {"lease", lease}});
    else if (r.err().etcd_code != 5)
      log(log_level::warn, "metadata_member_revoke_failed",
          {{"member", node}, {"error", r.err().message}});
  }

  /// Leaders' isr changes, CAS on their mod revisions without a fence, in batches of distinct
  /// shards (when a follower dies, every shard it followed shrinks its isr at once). A batch that
  /// fails on a condition or an invalid proposal is tried one proposal at a time, so each gets
  /// its own answer; one that fails otherwise (etcd unreachable) fails it and every proposal
  /// after it, rather than wait a call timeout for each batch.
  void propose_all(std::deque<proposal> ps) {
    auto finish = [&](proposal& p, const result<std::optional<std::int64_t>>& r) {
      if (r.ok() && *r) {
        std::lock_guard lock(view_mtx);
        merge(p.write.shard, {p.write.next, **r});
      }
      p.done(r.ok() ? *r : std::nullopt);
    };
    auto failed = [&](std::size_t count, const error& e) {
      log(log_level::warn, "metadata_isr_write_failed", {{"count", count}, {"error", e.message}});
    };
    while (!ps.empty()) {
      // In queue order; a shard's second proposal waits for the next batch.
      std::vector<proposal> batch;
      std::set<shard_t> named;
      while (!ps.empty() && batch.size() < assignment_store::max_batch &&
             named.insert(ps.front().write.shard).second) {
        batch.push_back(std::move(ps.front()));
        ps.pop_front();
      }
      std::vector<assignment_write> writes;
      for (auto& p : batch) writes.push_back(p.write);
      auto r = store.update_all(writes, {});
      if (r.ok() && (*r || batch.size() == 1)) {
        for (auto& p : batch) finish(p, r);
      } else if ((r.ok() && batch.size() > 1) || r.err().code == errc::invalid) {
        for (auto& p : batch) {
          auto one = store.update_all({p.write}, {});
          if (!one.ok()) failed(1, one.err());
          finish(p, one);
        }
      } else {
        failed(batch.size() + ps.size(), r.err());
        for (auto& p : batch) finish(p, r);
        for (; !ps.empty(); ps.pop_front()) finish(ps.front(), r);
      }
    }
  }

  void run() {
    auto next_preferred = steady::now() + preferred_period;
    auto retry_at = steady::time_point::max();
    auto backoff = std::chrono::milliseconds(retry_first);
    bool need_session = false, need_register = false, need_resync = false, need_campaign = false,
         need_reconcile = false, need_record = false;
    std::vector<shard_t> last_stranded;
    for (;;) {
      std::deque<proposal> ps;
      std::deque<std::string> gone;
      std::deque<std::function<void()>> todo;
      bool lost = false;
      {
        std::unique_lock lock(mtx);
        cv.wait_until(lock, std::min(next_preferred, retry_at), [&] {
          return stopping || !proposals.empty() || !unreachable_nodes.empty() || !jobs.empty() ||
                 lease_lost_posted || resync_posted || campaign_posted || reconcile_posted ||
                 register_posted || record_posted;
        });
        if (stopping) return;
        ps.swap(proposals);
        gone.swap(unreachable_nodes);
        todo.swap(jobs);
        lost = std::exchange(lease_lost_posted, false);
        need_resync |= std::exchange(resync_posted, false);
        need_campaign |= std::exchange(campaign_posted, false);
        need_reconcile |= std::exchange(reconcile_posted, false);
        need_register |= std::exchange(register_posted, false);
        need_record |= std::exchange(record_posted, false);
      }
      // An unreachable member first: the failover it starts is what the 2 s are about.
      for (auto& n : gone) unreachable(n);
      propose_all(std::move(ps));
      for (auto& job : todo) job();
      expire_waiters();
      if (lost) {
        if (ev.lease_lost) ev.lease_lost();
        need_session = need_register = need_campaign = true;
      }
      auto now = steady::now();
      bool preferred = now >= next_preferred;
      if (preferred) next_preferred = now + preferred_period;
      // While a failed step waits out its backoff, only the queues are served.
      if (retry_at != steady::time_point::max() && now < retry_at) continue;
      if (preferred) probe();
      bool ok = true;
      if (ok && need_record) ok = !(need_record = !do_record());
      if (ok && need_session) ok = !(need_session = !renew_session());
      if (ok && need_register) ok = !(need_register = !do_register());
      if (ok && need_resync) ok = !(need_resync = !do_resync());
      if (ok && need_campaign) ok = !(need_campaign = !do_campaign());
      if (ok && (need_reconcile || preferred))
        ok = !(need_reconcile = !reconcile(preferred, last_stranded));
      if (ok) {
        retry_at = steady::time_point::max();
        backoff = retry_first;
      } else {
        retry_at = steady::now() + backoff;
        backoff = std::min(backoff * 2, std::chrono::milliseconds(retry_last));
      }
    }
  }
};

result<std::unique_ptr<metadata_agent>> metadata_agent::start(metadata_config cfg,
                                                              metadata_events ev) {
  if (auto why =
          invalid_reason(member_info{cfg.node, cfg.cluster_address, cfg.public_address, 0, 0, {}}))
    return error{errc::invalid, "this node as a member: " + *why, 0};
  if (cfg.etcd.empty()) return error{errc::invalid, "no etcd endpoint", 0};
  if (cfg.shards == 0 || cfg.shards > max_shards)
    return error{errc::invalid, "the shard count is not 1 to " + std::to_string(max_shards), 0};
  if (cfg.replication_factor == 0 || cfg.replication_factor > max_replicas)
    return error{errc::invalid,
                 "the replication factor is not 1 to " + std::to_string(max_replicas), 0};

  auto s = std::make_unique<state>(std::move(cfg), std::move(ev));
  auto* st = s.get();
  if (!st->cfg.cluster_id_file.empty()) {
    auto id = read_recorded_id(st->cfg.cluster_id_file);
    if (!id.ok()) return id.err();
    st->known_id = st->recorded = *id;
  }
  if (st->cfg.fresh_data) {
    auto l = st->load();
    if (!l.ok()) return l.err();
    for (auto& [shard, a] : l->shards)
      if (a.assignment.holds(st->cfg.node))
        return error{errc::invalid,
                     "etcd names node " + st->cfg.node + " a replica of shard " +
                         std::to_string(shard) +
                         " (and maybe in sync), but its data dir is new: its replicas' data is "
                         "gone. Run `kaiwa cluster remove " +
                         st->cfg.node +
                         "` on another node (its replicas are re-created elsewhere), then start "
                         "it again; or start it with a new --node-id",
                     0};
  }
  auto session =
      lease_session::open(st->client, st->cfg.lease, [st] { st->post(&state::lease_lost_posted); });
  if (!session.ok()) return session.err();
  st->session = std::move(*session);
  if (auto r = st->register_member(st->session->id()); !r.ok()) return r.err();
  if (auto r = st->campaign(st->session->id()); !r.ok()) return r.err();
  auto l = st->load();
  if (!l.ok()) return l.err();
  auto from = l->revision + 1;
  st->adopt(std::move(*l));
  st->start_watch(from);
  st->worker = std::thread([st] { st->run(); });
  return std::unique_ptr<metadata_agent>(new metadata_agent(std::move(s)));
}

metadata_agent::metadata_agent(std::unique_ptr<state> s) : state_(std::move(s)) {}

metadata_agent::~metadata_agent() = default;

bool metadata_agent::lease_valid() const {
  auto s = state_->current_session();
  return s && s->valid();
}

void metadata_agent::propose_isr(shard_t shard, shard_assignment next, std::int64_t expected,
                                 std::function<void(std::optional<std::int64_t>)> done) {
  state::proposal p{{shard, std::move(next), expected}, std::move(done)};
  if (!state_->enqueue(p)) p.done(std::nullopt);
}

void metadata_agent::resign(shard_t shard, std::uint64_t epoch) {
  auto* st = state_.get();
  std::optional<assignment_write> write;
  {
    std::lock_guard lock(st->view_mtx);
    auto it = st->shards.find(shard);
    if (it == st->shards.end() || it->second.assignment.leader != st->cfg.node ||
        it->second.assignment.epoch != epoch)
      return;  // moved on already
    node_set others;
    for (auto& [id, m] : st->members)
      if (id != st->cfg.node) others.insert(id);
    auto plan = plan_failover({{shard, it->second.assignment}}, others);
    if (!plan.changes.empty())
      write = assignment_write{shard, plan.changes.begin()->second, it->second.mod_revision};
  }
  if (!write) {
    log(log_level::error, "metadata_resign_no_replica",
        {{"shard", std::uint64_t{shard}}, {"epoch", epoch}});
    return;
  }
  auto leader = write->next.leader;
  state::proposal p{
      std::move(*write), [shard, epoch, leader](std::optional<std::int64_t> r) {
        if (r)
          log(log_level::info, "metadata_resigned",
              {{"shard", std::uint64_t{shard}}, {"epoch", epoch + 1}, {"leader", leader}});
        else
          log(log_level::warn, "metadata_resign_failed",
              {{"shard", std::uint64_t{shard}}, {"epoch", epoch}});
      }};
  if (!st->enqueue(p)) p.done(std::nullopt);
}

void metadata_agent::request_move(shard_t shard, std::string to, std::chrono::milliseconds timeout,
                                  request_done done) {
  auto* st = state_.get();
  auto shared = std::make_shared<request_done>(std::move(done));
  std::function<void()> job = [st, shard, to = std::move(to), timeout, shared] {
    st->submit_move(shard, to, timeout, std::move(*shared));
  };
  if (!st->enqueue_job(job)) (*shared)("too many requests queued, or the node is stopping");
}

void metadata_agent::request_drain(std::string node, std::chrono::milliseconds grace,
                                   std::chrono::milliseconds timeout, request_done done) {
  auto* st = state_.get();
  auto shared = std::make_shared<request_done>(std::move(done));
  std::function<void()> job = [st, node = std::move(node), grace, timeout, shared] {
    st->submit_drain(node, grace, timeout, std::move(*shared));
  };
  if (!st->enqueue_job(job)) (*shared)("too many requests queued, or the node is stopping");
}

void metadata_agent::request_removal(std::string node, std::chrono::milliseconds timeout,
                                     request_done done) {
  auto* st = state_.get();
  auto shared = std::make_shared<request_done>(std::move(done));
  std::function<void()> job = [st, node = std::move(node), timeout, shared] {
    st->submit_removal(node, timeout, std::move(*shared));
  };
  if (!st->enqueue_job(job)) (*shared)("too many requests queued, or the node is stopping");
}

void metadata_agent::member_unreachable(const std::string& node) {
  if (!state_->enqueue_unreachable(node))
    log(log_level::warn, "metadata_unreachable_dropped", {{"member", node}});
}

std::string metadata_agent::status_json() const {
  auto* st = state_.get();
  std::lock_guard lock(st->view_mtx);
  std::string out;
  json_writer w(out);
  w.begin_object().key("controller");
  if (st->controller)
    w.value(st->controller->node);
  else
    w.raw("null");
  w.field("term", st->controller ? st->controller->term : std::int64_t{0});
  std::int64_t lease = 0, left = 0;
  if (st->session) {
    lease = st->session->id();
    auto d = st->session->valid_until() - steady::now();
    left =
        std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  }
  w.field("lease", lease)
      .field("lease_ttl_ms_left", left)
      .field("cluster_id", st->known_id)
      .field("metadata_lost", !st->lost.empty())
      .field("metadata_problem", st->lost)
      .key("shards_held")
      .begin_array();
  for (auto shard : st->held) w.value(std::uint64_t{shard});
  w.end_array().key("members").begin_array();
  for (auto& [id, m] : st->members)
    w.begin_object()
        .field("id", m.id)
        .field("cluster_address", m.cluster_address)
        .field("public_address", m.public_address)
        .field("lease", m.lease)
        .field("cluster", m.cluster)
        .end_object();
  w.end_array().end_object();
  return out;
}

bool metadata_agent::metadata_lost() const {
  std::lock_guard lock(state_->view_mtx);
  return !state_->lost.empty();
}

std::size_t metadata_agent::shards_held() const {
  std::lock_guard lock(state_->view_mtx);
  return state_->held.size();
}

}  // namespace kaiwa::cluster
