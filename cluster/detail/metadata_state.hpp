#pragma once
// The metadata agent's state (cluster/metadata_agent.hpp), shared by its threads and by the
// files that each hold one of its jobs; the banners below say which file defines what:
// - metadata_agent.cpp: start, the public API, the worker's queue and loop;
// - metadata_view.cpp: what etcd holds as loads and the watch saw it, and its delivery;
// - metadata_session.cpp: this node's lease, member key and campaign for the controller;
// - metadata_loss.cpp: the cluster marker, and etcd's data found lost;
// - metadata_requests.cpp: operators' moves, drains and removals, asked and carried out;
// - metadata_controller.cpp: the controller's rounds.
//
// Two locks, never held together and never while an event callback or an etcd call runs:
// `view_mtx` for what etcd holds as the watch (and loads) saw it plus the current lease session,
// `mtx` for the worker's queue and flags.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster/cluster_marker.hpp"
#include "cluster/metadata_agent.hpp"
#include "cluster/replica_planner.hpp"

namespace kaiwa::cluster {

struct metadata_agent::state {
  using steady = std::chrono::steady_clock;

  /// Operators' requests waiting for the worker, and waiting for their end: past either a request
  /// is refused at once (an operator asks again).
  static constexpr std::size_t max_requests = 1024;

  /// Shards as logs and answers list them: "3,17,42".
  static std::string join(const std::vector<shard_t>& shards);

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
  // Worker only: when it last learned its lease had ended (member_unreachable's window).
  std::optional<steady::time_point> lease_ended_at;
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

  // -- start, the worker's queue and loop (metadata_agent.cpp) -------------------------------
  ~state();

  void post(bool state::*flag);

  /// Queues `p`; false (and nothing queued) when the queue is full or the agent stops.
  bool enqueue(proposal& p);

  /// Queues an operator's request for the worker; false when the queue is full or it stops.
  bool enqueue_job(std::function<void()>& job);

  bool enqueue_unreachable(const std::string& node);

  /// The controller revokes an unreachable member's lease; any other node revokes the lease of
  /// an unreachable controller (the lease its key lives under, its member key's too): a killed
  /// controller would otherwise control, and its shards stay led by it, until that lease
  /// expires. Safe whoever is wrong (epochs and CAS fence every write); the cost of a node cut
  /// off from the controller alone is a needless change of controller and of its shards' leaders.
  void unreachable(const std::string& node);

  /// Leaders' isr changes, CAS on their mod revisions without a fence, in batches of distinct
  /// shards (when a follower dies, every shard it followed shrinks its isr at once). A batch that
  /// fails on a condition or an invalid proposal is tried one proposal at a time, so each gets
  /// its own answer; one that fails otherwise (etcd unreachable) fails it and every proposal
  /// after it, rather than wait a call timeout for each batch.
  void propose_all(std::deque<proposal> ps);

  /// The worker's loop. Its steps (renew_session, do_register, do_resync, do_campaign,
  /// do_record, reconcile) are each true when done, false to be tried again after a backoff.
  void run();

  // -- the view (metadata_view.cpp) ----------------------------------------------------------

  std::shared_ptr<lease_session> current_session() const;

  /// This node's term while it holds the controller key under its current, valid lease.
  std::optional<std::int64_t> my_term() const;

  /// Keeps `a` for `shard` unless the view already has a newer one. Under view_mtx.
  void merge(shard_t shard, versioned_assignment a);

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
  std::optional<member_info> member_of(const key_value& kv) const;

  /// Members, assignments, the controller and the marker at one revision (one transaction), so
  /// one watch from the revision after it misses nothing of any.
  result<loaded> load();

  /// Replaces the view by `l` and delivers all of it. On the thread that owns delivery: start()'s
  /// caller before the watch runs, or the worker while no watch runs.
  void adopt(loaded l);

  /// Tells `controller` what the view says if that is not what it said last.
  void deliver_controller();

  void start_watch(std::int64_t from);

  /// On the watch thread: applies each event to the view and delivers it, in turn.
  void on_watch(const watch_update& u);

  bool do_resync();

  // -- this node's lease, member key and campaign (metadata_session.cpp) ---------------------

  /// A new lease in place of a lost one. The old lease is revoked (its keys, the member key and
  /// any controller key, go now): this node stopped acting on it, and a lapse is then always a
  /// failure the controller sees, never a gap it may or may not have noticed.
  bool renew_session();

