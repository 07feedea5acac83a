#include "actors/rooms.hpp"

#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include <atomic>
#include <future>
#include <thread>

#include "actors/detail/cluster_actor.hpp"
#include "actors/detail/messages.hpp"
#include "actors/detail/replication_actor.hpp"
#include "actors/detail/tls.hpp"
#include "cluster/controller.hpp"
#include "cluster/metadata_agent.hpp"
#include "core/address.hpp"
#include "core/admin_error.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/replies.hpp"
#include "storage/journal.hpp"

namespace kaiwa {

namespace detail {

room_env::room_env(storage::journal& j, rooms_config c)
    : journal(j),
      cfg(std::move(c)),
      shards(j.shards()),
      shard_states(std::make_unique<std::atomic<shard_status>[]>(shards)),
      backlog(std::make_unique<std::atomic<std::uint32_t>[]>(backlog_slots)),
      creations(cfg.room_creations_per_minute) {
  // A node on its own owns every shard; a cluster member learns its shards from the map.
  auto initial = cfg.cluster ? shard_status::elsewhere : shard_status::owned;
  for (std::uint32_t s = 0; s < shards; ++s) shard_states[s].store(initial);
}

}  // namespace detail

namespace {

/// A drain with etcd waits as long as today's coordinator drain may take: every shard the node
/// leads or holds changes, each catching up a replica first.
constexpr std::chrono::seconds replica_drain_timeout{3600};

}  // namespace

struct rooms::impl {
  impl(rooms_config c, storage::journal& j) : env{j, std::move(c)} {
    // CAF's own default is at least 4 threads; on a small machine they only contend. By
    // default one a CPU this process may use (its affinity mask and cgroup quota).
    auto threads = env.cfg.threads ? env.cfg.threads : available_cpus().cpus;
    sys_cfg.set("scheduler.max-threads", threads);
    // Idle workers poll for a while before they sleep; CAF's defaults (100 busy polls, then
    // 500 polls with 50 us sleeps) burn a core's worth of wake-ups that the I/O threads need.
    sys_cfg.set("work-stealing.aggressive-poll-attempts", std::size_t{10});
    sys_cfg.set("work-stealing.moderate-poll-attempts", std::size_t{10});
    if (env.cfg.cluster) {
      sys_cfg.load<caf::io::middleman>();
      auto timeout = caf::timespan(env.cfg.cluster->failure_timeout);
      sys_cfg.set("middleman.heartbeat-interval", timeout / 5);
      sys_cfg.set("middleman.connection-timeout", timeout);
    }
  }

  detail::room_env env;
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::vector<caf::actor> registries;
  caf::actor cluster;  // set when clustered
  // Replicated shards (cluster_config::etcd): the node's part in etcd, and its shards' logs.
  // The agent calls into the actors from its threads, so it goes before they do (stop()).
  // Atomic: the actors' hooks read it on their threads while start() and stop() set it.
  std::atomic<std::shared_ptr<cluster::metadata_agent>> agent;
  caf::actor replication;
  std::shared_ptr<detail::replication_metrics> replication_metrics =
      std::make_shared<detail::replication_metrics>();
  caf::actor start_replication(caf::actor cluster_actor);
  /// Registers the node in etcd; an error message when it can't.
  std::optional<std::string> start_agent(const std::string& cluster_address);
  // Listens and dials for the cluster actor: CAF's own middleman actor, or, with TLS, ours
  // (detail/tls.hpp), which the node ends itself.
  caf::io::middleman_actor cluster_mm;
  bool own_mm = false;
  std::uint16_t cluster_port = 0;
  // dispatch() and cluster_admin() count themselves in `using_actors` before they check
  // `running`, and stop() clears `running` before it waits for the count to drop to zero: with
  // both sequentially consistent, a call either sees the layer stopped or is waited for, so none
  // touches a registry or the actor system after stop() tears them down.
  std::atomic<bool> running{false};
  std::atomic<std::uint32_t> using_actors{0};

  /// Counts a caller in `using_actors` for its scope; `ok` says whether the layer runs.
  class usage {
   public:
    explicit usage(impl& i) : i_(i) {
      i_.using_actors.fetch_add(1);
      ok = i_.running.load();
    }
    ~usage() { i_.using_actors.fetch_sub(1, std::memory_order_release); }
    usage(const usage&) = delete;
    usage& operator=(const usage&) = delete;
    bool ok = false;

