// The agent's lifecycle and threads: start, the public API, and the worker's queue and loop that
// serve it. The state and which file holds which of its jobs: cluster/detail/metadata_state.hpp.
#include "cluster/metadata_agent.hpp"

#include <algorithm>

#include "cluster/detail/metadata_state.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/process.hpp"

namespace kaiwa::cluster {

namespace {

using namespace std::chrono_literals;

/// propose_isr calls waiting for the worker (a node leads at most max_shards; each leader has
/// one proposal out at a time), and member_unreachable reports. Past it a proposal fails at once
/// (its leader proposes again) and an unreachable member is left to its lease's expiry.
constexpr std::size_t max_proposals = 65536;
constexpr std::size_t max_unreachable = 1024;
/// How often the controller moves leaders back to their preferred replicas (how many a round:
/// metadata_controller.cpp).
constexpr auto preferred_period = 1s;
/// A failed etcd step (a new lease, a registration, a campaign, a controller round) is tried
/// again after this, doubling up to the second bound.
constexpr auto retry_first = 200ms;
constexpr auto retry_last = 1000ms;

}  // namespace

std::string metadata_agent::state::join(const std::vector<shard_t>& shards) {
  std::string out;
  for (auto s : shards) {
    if (!out.empty()) out += ',';
    out += std::to_string(s);
  }
  return out;
}

metadata_agent::state::~state() {
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

// -- posting to the worker -------------------------------------------------------------------

void metadata_agent::state::post(bool state::*flag) {
  {
    std::lock_guard lock(mtx);
    this->*flag = true;
  }
  cv.notify_all();
}

bool metadata_agent::state::enqueue(proposal& p) {
  {
    std::lock_guard lock(mtx);
    if (stopping || proposals.size() >= max_proposals) return false;
    proposals.push_back(std::move(p));
  }
  cv.notify_all();
  return true;
}

bool metadata_agent::state::enqueue_job(std::function<void()>& job) {
  {
    std::lock_guard lock(mtx);
    if (stopping || jobs.size() >= max_requests) return false;
    jobs.push_back(std::move(job));
  }
  cv.notify_all();
  return true;
}

bool metadata_agent::state::enqueue_unreachable(const std::string& node) {
  {
    std::lock_guard lock(mtx);
    if (stopping || unreachable_nodes.size() >= max_unreachable) return false;
    unreachable_nodes.push_back(node);
  }
  cv.notify_all();
  return true;
}

// -- the worker ----------------------------------------------------------------------------

void metadata_agent::state::unreachable(const std::string& node) {
  if (node == cfg.node) return;
  // A node cut off itself sees every member go silent (member_unreachable).
  auto session = current_session();
  if (!session || !session->valid() ||
      (lease_ended_at && steady::now() - *lease_ended_at < cfg.failure_timeout)) {
    log(log_level::info, "metadata_unreachable_ignored",
        {{"member", node},
         {"why", "this node's own lease is not valid or ended within the failure timeout"}});
    return;
  }
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

void metadata_agent::state::propose_all(std::deque<proposal> ps) {
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

void metadata_agent::state::run() {
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
    if (lost) lease_ended_at = steady::now();
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

// -- the public API --------------------------------------------------------------------------

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
  st->worker = named_thread("kaiwa-metadata", [st] { st->run(); });
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
    auto d = st->session->valid_until() - state::steady::now();
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