  /// Puts this node's member key under `lease`, naming the cluster its data is of (recorded in
  /// the data dir first, so a node never publishes an id it could forget). Only a registration
  /// puts it: a put under the same lease would look like a restart to plan_restarted.
  status register_member(std::int64_t lease);

  /// Takes the controller key under `lease` if nobody holds it. Who holds it comes by the watch.
  status campaign(std::int64_t lease);

  bool do_register();

  bool do_campaign();

  // -- etcd's data lost (metadata_loss.cpp) --------------------------------------------------

  /// Takes the marker key (or its absence) into the view, and learns the cluster's id from it
  /// when this node has none yet: true then (the worker is to record it in the data dir; the
  /// next registration publishes it). Under view_mtx.
  bool set_marker(std::optional<key_value> kv);

  /// Why etcd's data doesn't describe this node's cluster, by the marker `m` etcd holds; nullopt
  /// when it does (or no cluster was placed yet). Under view_mtx.
  std::optional<std::string> marker_problem(const std::optional<cluster_marker>& m) const;

  /// etcd no longer describes this cluster: logged once per incident (what happened, what to
  /// do); the view keeps what it had (the last one etcd described the cluster in) until a load
  /// replaces it, and the worker loads again each second until the cluster is found again.
  void declare_lost(const std::string& what);

  /// Once a second on the worker: whether etcd still has this cluster's marker and a revision at
  /// least the one the view has seen. A watch cannot tell: on an etcd restarted empty it waits
  /// silently for a revision the new history won't reach for a long time.
  void probe();

  /// Records the cluster id this node learned in its data dir (once). The worker's, and start's
  /// before the worker runs.
  status record_known();

  bool do_record();

  // -- operators' requests (metadata_requests.cpp) -------------------------------------------

  std::string move_key(shard_t shard) const;
  std::string drain_key(const std::string& node) const;
  std::string removal_key(const std::string& node) const;

  /// How `w` ended by what the view shows; nullopt while it runs. Under view_mtx.
  std::optional<std::string> outcome(const waiter& w) const;

  /// Answers the waiters whose request ended, and delivers this node's finished drain.
  void settle_waiters();

  /// On the worker: withdraws the requests past their deadline and answers them.
  void expire_waiters();

  /// Writes request `key` = `value` (under `lease`) unless it exists, and waits for its end.
  /// An existing drain of the same node is joined instead.
  void submit(waiter w, const std::string& value, std::int64_t lease);

  void submit_move(shard_t shard, std::string to, std::chrono::milliseconds timeout,
                   request_done done);

  void submit_drain(std::string node, std::chrono::milliseconds grace,
                    std::chrono::milliseconds timeout, request_done done);

  void submit_removal(std::string node, std::chrono::milliseconds timeout, request_done done);

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
                     std::set<std::string>& drained, std::set<shard_t>& moving);

  /// Deletes or marks the request keys the controller is done with, each if it is unchanged.
  bool end_requests(const std::vector<request_end>& ends, std::int64_t term);

  // -- the controller's rounds (metadata_controller.cpp) -------------------------------------

  /// Takes what the controller wrote into the view (the watch brings it later) and logs it.
  void written(const std::vector<assignment_write>& batch, std::int64_t revision,
               std::int64_t term);

  enum class placement { place, none, wait };

  /// Whether this round places the shards that have no assignment (`assigned` have one): only
  /// in the first placement (or one a previous controller left half done), never once the marker
  /// says it finished (a missing shard is logged instead: its replicas may hold data at higher
  /// epochs, which a placement at epoch 1 would wedge or lose). A new cluster's marker is written
  /// first (`wait`: the watch brings it, and the next round places); the marker is marked placed
  /// once every shard has an assignment.
  result<placement> may_place(const std::optional<key_value>& mark,
                              const std::optional<cluster_marker>& mk, const node_set& live,
                              std::size_t assigned, std::int64_t term);

  /// One controller round: first placement of the shards that have none, failover of the shards
  /// whose leader is not live, a new epoch for the shards whose leader registered again since
  /// they were written (plan_restarted), and (`preferred`) leadership back to preferred
  /// replicas. Writes are CAS on the mod revision fenced by the term; a failed condition
  /// re-reads and re-plans.
  bool reconcile(bool preferred, std::vector<shard_t>& last_stranded);
};

}  // namespace kaiwa::cluster