   private:
    impl& i_;
  };
};

rooms::rooms(rooms_config cfg, storage::journal& journal)
    : impl_(std::make_unique<impl>(std::move(cfg), journal)) {}

rooms::~rooms() { stop(); }

std::optional<std::string> rooms::start() {
  std::shared_ptr<const detail::tls_context> tls;
  if (auto& cc = impl_->env.cfg.cluster) {
    if (cc->tls.enabled()) {
      auto made = detail::make_tls_context(cc->tls);
      if (auto* err = std::get_if<std::string>(&made)) return std::move(*err);
      tls = std::get<0>(std::move(made));
    } else if (!is_loopback(cc->host)) {
      // Plain BASP admits anyone who can connect, and CAF allocates whatever payload size a
      // header declares: off loopback that is anyone on the network.
      return "the cluster listener " + cc->host +
             " is not loopback, so it needs TLS: make a CA and node certificates with `kaiwa "
             "cert ca --out DIR` and `kaiwa cert node --ca DIR --name " +
             cc->node_id +
             " --out DIR` and pass --cluster-ca, --cluster-cert and --cluster-key "
             "(docs/cluster.md)";
    } else {
      log(log_level::warn, "cluster_without_tls",
          {{"listener", cc->host}, {"why", "loopback only: any local process can join"}});
    }
  }
  impl_->sys = std::make_unique<caf::actor_system>(impl_->sys_cfg);
  for (std::size_t i = 0; i < std::max<std::size_t>(1, impl_->env.cfg.registries); ++i)
    impl_->registries.push_back(detail::spawn_registry(*impl_->sys, impl_->env));
  impl_->running = true;
  if (!impl_->env.cfg.cluster) return std::nullopt;
  auto& cc = *impl_->env.cfg.cluster;
  auto& sys = *impl_->sys;
  impl_->own_mm = tls != nullptr;
  impl_->cluster_mm = tls ? detail::spawn_tls_middleman(sys, std::move(tls), cc.failure_timeout)
                          : sys.middleman().actor_handle();
  if (!cc.etcd.empty()) {
    cc.member_unreachable = [i = impl_.get()](const std::string& node) {
      if (auto a = i->agent.load()) a->member_unreachable(node);
    };
    cc.replica_change = [i = impl_.get()](const cluster_request& r,
                                          std::function<void(std::string)> done) {
      auto a = i->agent.load();
      if (!a) return done("this node has no metadata agent yet");
      switch (r.what) {
        case cluster_request::kind::move:
          return a->request_move(r.shard, r.node, cluster::move_timeout, std::move(done));
        case cluster_request::kind::drain:
          return a->request_drain(r.node, r.grace, replica_drain_timeout, std::move(done));
        case cluster_request::kind::remove:
          return a->request_removal(r.node, cluster::move_timeout, std::move(done));
        default:
          return done("not a replica change");
      }
    };
    cc.metadata_status = [i = impl_.get()] {
      auto a = i->agent.load();
      return a ? a->status_json() : std::string{};
    };
  }
  impl_->cluster = detail::spawn_cluster(sys, impl_->env, impl_->registries, impl_->cluster_mm);
  if (!cc.etcd.empty()) {
    // Set before the node registers in etcd: no shard is served, no peer knows this node yet,
    // so no room commits and no replication message arrives before the actors can see it.
    impl_->replication = impl_->start_replication(impl_->cluster);
    impl_->env.replication = impl_->replication;
  }
  caf::expected<std::uint16_t> port = caf::sec::runtime_error;
  {
    // Scoped: a scoped actor counts as running, and stop() waits for every actor to end.
    caf::scoped_actor self{sys};
    self->request(impl_->cluster_mm, caf::infinite, caf::publish_atom::value, cc.port,
                  caf::actor_cast<caf::strong_actor_ptr>(impl_->cluster),
                  sys.message_types(impl_->cluster), cc.host, true)
        .receive([&](std::uint16_t p) { port = p; }, [&](caf::error& e) { port = std::move(e); });
  }
  if (!port) {
    auto msg = "can't listen for the cluster on " + cc.host + ":" + std::to_string(cc.port) + ": " +
               sys.render(port.error());
    stop();
    return msg;
  }
  impl_->cluster_port = *port;
  auto address = cc.host + ":" + std::to_string(*port);
  caf::anon_send(impl_->cluster, detail::start_atom::value, address);
  if (!cc.etcd.empty()) {
    if (auto err = impl_->start_agent(address)) {
      stop();
      return err;
    }
  }
  return std::nullopt;
}

caf::actor rooms::impl::start_replication(caf::actor cluster_actor) {
  auto& cc = *env.cfg.cluster;
  detail::replication_hooks hooks;
  // Through the cluster actors' connections: the receiving one names the sender by its
  // connection (cluster_actor.cpp, repl_in).
  hooks.send = [cluster_actor](const std::string& node, std::string bytes) {
    caf::anon_send(cluster_actor, detail::repl_out_atom::value, node, std::move(bytes));
  };
  hooks.propose_isr = [this](shard_t s, cluster::shard_assignment next, std::int64_t expected,
                             std::function<void(std::optional<std::int64_t>)> done) {
    auto a = agent.load();
    if (!a) return done(std::nullopt);
    a->propose_isr(s, std::move(next), expected, std::move(done));
  };
  hooks.lease_valid = [this] {
    auto a = agent.load();
    return a && a->lease_valid();
  };
  hooks.serving = [cluster_actor](shard_t s, bool serving) {
    caf::anon_send(cluster_actor, detail::serving_atom::value, s, serving);
  };
  hooks.resign = [this](shard_t s, cluster::epoch_t epoch) {
    if (auto a = agent.load()) a->resign(s, epoch);
  };
  cluster::in_sync_config isc;
  isc.min_insync = cc.min_insync;
  return detail::spawn_replication(*sys, env.journal, cc.node_id, isc, std::move(hooks),
                                   cc.staging_dir, replication_metrics,
                                   {cc.log_retention_entries, cc.log_retention_bytes});
}

std::optional<std::string> rooms::impl::start_agent(const std::string& cluster_address) {
  auto& cc = *env.cfg.cluster;
  cluster::metadata_config mc;
  for (auto& e : cc.etcd) {
    auto hp = parse_host_port(e);
    if (!hp || hp->port == 0) return "etcd endpoint '" + e + "' is not HOST:PORT";
    mc.etcd.push_back({hp->host, hp->port});
  }
  mc.prefix = cc.etcd_prefix;
  mc.node = cc.node_id;
  mc.cluster_address = cluster_address;
  mc.public_address = cc.public_address;
  mc.shards = env.shards;
  mc.replication_factor = cc.replication_factor;
  mc.failure_timeout = cc.failure_timeout;
  mc.fresh_data = cc.fresh_data;
  mc.cluster_id_file = cc.cluster_id_file;
  // The agent's threads post into the actors; the handles outlive the agent (stop()).
  cluster::metadata_events ev;
  ev.members = [to_cluster = this->cluster](std::map<std::string, cluster::member_info> live) {
    std::vector<std::string> ids, addresses;
    for (auto& [id, m] : live) {
      ids.push_back(id);
      addresses.push_back(m.cluster_address);
    }
    caf::anon_send(to_cluster, detail::etcd_members_atom::value, std::move(ids),
                   std::move(addresses));
  };
  ev.assignment = [to_cluster = this->cluster, to_replication = replication](
                      shard_t s, cluster::versioned_assignment a) {
    auto json = cluster::encode(a.assignment);
    caf::anon_send(to_cluster, detail::etcd_assign_atom::value, s, json, a.mod_revision);
    caf::anon_send(to_replication, detail::assign_atom::value, s, std::move(json), a.mod_revision);
  };
  ev.controller = [node = cc.node_id](std::optional<cluster::controller_term> c) {
    log(log_level::info, "cluster_controller",
        {{"node", node}, {"controller", c ? c->node : ""}, {"term", c ? c->term : 0}});
  };
  ev.drained = [to_cluster = this->cluster](std::chrono::milliseconds grace) {
    caf::anon_send(to_cluster, detail::drained_atom::value, std::int64_t{grace.count()});
  };
  ev.lease_lost = [node = cc.node_id] {
    log(log_level::warn, "cluster_lease_lost",
        {{"node", node}, {"effect", "this node leads no shard until it has a lease again"}});
  };
  auto started = cluster::metadata_agent::start(std::move(mc), std::move(ev));
  if (!started.ok())
    return "can't join the cluster's metadata in etcd (" +
           [&] {
             std::string list;
             for (auto& e : cc.etcd) list += (list.empty() ? "" : ",") + e;
             return list;
           }() +
           "): " + started.err().message +
           // A refusal of this node's own settings or state is not etcd's failure.
           (started.err().code == cluster::errc::invalid
                ? std::string{}
                : " (is etcd running? docs/operations.md, \"A replicated cluster (etcd)\")");
  agent.store(std::shared_ptr<cluster::metadata_agent>(std::move(*started)));
  return std::nullopt;
}

void rooms::dispatch(command c) {
  impl::usage use(*impl_);
  if (!use.ok) {
    if (c.op != room_op::disconnect)
      c.link->send(error_frame(c.id, errc::unavailable, "the node is shutting down"));
    return;
  }
  auto& env = impl_->env;
  auto hash = std::hash<room_id>{}(c.room);
  if (!env.command_queued(env.backlog_slot(hash), c.op))
    return c.link->send(
        error_frame(c.id, errc::unavailable, "the room has too many commands queued: retry"));
  // Rooms of shards owned elsewhere go through the cluster actor, which knows their owner.
  if (impl_->cluster && env.status(env.shard(c.room)) == detail::shard_status::elsewhere) {
    caf::anon_send(impl_->cluster, std::move(c));
    return;
  }
  auto& regs = impl_->registries;
  caf::anon_send(regs[hash % regs.size()], std::move(c));
}

void rooms::stop() {
  if (!impl_->running.exchange(false)) return;
  while (impl_->using_actors.load() != 0) std::this_thread::yield();
  // Its lease revoked first: the controller gives this node's shards to their in-sync
  // followers now, not at the lease's expiry.
  impl_->agent.store(nullptr);
  if (impl_->replication) caf::anon_send_exit(impl_->replication, caf::exit_reason::user_shutdown);
  impl_->replication = nullptr;
  if (impl_->cluster) caf::anon_send_exit(impl_->cluster, caf::exit_reason::user_shutdown);
  for (auto& r : impl_->registries) caf::anon_send(r, detail::stop_atom::value);
  impl_->registries.clear();
  impl_->cluster = nullptr;
  if (impl_->own_mm) caf::anon_send_exit(impl_->cluster_mm, caf::exit_reason::user_shutdown);
  impl_->cluster_mm = nullptr;
  impl_->sys->await_all_actors_done();
  // The last strong handle of the (detached) replication actor: its thread ends only once its
  // object is destroyed, which the actor system's destructor waits for.
  impl_->env.replication = nullptr;
  // The last commit completions may still be running on the journal's writer thread, inside
  // CAF's enqueue or releasing their room actor: an empty commit's completion runs after they
  // are done and destroyed (journal::commit).
  auto barrier = std::make_shared<std::promise<void>>();
  auto passed = barrier->get_future();
  impl_->env.journal.commit({}, [barrier](const storage::status&) { barrier->set_value(); });
  passed.wait();
  impl_->sys.reset();
}

rooms_stats rooms::stats() const {
  auto& e = impl_->env;
  auto& rm = *impl_->replication_metrics;
  auto agent = impl_->agent.load();
  return {e.active.load(),
          e.activated.load(),
          e.passivated.load(),
          e.events_appended.load(),
          e.deliveries.load(),
          static_cast<std::uint64_t>(std::max<std::int64_t>(0, e.queued.load())),
          static_cast<std::uint64_t>(e.queued_high_water.load()),
          e.backlog_refused.load(),
          e.creations_refused.load(),
          e.shards_owned.load(),
          e.members_up.load(),
          e.map_epoch.load(),
          e.shards_handed_over.load(),
          e.shards_taken_over.load(),
          e.shards_under_replicated.load(),
          e.shards_under_min_insync.load(),
          e.remote_commands_sent.load(),
          e.remote_commands_received.load(),
          rm.log_entries.load(),
          rm.log_bytes.load(),
          rm.followers_behind_log_start.load(),
          rm.entries_trimmed.load(),
          rm.snapshots_sent.load(),
          rm.snapshots_installed.load(),
          rm.snapshots_failed.load(),
          agent && agent->metadata_lost() ? 1u : 0u,
          agent ? agent->shards_held() : 0u};
}

bool rooms::ready() const { return !impl_->env.cfg.cluster || impl_->env.map_epoch.load() > 0; }

std::uint16_t rooms::cluster_port() const { return impl_->cluster_port; }

void rooms::cluster_admin(cluster_request r, std::function<void(int, std::string)> done) {
  impl::usage use(*impl_);
  if (!use.ok || !impl_->cluster)
    return done(http_status(admin_errc::not_found),
                admin_error_json(admin_errc::not_found, "this node is not a cluster member",
                                 "a node joins a cluster when started with --cluster ADDR:PORT"));
  caf::anon_send(impl_->cluster, detail::admin_atom::value,
                 std::make_shared<detail::admin_query>(std::move(r), std::move(done)));
}

std::vector<shard_t> rooms::owned_shards() const {
  auto& env = impl_->env;
  std::vector<shard_t> out;
  for (std::uint32_t s = 0; s < env.shards; ++s)
    if (env.status(static_cast<shard_t>(s)) == detail::shard_status::owned)
      out.push_back(static_cast<shard_t>(s));
  return out;
}

void rooms::ask_members(std::string request, std::chrono::milliseconds timeout,
                        std::function<void(std::vector<std::string>, bool)> done) {
  impl::usage use(*impl_);
  if (!use.ok || !impl_->cluster) return done({}, !use.ok);
  caf::anon_send(impl_->cluster, detail::ask_atom::value,
                 std::make_shared<detail::members_query>(
                     detail::members_query{std::move(request), timeout, std::move(done)}));
}

void rooms::broadcast_notice(const user_id& user, std::string json) {
  impl::usage use(*impl_);
  if (!use.ok || !impl_->cluster) return;
  caf::anon_send(impl_->cluster, detail::notice_atom::value, user.str(), std::move(json));
}

}  // namespace kaiwa
