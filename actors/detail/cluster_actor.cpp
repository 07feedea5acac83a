// The cluster actor (see cluster_actor.hpp and docs/cluster.md): the CAF side of the cluster.
// It turns messages from peers, the rooms and the admin API into calls on the cluster's parts,
// which decide, and carries out what they decide: sends, requests with their timeouts, monitors,
// the rooms' shard status, the journal's shard export and ingest.
//
//   cluster/members.hpp     who is up, at which address; admission; who is dialled again
//   cluster/shard_map.hpp   the placement this node follows (applied, persisted, broadcast here)
//   cluster/routing.hpp     sessions known elsewhere, their subscriptions and requests, stand-ins
//   cluster/handover.hpp    shards handed away and adopted, what a map does to each (invariants)
//   cluster/controller.hpp  the coordinator's moves, batches and drains
//   cluster/gather.hpp      read queries asked of every member
//   cluster/admin_view.hpp  the admin API's views of the cluster
//
// What stays here needs CAF: remote_link (a stand-in whose replies are messages), disk_worker
// (a detached actor per blocking disk job), and the actor's handlers.

#include <caf/io/middleman.hpp>

#include <filesystem>
#include <map>
#include <set>

#include "actors/detail/cluster_actor.hpp"
#include "actors/detail/replication_actor.hpp"
#include "actors/detail/wire.hpp"
#include "cluster/admin_view.hpp"
#include "cluster/controller.hpp"
#include "cluster/gather.hpp"
#include "cluster/members.hpp"
#include "cluster/routing.hpp"
#include "cluster/shard_assignment.hpp"
#include "cluster/shard_map.hpp"
#include "core/address.hpp"
#include "core/admin_error.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "core/replies.hpp"
#include "storage/journal.hpp"

namespace kaiwa::detail {

namespace {

using cluster::shard_map;

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using state_atom = caf::atom_constant<caf::atom("state")>;
using rcmd_atom = caf::atom_constant<caf::atom("rcmd")>;
using rreply_atom = caf::atom_constant<caf::atom("rreply")>;
using rpush_atom = caf::atom_constant<caf::atom("rpush")>;
using rended_atom = caf::atom_constant<caf::atom("rended")>;
using handoff_atom = caf::atom_constant<caf::atom("handoff")>;
using ingest_atom = caf::atom_constant<caf::atom("ingest")>;
using abort_atom = caf::atom_constant<caf::atom("abort")>;
using move_atom = caf::atom_constant<caf::atom("move")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using load_atom = caf::atom_constant<caf::atom("load")>;
using members_atom = caf::atom_constant<caf::atom("members")>;
using redial_atom = caf::atom_constant<caf::atom("redial")>;
using job_atom = caf::atom_constant<caf::atom("job")>;
using rquery_atom = caf::atom_constant<caf::atom("rquery")>;
using ranswer_atom = caf::atom_constant<caf::atom("ranswer")>;
using rqtimeout_atom = caf::atom_constant<caf::atom("rqtimeout")>;
using rnotice_atom = caf::atom_constant<caf::atom("rnotice")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using repl_in_atom = caf::atom_constant<caf::atom("replin")>;
using rlost_atom = caf::atom_constant<caf::atom("rlost")>;
using relead_atom = caf::atom_constant<caf::atom("relead")>;

// A notice from another member is pushed to clients as it came: a bound on its size, and it
// must look like a push frame.
constexpr std::size_t max_notice_bytes = 4096;

const std::string map_setting = "cluster.map";

/// Work that blocks on disk (shard export and ingest), run on a thread of its own so the
/// cluster actor keeps routing meanwhile. Returns an error message, empty on success.
using blocking_job = std::shared_ptr<std::function<std::string()>>;

}  // namespace
}  // namespace kaiwa::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kaiwa::detail::blocking_job)

namespace kaiwa::detail {

namespace {

/// Runs one blocking job on a thread of its own, answers its result and ends. (A class, not a
/// function-based actor: CAF 0.17 dereferences a null pointer spawning those without
/// arguments, which UBSan reports.)
class disk_worker : public caf::event_based_actor {
 public:
  using caf::event_based_actor::event_based_actor;
  caf::behavior make_behavior() override {
    return {[this](job_atom, const blocking_job& job) {
      auto err = (*job)();
      quit();
      return err;
    }};
  }
};

/// A session of another node, as the rooms of this node see it. Every reply and push becomes
/// one message to that node's cluster actor; a whole lane group (all of that node's
/// subscribers of a room) becomes one message, which is what "once per node" means.
class remote_link final : public client_link {
 public:
  remote_link(caf::actor origin, std::string node, std::uint64_t remote_id, const void* lane)
      : origin_(std::move(origin)), node_(std::move(node)), remote_id_(remote_id), lane_(lane) {}

  const std::string& node() const noexcept { return node_; }
  std::uint64_t remote_id() const noexcept { return remote_id_; }

  void post(std::function<void()> fn) override { fn(); }
  const void* lane() const noexcept override { return lane_; }
  void push(const frame_ptr& f) override {
    caf::anon_send(origin_, rpush_atom::value, encode_link_ids({remote_id_}),
                   std::vector<std::string>{std::string(f->payload())});
  }
  void reply(const frame_ptr& f) override {
    caf::anon_send(origin_, rreply_atom::value, remote_id_, std::string(f->payload()));
  }
  void subscription_ended(const room_id& room, std::string_view reason) override {
    caf::anon_send(origin_, rended_atom::value, remote_id_, room.str(), std::string(reason));
  }
  void subscription_lost(const room_id&) override {}
  void push_to_lane(std::shared_ptr<const link_group> group,
                    std::shared_ptr<const frame_list> frames, const client_link* exclude) override {
    std::vector<std::uint64_t> ids;
    ids.reserve(group->size());
    for (auto& link : *group)
      if (link.get() != exclude) ids.push_back(static_cast<const remote_link&>(*link).remote_id_);
    std::vector<std::string> payloads;
    payloads.reserve(frames->size());
    for (auto& f : *frames) payloads.emplace_back(f->payload());
    caf::anon_send(origin_, rpush_atom::value, encode_link_ids(ids), std::move(payloads));
  }

  std::set<std::string> rooms;  // rooms it joined on this node; cluster actor only

 private:
  caf::actor origin_;
  std::string node_;
  std::uint64_t remote_id_;
  const void* lane_;
};

class cluster_actor : public caf::event_based_actor {
 public:
  cluster_actor(caf::actor_config& cfg, room_env& env, std::vector<caf::actor> registries,
                caf::io::middleman_actor mm)
      : caf::event_based_actor(cfg),
        env_(env),
        cfg_(*env.cfg.cluster),
        registries_(std::move(registries)),
        mm_(std::move(mm)),
        self_(cfg_.node_id),
        members_(self_) {
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
  }

  caf::behavior make_behavior() override {
    return {
        [this](start_atom, std::string& address) { start(std::move(address)); },
        [this](redial_atom, std::string& address) { dial(address); },
        [this](hello_atom, std::string& id,
               std::string& address) -> caf::result<std::string, std::string> {
          if (!cluster::valid_hello(id, address)) {
            log(log_level::error, "cluster_bad_hello", {});
            return caf::sec::invalid_argument;
          }
          // With etcd, who is a member is etcd's word: this node dials each member at the
          // address it registered and takes the id it answers there (dial). A hello that
          // arrives names no one: anyone reaching the port could say it is a member, be sent
          // that member's replication messages, send as it, and by closing the connection
          // have its lease revoked.
          if (!replicated()) peer_up(id, address, caf::actor_cast<caf::actor>(current_sender()));
          // The map tells a new node who the members and the coordinator are.
          return {self_, map_text_};
        },
        [this](state_atom, const std::string& blob) {
          if (replicated()) return;  // etcd's assignments place the shards
          auto m = shard_map::decode(blob);
          if (!m) return log(log_level::error, "cluster_bad_map", {});
          if (m->epoch() > map_.epoch() || !map_.shards()) apply(std::move(*m));
        },
        [this](command& c) { route(std::move(c)); },
        [this](etcd_members_atom, std::vector<std::string>& ids,
               std::vector<std::string>& addresses) { on_etcd_members(ids, addresses); },
        [this](etcd_assign_atom, shard_t s, const std::string& json, std::int64_t) {
          on_assignment(s, json);
        },
        [this](serving_atom, shard_t s, bool serving) { on_serving(s, serving); },
        [this](relead_atom) { lose_releaded(); },
        [this](repl_out_atom, const std::string& node, std::string& bytes) {
          if (auto peer = members_.handle(node)) send(peer, repl_in_atom::value, std::move(bytes));
        },
        [this](repl_in_atom, std::string& bytes) {
          // The sender is named by the connection it came on, not by what it claims.
          auto from =
              members_.id_of(current_sender() ? current_sender()->address() : caf::actor_addr{});
          if (from && env_.replication)
            send(env_.replication, peer_msg_atom::value, std::move(*from), std::move(bytes));
        },
        [this](rlost_atom, std::uint64_t id, std::string& room) {
          routes_.left(id, room);
          if (auto link = routes_.local(id))
            link->post([link, r = room_id{room}] { link->subscription_lost(r); });
        },
        [this](rcmd_atom, std::uint64_t id, std::string& origin, const std::string& blob) {
          on_remote_command(id, origin, blob);
        },
        [this](rreply_atom, std::uint64_t id, const std::string& payload) {
          // Taken first: an admin request's link lives only in its awaiting entry, which
          // answered() erases.
          auto link = routes_.local(id);
          if (!routes_.answered(id, payload)) return;  // answered `timeout` already
          if (link) link->send(text_frame(payload));
        },
        [this](rpush_atom, const std::string& ids, std::vector<std::string>& payloads) {
          on_remote_push(ids, payloads);
        },
        [this](rended_atom, std::uint64_t id, std::string& room, std::string& reason) {
          routes_.left(id, room);
          auto link = routes_.local(id);
          if (!link) return;
          link->post([link, r = room_id{room}, reason = std::move(reason)] {
            link->subscription_ended(r, reason);
          });
          // The session won't say `disconnect` for this room when it closes: say it now, so the
          // owner drops its stand-in's interest in the room. From here, not from the owner's
          // room: it travels the session's own path, so it can't overtake a later re-join.
          command c;
          c.op = room_op::disconnect;
          c.room = room_id{std::move(room)};
          c.link = std::move(link);
          (void)env_.command_queued(env_.backlog_slot(c.room),
                                    c.op);  // a disconnect: never refused
          route(std::move(c));
        },
        [this](handoff_atom, shard_t s, std::string& to) { return handoff(s, to); },
        [this](ingest_atom, shard_t s, std::vector<std::string>& names,
               std::vector<std::string>& contents, std::string& subs) {
          return ingest(s, std::move(names), std::move(contents), std::move(subs));
        },
        [this](abort_atom, shard_t s) { restore(s); },
        [this](move_atom, shard_t s, std::string& to) { return enqueue_move(s, to); },
        [this](retry_atom) { run_queue(); },
        [this](drain_atom, std::string& node, std::int64_t grace_ms) {
          return drain(node, std::chrono::milliseconds(grace_ms));
        },
        [this](drained_atom, std::int64_t grace_ms) {
          log(log_level::info, "cluster_node_drained", {{"node", self_}});
          if (cfg_.drained) cfg_.drained(std::chrono::milliseconds(grace_ms));
        },
        [this](load_atom) { return cfg_.load ? cfg_.load() : std::string("{}"); },
        [this](members_atom) {
          auto rp = make_response_promise<std::string>();
          members_json(std::make_shared<admin_query>(
              cluster_request{},
              [rp](int, std::string body) mutable { rp.deliver(std::move(body)); }));
          return rp;
        },
        [this](admin_atom, std::shared_ptr<admin_query>& q) { on_admin(std::move(q)); },
        [this](ask_atom, std::shared_ptr<members_query>& q) { ask_members(std::move(q)); },
        [this](rquery_atom, std::uint64_t qid, const std::string& request) {
          answer_query(qid, request);
        },
        [this](ranswer_atom, std::uint64_t qid, const std::string& node, std::string& page) {
          gathers_.answer(qid, node, std::move(page));
        },
        [this](rqtimeout_atom, std::uint64_t qid) { gathers_.timed_out(qid); },
        [this](notice_atom, std::string& user, std::string& json) {
          members_.each_up([&](auto&, auto& peer) { send(peer, rnotice_atom::value, user, json); });
        },
        [this](rnotice_atom, const std::string& user, const std::string& json) {
          if (!valid_name(user) || json.size() > max_notice_bytes ||
              !json.starts_with(R"({"op":")"))
            return log(log_level::error, "cluster_bad_notice", {});
          if (cfg_.on_notice) cfg_.on_notice(user_id{user}, json);
        },
    };
  }

 private:
  // -- membership -----------------------------------------------------------------------------

  bool coordinating() const { return map_.coordinator == self_; }
  bool replicated() const { return !cfg_.etcd.empty(); }

  void start(std::string address) {
    address_ = std::move(address);
    if (replicated()) return start_replicated();
    auto stored = env_.journal.setting(map_setting);
    if (stored && *stored) {
      if (auto m = shard_map::decode(**stored)) apply(std::move(*m), false);
    }
    if (!map_.shards() && cfg_.join.empty()) {
      // The first node of a new cluster: it coordinates and owns every shard.
      shard_map m(env_.shards, self_);
      m.members.push_back({self_, address_, false});
      apply(std::move(m));
    }
    if (coordinating()) admit(self_, address_);
    log(log_level::info, "cluster_started",
        {{"node", self_},
         {"address", address_},
         {"coordinator", map_.coordinator},
         {"epoch", map_.epoch()}});
    for (auto& m : map_.members)
      if (m.id != self_) dial(m.address);
    for (auto& a : cfg_.join) dial(a);
  }

  void dial(const std::string& address) {
    if (address == address_) return;
    if (members_.connected_to(address)) return;
    auto hp = parse_host_port(address);
    if (!hp || hp->port == 0)
      return log(log_level::error, "cluster_bad_address", {{"address", address}});
    // With TLS, mm_ dials over TLS: it presents this node's certificate and checks the peer's.
    request(mm_, caf::infinite, caf::connect_atom::value, hp->host, hp->port)
        .then(
            [this, address](const caf::node_id&, caf::strong_actor_ptr& ptr,
                            const std::set<std::string>&) {
              auto handle = caf::actor_cast<caf::actor>(ptr);
              if (!handle) return dial_failed(address, "no cluster actor there");
              request(handle, std::chrono::seconds(10), hello_atom::value, self_, address_)
                  .then(
                      [this, address, handle](std::string& id, std::string& map) {
                        if (replicated() && !registered_at(id, address))
                          return dial_failed(
                              address, "answered as " + id + ", which etcd doesn't register there");
                        members_.dial_succeeded(address);
                        peer_up(id, address, handle);
                        if (replicated()) return;
                        if (auto m = shard_map::decode(map); m && m->epoch() > map_.epoch())
                          apply(std::move(*m));
                      },
                      [this, address](caf::error& e) { dial_failed(address, to_string(e)); });
            },
            [this, address](caf::error& e) { dial_failed(address, to_string(e)); });
  }

  /// Logs the first of a run of failed dials of `address` (a peer that refuses this node's
  /// certificate, or that is down, fails every redial) and dials it again later.
  void dial_failed(const std::string& address, const std::string& why) {
    if (members_.dial_failed(address))
      log(log_level::warn, "cluster_dial_failed",
          {{"address", address},
           {"error", why},
           {"hint", cfg_.tls.enabled() ? "is the peer up, with a certificate of the same CA?"
                                       : "is the peer up, and without TLS like this node?"}});
    redial_later(address);
  }

  void redial_later(const std::string& address) {
    if (cluster::should_redial(address, cfg_.join, map_))
      delayed_send(this, cfg_.redial, redial_atom::value, address);
  }

  void peer_up(const std::string& id, const std::string& address, caf::actor handle) {
    if (!members_.up(id, address, handle, handle.address())) return;
    monitor(handle);
    log(log_level::info, "cluster_member_up", {{"node", id}, {"address", address}});
    if (replicated() && env_.replication) send(env_.replication, peer_up_atom::value, id);
    count_members_up();
    if (!coordinating()) return;
    admit(id, address);
    send(handle, state_atom::value, map_text_);
  }

  /// Coordinator: makes `id` a member (or updates its address) and plans shards onto it.
  void admit(const std::string& id, const std::string& address) {
    auto next = cluster::admitted(map_, id, address, self_);
    if (!next) return;
    apply(std::move(*next));
    broadcast();
    if (id != self_) rebalance({});
  }

  void on_down(const caf::down_msg& dm) {
    auto gone = members_.down(dm.source);
    if (!gone) return;
    auto& id = gone->id;
    count_members_up();
    // Its connection closed: a killed process is seen here at once, long before its lease
    // expires, and the controller starts the failover now.
    if (replicated()) {
      if (cfg_.member_unreachable) cfg_.member_unreachable(id);
      if (env_.replication) send(env_.replication, peer_down_atom::value, id);
    }
    log(log_level::warn, "cluster_member_down", {{"node", id}, {"reason", to_string(dm.reason)}});
    // Its sessions are gone: drop their subscriptions here.
    for (auto& proxy : routes_.take_proxies(id)) {
      for (auto& room : proxy->rooms) {
        command c;
        c.op = room_op::disconnect;
        c.room = room_id{room};
        c.link = proxy;
        originate(std::move(c));
      }
    }
    // Our sessions' subscriptions to its rooms are gone: they must resume with `since`. (The
    // map says which rooms are its: subscriptions follow their rooms through moves.)
    auto gone_rooms = [&](const std::string& room) {
      return map_.owner(env_.shard(room_id{room})) == id;
    };
    for (auto& [link, room] : routes_.lose(gone_rooms))
      link->post([link, r = room_id{room}] { link->subscription_lost(r); });
    time_out(routes_.unanswered_by(id), "the room's node " + id +
                                            " went down before answering: the request may or "
                                            "may not have been applied");
    if (id == map_.coordinator) handovers_.coordinator_lost();
    if (coordinating())
      for (auto shard : controller_.moving_with(id))
        log(log_level::warn, "cluster_move_peer_down", {{"shard", std::uint64_t{shard}}});
    redial_later(gone->address);
  }

  // -- the map ------------------------------------------------------------------------------

  /// Makes `m` this node's map: persists it and brings every shard's status in line.
  void apply(shard_map m, bool persist = true) {
    map_ = std::move(m);
    map_text_ = map_.encode();
    if (persist) {
      if (auto st = env_.journal.put_setting(map_setting, map_text_); !st.ok())
        log(log_level::error, "cluster_map_not_persisted", {{"error", st.err().message}});
    }
    if (map_.shards() != env_.shards) {
      log(log_level::error, "cluster_shard_count_mismatch",
          {{"map", map_.shards()}, {"local", env_.shards}});
      return;
    }
    for (std::uint32_t i = 0; i < env_.shards; ++i) {
      auto s = static_cast<shard_t>(i);
      switch (handovers_.on_map(s, map_.owner(s) == self_, env_.status(s))) {
        case cluster::map_step::none:
        case cluster::map_step::keep:
          break;
        case cluster::map_step::restore:
          restore(s);
          break;
        case cluster::map_step::adopt:
          adopt(s);
          env_.set_status(s, shard_status::owned);
          break;
        case cluster::map_step::handed_over:
          env_.set_status(s, shard_status::elsewhere);
          if (auto st = env_.journal.drop_shard(s); !st.ok())
            log(log_level::error, "cluster_drop_failed",
                {{"shard", i}, {"error", st.err().message}});
          break;
        case cluster::map_step::lost:
          env_.set_status(s, shard_status::elsewhere);
          log(log_level::warn, "cluster_shard_lost_without_handover",
              {{"shard", i}, {"owner", map_.owner(s)}});
          break;
      }
    }
    for (auto& mem : map_.members)
      if (mem.id != self_ && !members_.handle(mem.id)) dial(mem.address);
    // A node that said hello here before this node had a map waits to learn the cluster: pass
    // the map on (the coordinator sends it to every node up itself, see broadcast()).
    if (!coordinating())
      members_.each_joining(
          map_, [this](auto&, auto& peer) { send(peer, state_atom::value, map_text_); });
    std::uint64_t owned = 0;
    for (std::uint32_t i = 0; i < env_.shards; ++i)
      owned += env_.status(static_cast<shard_t>(i)) == shard_status::owned;
    env_.shards_owned = owned;
    env_.map_epoch = map_.epoch();
  }

  void count_members_up() { env_.members_up = members_.up_count(); }

  void count_owned() {
    std::uint64_t owned = 0;
    for (std::uint32_t i = 0; i < env_.shards; ++i)
      owned += env_.status(static_cast<shard_t>(i)) == shard_status::owned;
    env_.shards_owned = owned;
  }

  // -- replicated shards (cluster_config::etcd; docs/cluster.md "Replication and failover") --
  // The metadata agent passes on what etcd holds: the live members, each shard's assignment.
  // map_ is then the leaders' placement: commands go to a shard's leader, wherever it is. This
  // node serves a shard once the replication actor says it leads it with its log applied; it
  // stops when it no longer leads, and its rooms' subscribers resume (with `since`) from the
  // new leader. No coordinator, no handovers: a shard's data is on its replicas already.

  void start_replicated() {
    map_ = shard_map(env_.shards, std::string{});
    map_.members.push_back({self_, address_, false});
    env_.map_epoch = map_.epoch();
    log(log_level::info, "cluster_started",
        {{"node", self_}, {"address", address_}, {"metadata", "etcd"}});
  }

  /// etcd's members name `id` at `address` (replicated clusters).
  bool registered_at(const std::string& id, const std::string& address) const {
    return std::any_of(map_.members.begin(), map_.members.end(),
                       [&](auto& m) { return m.id == id && m.address == address; });
  }

  void on_etcd_members(const std::vector<std::string>& ids,
                       const std::vector<std::string>& addresses) {
    if (!replicated() || ids.size() != addresses.size()) return;
    std::vector<cluster::cluster_member> live;
    for (std::size_t i = 0; i < ids.size(); ++i)
      if (cluster::valid_hello(ids[i], addresses[i])) live.push_back({ids[i], addresses[i], false});
    if (std::none_of(live.begin(), live.end(), [&](auto& m) { return m.id == self_; }))
      live.push_back({self_, address_, false});  // between a lost lease and the next one
    map_.members = std::move(live);
    map_.touch();
    env_.map_epoch = map_.epoch();
    for (auto& m : map_.members)
      if (m.id != self_ && !members_.handle(m.id)) dial(m.address);
  }

  void on_assignment(shard_t s, const std::string& json) {
    if (!replicated() || s >= env_.shards) return;
    auto a = cluster::decode_assignment(json);
    if (!a) return log(log_level::error, "cluster_bad_assignment", {{"shard", std::uint64_t{s}}});
    assigned_.resize(env_.shards);
    assigned_[s] = *a;
    count_in_sync();
    if (map_.owner(s) == a->leader) return;
    auto before = map_.owner(s);
    map_.assign(s, a->leader);
    env_.map_epoch = map_.epoch();
    if (a->leader != self_) stop_serving(s);
    // Sessions here subscribed to the shard's rooms through the old leader are told to resume
    // from the new one. Its connection may still be up (paused, or a planned move), so no down
    // notice would tell them, and the old leader's own notice may never come. Shards are
    // gathered and done in one pass over the subscriptions: a failover changes hundreds at once.
    if (!before.empty() && before != self_) {
      if (releaded_.empty()) send(this, relead_atom::value);
      releaded_.insert(s);
    }
  }

  void lose_releaded() {
    auto moved = std::move(releaded_);
    releaded_.clear();
    for (auto& [link, room] :
         routes_.lose([&](const std::string& r) { return moved.contains(env_.shard(room_id{r})); }))
      link->post([link, r = room_id{room}] { link->subscription_lost(r); });
    // Requests the old leaders hold (paused, cut off: their connections may stay open for
    // seconds) are answered now: the client resends, by its cid, to the new leader.
    time_out(routes_.abandon([&](shard_t s, const std::string& node) {
      return moved.contains(s) && map_.owner(s) != node;
    }),
             "the room's shard changed leader before answering: the request may or may not "
             "have been applied");
  }

  /// Answers each of `requests` `timeout`: their outcome is unknown (a send may have been
  /// appended).
  template <class Unanswered>
  static void time_out(const std::vector<Unanswered>& requests, const std::string& why) {
    for (auto& a : requests)
      for (std::uint32_t k = 0; k < a.count; ++k)
        a.link->send(error_frame(a.request_id, errc::timeout, why));
  }

  /// The shards led here whose in-sync set is short: what an operator alerts on (Kafka's
  /// under-replicated and under-min-isr partitions).
  void count_in_sync() {
    std::uint64_t under = 0, below_min = 0;
    for (auto& a : assigned_) {
      if (!a || a->leader != self_) continue;
      under += a->isr.size() < a->replicas.size();
      below_min += a->isr.size() < cfg_.min_insync;
    }
    env_.shards_under_replicated = under;
    env_.shards_under_min_insync = below_min;
  }

  void on_serving(shard_t s, bool serving) {
    if (s >= env_.shards) return;
    if (!serving || map_.owner(s) != self_) return stop_serving(s);
    if (env_.status(s) == shard_status::owned) return;
    env_.set_status(s, shard_status::owned);
    count_owned();
    log(log_level::info, "cluster_shard_serving", {{"shard", std::uint64_t{s}}});
  }

  /// Stops the shard's rooms here; their subscribers are told to resume, and find the new
  /// leader (a room's state here may be ahead of what the new leader acked).
  void stop_serving(shard_t s) {
    if (env_.status(s) != shard_status::owned) return;
    env_.set_status(s, shard_status::elsewhere);
    count_owned();
    log(log_level::info, "cluster_shard_not_serving",
        {{"shard", std::uint64_t{s}}, {"leader", map_.owner(s)}});
    for (auto& reg : registries_)
      request(reg, caf::infinite, release_atom::value, s).then([this](released_rooms& rooms) {
        for (auto& r : rooms)
          for (auto& sub : r.subscribers) {
            if (auto* remote = dynamic_cast<remote_link*>(sub.link.get())) {
              if (auto origin = members_.handle(remote->node()))
                send(origin, rlost_atom::value, remote->remote_id(), r.room);
              left_room(*remote, r.room);
            } else {
              sub.link->post(
                  [link = sub.link, room = room_id{r.room}] { link->subscription_lost(room); });
            }
          }
      });
  }

  void broadcast() {
    members_.each_up([this](auto&, auto& peer) { send(peer, state_atom::value, map_text_); });
  }

  // -- routing ------------------------------------------------------------------------------

  /// A command already counted into its room's backlog (command_queued), to its registry.
  void to_registry(command c) {
    auto& target = registries_[std::hash<room_id>{}(c.room) % registries_.size()];
    send(target, std::move(c));
  }

  /// A command this actor makes itself (a dead member's sessions' disconnects, adoptions of a
  /// handover's subscribers): counted into its room's backlog like a session's (never refused:
  /// disconnects and adoptions aren't), since whoever takes it up counts it out. Uncounted, the
  /// room's count wrapped below zero and the room refused everything as "too many commands
  /// queued".
  void originate(command c) {
    (void)env_.command_queued(env_.backlog_slot(c.room), c.op);
    to_registry(std::move(c));
  }

  /// A command of a session of this node for a room whose shard is owned elsewhere.
  void route(command c) {
    auto s = env_.shard(c.room);
    const std::string* owner = map_.shards() ? &map_.owner(s) : nullptr;
    if (owner && *owner == self_) return to_registry(std::move(c));  // the map just changed
    env_.command_taken(env_.backlog_slot(c.room));
    auto to = owner ? members_.handle(*owner) : caf::actor{};
    if (!to) {
      if (c.op != room_op::disconnect)
        c.link->send(error_frame(c.id, errc::unavailable,
                                 owner && !owner->empty()
                                     ? "the room's node " + *owner + " is down: retry"
                                     : "the room's shard has no owner yet: retry"));
      return;
    }
    auto id = c.link->id();
    routes_.remember(id, c.link);
    if (c.op == room_op::join) routes_.joined(id, c.room.str());
    if (c.op == room_op::leave || c.op == room_op::disconnect) routes_.left(id, c.room.str());
    // Every request gets an answer: if the node dies first, `timeout` (see on_down).
    if (!c.id.empty() && c.op != room_op::typing && c.op != room_op::disconnect)
      routes_.expect(id, c.id, *owner, s, c.link);
    env_.remote_commands_sent.fetch_add(1, std::memory_order_relaxed);
    send(to, rcmd_atom::value, id, self_, encode_command(c));
    routes_.routed();
  }

  /// A command from a session of node `origin`.
  void on_remote_command(std::uint64_t id, const std::string& origin, const std::string& blob) {
    auto c = decode_command(blob);
    if (!c) return log(log_level::error, "cluster_bad_command", {{"from", origin}});
    auto proxy = proxy_for(origin, id, caf::actor_cast<caf::actor>(current_sender()));
    if (!proxy) return;
    if (!env_.command_queued(env_.backlog_slot(c->room), c->op)) {
      proxy->send(
          error_frame(c->id, errc::unavailable, "the room has too many commands queued: retry"));
      return;
    }
    if (c->op == room_op::join) proxy->rooms.insert(c->room.str());
    if (c->op == room_op::leave || c->op == room_op::disconnect) {
      proxy->rooms.erase(c->room.str());
      if (proxy->rooms.empty()) routes_.drop_proxy(origin, id);  // rooms hold it while they need it
    }
    c->link = std::move(proxy);
    env_.remote_commands_received.fetch_add(1, std::memory_order_relaxed);
    to_registry(std::move(*c));
  }

  std::shared_ptr<remote_link> proxy_for(const std::string& node, std::uint64_t id,
                                         caf::actor origin) {
    auto& slot = routes_.proxy(node, id);
    if (!slot) {
      if (!origin) origin = members_.handle(node);
      if (!origin) {
        routes_.drop_proxy(node, id);
        return nullptr;
      }
      slot = std::make_shared<remote_link>(std::move(origin), node, id, members_.lane(node));
    }
    return slot;
  }

  void on_remote_push(const std::string& bytes, std::vector<std::string>& payloads) {
    auto ids = decode_link_ids(bytes);
    if (!ids) return log(log_level::error, "cluster_bad_push", {});
    auto frames = std::make_shared<frame_list>();
    frames->reserve(payloads.size());
    for (auto& p : payloads) frames->push_back(text_frame(p));
    std::unordered_map<const void*, std::shared_ptr<link_group>> lanes;
    for (auto id : *ids) {
      auto link = routes_.local(id);
      if (!link) continue;
      auto& g = lanes[link->lane()];
      if (!g) g = std::make_shared<link_group>();
      g->push_back(std::move(link));
    }
    for (auto& [_, g] : lanes) g->front()->push_to_lane(g, frames, nullptr);
  }

  // -- handover: the old owner ----------------------------------------------------------------

  caf::typed_response_promise<std::string> handoff(shard_t s, const std::string& to) {
    auto rp = make_response_promise<std::string>();
    if (s >= env_.shards || map_.owner(s) != self_ || env_.status(s) != shard_status::owned) {
      rp.deliver(std::string("this node does not own shard ") + std::to_string(s));
      return rp;
    }
    if (!members_.handle(to)) {
      rp.deliver("node " + to + " is not connected");
      return rp;
    }
    env_.set_status(s, shard_status::releasing);
    auto id = handovers_.begin(s);
    auto started = std::chrono::steady_clock::now();
    auto pending = std::make_shared<std::size_t>(registries_.size());
    for (auto& reg : registries_) {
      request(reg, caf::infinite, release_atom::value, s)
          .then([=, this](released_rooms& rooms) mutable {
            if (auto* released = handovers_.released(s, id)) {
              for (auto& r : rooms) released->push_back(std::move(r));
            } else {
              // The handover was called off while this registry released its rooms (restore()
              // gave back what the others had): these get their subscribers back now.
              give_back(std::move(rooms));
            }
            if (--*pending == 0) export_shard(s, id, to, rp, started);
          });
    }
    return rp;
  }

  void export_shard(shard_t s, std::uint64_t id, const std::string& to,
                    caf::typed_response_promise<std::string> rp,
                    std::chrono::steady_clock::time_point started) {
    auto* handed = handovers_.released(s, id);
    if (!handed) {
      rp.deliver("the handover of shard " + std::to_string(s) + " was called off");
      return;
    }
    // The subscribers go along: (node, link id, user) for each, by room.
    std::vector<handed_room> subs;
    auto& released = *handed;
    subs.reserve(released.size());
    for (auto& r : released) {
      auto& room = subs.emplace_back(handed_room{r.room, {}});
      for (auto& sub : r.subscribers) {
        if (auto* remote = dynamic_cast<remote_link*>(sub.link.get())) {
          room.subscribers.push_back({remote->node(), remote->remote_id(), sub.user});
          left_room(*remote, r.room);
        } else {
          routes_.remember(sub.link->id(), sub.link);
          routes_.joined(sub.link->id(), r.room);
          room.subscribers.push_back({self_, sub.link->id(), sub.user});
        }
      }
    }
    auto dir = cfg_.staging_dir + "/out-" + std::to_string(s);
    auto files = std::make_shared<cluster::shard_files>();
    auto records = std::make_shared<std::uint64_t>(0);
    auto* journal = &env_.journal;
    run_blocking(
        [=]() -> std::string {
          std::error_code ec;
          std::filesystem::remove_all(dir, ec);
          auto out = journal->export_shard(s, dir);
          if (!out) return out.err().message;
          *records = out->records;
          *files = cluster::read_shard_files(out->paths);
          std::filesystem::remove_all(dir, ec);
          return {};
        },
        [=, this, blob = encode_handover(subs)](std::string err) mutable {
          auto dest = members_.handle(to);
          if (err.empty() && !dest) err = "node " + to + " went away";
          if (!err.empty()) {
            restore(s);
            rp.deliver(std::move(err));
            return;
          }
          request(dest, cluster::move_timeout, ingest_atom::value, s, std::move(files->names),
                  std::move(files->contents), std::move(blob))
              .then(
                  [=, this](std::string& err2) mutable {
                    if (!err2.empty()) {
                      restore(s);
                      rp.deliver(std::move(err2));
                      return;
                    }
                    env_.shards_handed_over += 1;
                    log(log_level::debug, "cluster_shard_handed_over",
                        {{"shard", static_cast<std::uint64_t>(s)},
                         {"to", to},
                         {"records", *records},
                         {"ms", std::chrono::duration<double, std::milli>(
                                    std::chrono::steady_clock::now() - started)
                                    .count()}});
                    rp.deliver(std::string());
                  },
                  [=, this](caf::error& e) mutable {
                    restore(s);
                    rp.deliver("handing shard over failed: " + to_string(e));
                  });
        });
  }

  /// Gives a shard whose handover failed back to its rooms, subscribers included.
  void restore(shard_t s) {
    auto rooms = handovers_.take_back(s);
    if (!rooms) return;
    give_back(std::move(*rooms));
    env_.set_status(s, map_.owner(s) == self_ ? shard_status::owned : shard_status::elsewhere);
  }

  /// Rooms that gave up their subscribers for a handover that didn't happen get them back.
  void give_back(released_rooms rooms) {
    for (auto& r : rooms) {
      command c;
      c.op = room_op::adopt;
      c.room = room_id{r.room};
      c.adopted = std::move(r.subscribers);
      for (auto& sub : c.adopted)
        if (auto* remote = dynamic_cast<remote_link*>(sub.link.get())) remote->rooms.insert(r.room);
      originate(std::move(c));
    }
  }

  // -- handover: the new owner ----------------------------------------------------------------

  caf::typed_response_promise<std::string> ingest(shard_t s, std::vector<std::string> names,
                                                  std::vector<std::string> contents,
                                                  std::string subs_bytes) {
    auto rp = make_response_promise<std::string>();
    if (s >= env_.shards || env_.status(s) != shard_status::elsewhere ||
        names.size() != contents.size()) {
      rp.deliver(std::string("shard ") + std::to_string(s) + " can't be taken over here now");
      return rp;
    }
    auto subs = decode_handover(subs_bytes);
    if (!subs) {
      rp.deliver("the subscribers of shard " + std::to_string(s) + " came damaged");
      return rp;
    }
    for (auto& name : names)
      if (!cluster::plain_file_name(name)) {
        rp.deliver("bad shard file name " + name);
        return rp;
      }
    auto dir = cfg_.staging_dir + "/in-" + std::to_string(s);
    auto* journal = &env_.journal;
    run_blocking(
        [=, files = cluster::shard_files{std::move(names), std::move(contents)}]() -> std::string {
          std::vector<std::string> paths;
          if (auto err = cluster::write_shard_files(dir, files, paths); !err.empty()) return err;
          auto st = journal->ingest_shard(s, paths);
          std::error_code ec;
          std::filesystem::remove_all(dir, ec);
          return st.ok() ? std::string() : st.err().message;
        },
        [=, this, subs = std::move(*subs)](std::string err) mutable {
          if (err.empty()) {
            handovers_.ingested(s, std::move(subs));
            env_.shards_taken_over += 1;
            if (cfg_.ingested) cfg_.ingested(s);
          }
          rp.deliver(std::move(err));
        });
    return rp;
  }

  /// Hands the subscribers that came with shard `s` to its rooms, before the shard is served.
  void adopt(shard_t s) {
    auto rooms = handovers_.take_adopted(s);
    if (!rooms) return;
    for (auto& room : *rooms) {
      command c;
      c.op = room_op::adopt;
      c.room = room_id{std::move(room.room)};
      for (auto& sub : room.subscribers) {
        std::shared_ptr<client_link> link;
        if (sub.node == self_) {
          link = routes_.local(sub.link);
          routes_.left(sub.link, c.room.str());
        } else if (auto proxy = proxy_for(sub.node, sub.link, nullptr)) {
          proxy->rooms.insert(c.room.str());
          link = std::move(proxy);
        }
        if (link) c.adopted.push_back({std::move(link), std::move(sub.user)});
      }
      originate(std::move(c));
    }
  }

  template <class Done>
  void run_blocking(std::function<std::string()> job, Done done) {
    auto worker = system().spawn<disk_worker, caf::detached>();
    request(worker, caf::infinite, job_atom::value,
            std::make_shared<std::function<std::string()>>(std::move(job)))
        .then([done](std::string& err) mutable { done(std::move(err)); },
              [done](caf::error& e) mutable { done("disk job failed: " + to_string(e)); });
  }

  // -- read queries across members (docs/read-side.md) --------------------------------------

  void ask_members(std::shared_ptr<members_query> q) {
    auto to = cluster::targets(map_, self_, up_fn());
    auto qid = gathers_.open(to.ask, to.partial, q->done);
    if (!qid) return;
    for (auto& node : to.ask) send(actor_of(node), rquery_atom::value, *qid, q->request);
    delayed_send(this, q->timeout, rqtimeout_atom::value, *qid);
  }

  /// Another member's query: the read side answers it on its own threads; the page goes
  /// straight back to the asking member's cluster actor.
  void answer_query(std::uint64_t qid, const std::string& request) {
    auto origin = caf::actor_cast<caf::actor>(current_sender());
    if (!origin) return;
    if (!cfg_.answer_query) {
      send(origin, ranswer_atom::value, qid, self_, std::string());
      return;
    }
    cfg_.answer_query(request, [origin, qid, self = self_](std::string page) {
      caf::anon_send(origin, ranswer_atom::value, qid, self, std::move(page));
    });
  }

  // -- coordinator ----------------------------------------------------------------------------

  /// Another node's session is no longer in `room` here; a stand-in in no room is dropped.
  void left_room(remote_link& remote, const std::string& room) {
    remote.rooms.erase(room);
    if (remote.rooms.empty()) routes_.drop_proxy(remote.node(), remote.remote_id());
  }

  caf::actor actor_of(const std::string& node) {
    if (node == self_) return caf::actor{this};
    return members_.handle(node);
  }

  cluster::is_up up_fn() {
    return [this](const std::string& node) { return bool(actor_of(node)); };
  }

  static cluster::move_reply reply_to(caf::typed_response_promise<std::string> rp) {
    return [rp](std::string err) mutable { rp.deliver(std::move(err)); };
  }

  /// Plans moves that even out the shards over the members that are up and not draining.
  /// `reply` is answered, and a drain of `drained` finished (its sessions closed after
  /// `grace`), when every move has ended.
  void rebalance(cluster::move_reply reply, std::string drained = {},
                 std::chrono::milliseconds grace = {}) {
    auto up = up_fn();
    auto planned = controller_.plan(map_, cluster::balanced_nodes(map_, up), up, std::move(reply),
                                    std::move(drained), grace);
    if (planned == 0) {
      if (controller_.idle()) end_batch();
      return;  // else the waiter is answered when the moves under way end
    }
    log(log_level::info, "cluster_rebalance", {{"moves", std::uint64_t{planned}}});
    run_queue();
  }

  caf::typed_response_promise<std::string> enqueue_move(shard_t s, const std::string& to) {
    auto rp = make_response_promise<std::string>();
    if (!coordinating())
      rp.deliver("node " + self_ + " is not the coordinator");
    else if (controller_.enqueue(map_, env_.shards, s, to, reply_to(rp)))
      run_queue();
    return rp;
  }

  caf::typed_response_promise<std::string> drain(const std::string& node,
                                                 std::chrono::milliseconds grace) {
    auto rp = make_response_promise<std::string>();
    if (!coordinating()) {
      rp.deliver("node " + self_ + " is not the coordinator");
      return rp;
    }
    auto next = cluster::with_draining(map_, node);
    if (auto* err = std::get_if<std::string>(&next)) {
      rp.deliver(std::move(*err));
      return rp;
    }
    apply(std::move(std::get<shard_map>(next)));
    broadcast();
    rebalance(reply_to(rp), node, grace);
    return rp;
  }

  void run_queue() {
    auto now = std::chrono::steady_clock::now();
    for (auto& [mv] : controller_.start(map_, up_fn(), now)) {
      request(actor_of(mv.from), cluster::move_timeout, handoff_atom::value, mv.shard, mv.to)
          .then([this, s = mv.shard](std::string& err) { finish_move(s, std::move(err)); },
                [this, s = mv.shard](caf::error& e) {
                  finish_move(s, "handover failed: " + to_string(e));
                });
    }
    if (!controller_.idle()) return;
    if (controller_.replan())
      rebalance({});  // ends the batch when there is nothing more to move
    else
      end_batch();
  }

  /// Every move has ended: answers who waited for the plan and finishes drains.
  void end_batch() {
    auto b =
        controller_.end_batch(std::chrono::steady_clock::now(),
                              [this](const std::string& node, std::chrono::milliseconds grace) {
                                if (auto a = actor_of(node))
                                  send(a, drained_atom::value, std::int64_t{grace.count()});
                              });
    if (b.moves > 0)
      log(log_level::info, "cluster_moves_finished",
          {{"moves", b.moves},
           {"failed", b.failed},
           {"done_total", controller_.moves_done()},
           {"ms", std::chrono::duration<double, std::milli>(b.took).count()}});
  }

  void finish_move(shard_t s, std::string err) {
    auto end = controller_.finish(s, err, std::chrono::steady_clock::now());
    auto& mv = end.move;
    if (end.retry_in) {
      // The old owner serves the shard again meanwhile; the map is unchanged.
      if (auto a = actor_of(mv.from)) send(a, abort_atom::value, mv.shard);
      log(log_level::warn, "cluster_move_retry",
          {{"shard", static_cast<std::uint64_t>(mv.shard)},
           {"from", mv.from},
           {"to", mv.to},
           {"error", err},
           {"in_ms", std::chrono::duration<double, std::milli>(*end.retry_in).count()}});
      delayed_send(this, *end.retry_in, retry_atom::value);
      return run_queue();
    }
    if (err.empty()) {
      auto next = map_;
      next.assign(mv.shard, mv.to);
      apply(std::move(next));
      log(log_level::debug, "cluster_shard_moved",
          {{"shard", static_cast<std::uint64_t>(mv.shard)},
           {"from", mv.from},
           {"to", mv.to},
           {"epoch", map_.epoch()},
           {"ms", std::chrono::duration<double, std::milli>(end.took).count()}});
    } else {
      if (auto a = actor_of(mv.from)) send(a, abort_atom::value, mv.shard);
      log(log_level::warn, "cluster_move_failed",
          {{"shard", static_cast<std::uint64_t>(mv.shard)}, {"to", mv.to}, {"error", err}});
    }
    broadcast();
    if (end.reply) end.reply(std::move(err));
    run_queue();
  }

  // -- admin ----------------------------------------------------------------------------------

  void on_admin(std::shared_ptr<admin_query> q) {
    using kind = cluster_request::kind;
    auto& r = q->request;
    switch (r.what) {
      case kind::members: {
        // The coordinator's view is the cluster's (moves under way, every member's state).
        auto coord = actor_of(map_.coordinator);
        if (coordinating() || !coord) return members_json(std::move(q));
        request(coord, std::chrono::seconds(5), members_atom::value)
            .then([q](std::string& body) { q->done(200, std::move(body)); },
                  [this, q](caf::error&) { members_json(q); });
        return;
      }
      case kind::shards:
        return q->done(200,
                       cluster::shards_view(
                           map_, self_, env_.shards,
                           [this](shard_t s) { return env_.status(s) == shard_status::releasing; },
                           assigned_));
      case kind::move:
      case kind::drain:
      case kind::remove: {
        if (replicated()) {
          // A request key in etcd that the controller carries out, wherever it runs; the answer
          // comes when the assignments show it finished (metadata_agent::request_move etc.).
          if (!cfg_.replica_change)
            return fail(*q, admin_errc::unavailable, "this node has no metadata agent");
          return cfg_.replica_change(r, [q](std::string err) {
            if (err.empty()) return q->done(200, R"({"ok":true})");
            auto code = err.starts_with("timeout") ? admin_errc::timeout : admin_errc::conflict;
            fail(*q, code, err);
          });
        }
        if (r.what == kind::remove)
          return fail(*q, admin_errc::conflict,
                      "only a cluster with etcd (--etcd) removes members: without it a member "
                      "that is gone holds no replica to re-create");
        auto coord = actor_of(map_.coordinator);
        if (!coord)
          return fail(*q, admin_errc::unavailable,
                      "the coordinator " + map_.coordinator + " is down");
        auto answer = [q](std::string& err) {
          if (err.empty()) return q->done(200, R"({"ok":true})");
          fail(*q, admin_errc::conflict, err);
        };
        auto failed = [q](caf::error& e) { fail(*q, admin_errc::timeout, to_string(e)); };
        if (r.what == kind::move)
          request(coord, cluster::move_timeout, move_atom::value, r.shard, r.node)
              .then(answer, failed);
        else
          request(coord, std::chrono::seconds(3600), drain_atom::value, r.node,
                  std::int64_t{r.grace.count()})
              .then(answer, failed);
        return;
      }
    }
  }

  static void fail(admin_query& q, admin_errc code, std::string_view message) {
    q.done(http_status(code), admin_error_json(code, message));
  }

  void members_json(std::shared_ptr<admin_query> q) {
    // Each member that is up reports its own load; one that doesn't answer in 2 s shows none.
    struct gather {
      std::shared_ptr<admin_query> q;
      std::map<std::string, std::string> loads;
      std::size_t waiting = 0;
    };
    auto g = std::make_shared<gather>();
    g->q = std::move(q);
    g->loads[self_] = cfg_.load ? cfg_.load() : "{}";
    auto finish = [this, g] {
      g->q->done(200, cluster::members_view(
                          map_, self_, env_.shards, controller_, up_fn(), g->loads,
                          replicated() && cfg_.metadata_status ? cfg_.metadata_status() : ""));
    };
    for (auto& m : map_.members) {
      auto a = m.id == self_ ? caf::actor{} : actor_of(m.id);
      if (!a) continue;
      g->waiting += 1;
      auto one = [g, finish, id = m.id](std::string load) {
        if (!load.empty()) g->loads[id] = std::move(load);
        if (--g->waiting == 0) finish();
      };
      request(a, std::chrono::seconds(2), load_atom::value)
          .then([one](std::string& load) { one(std::move(load)); },
                [one](caf::error&) { one({}); });
    }
    if (g->waiting == 0) finish();
  }

  room_env& env_;
  cluster_config& cfg_;
  std::vector<caf::actor> registries_;
  caf::io::middleman_actor mm_;
  std::string self_;
  std::string address_;
  shard_map map_;
  std::string map_text_;  // map_ encoded once per change: persisted, broadcast, sent on hello

  cluster::members<caf::actor, caf::actor_addr> members_;

  cluster::routes<client_link, remote_link> routes_;
  cluster::handovers<released_rooms, std::vector<handed_room>> handovers_;

  cluster::controller controller_;  // the coordinator's moves

  cluster::gathers gathers_;  // read queries across members, waiting for their pages

  // Replicated shards: each shard's assignment as etcd last said (empty until the first).
  std::vector<std::optional<cluster::shard_assignment>> assigned_;
  std::set<shard_t> releaded_;  // shards whose leader changed, their subscribers not yet told
};

}  // namespace

caf::actor spawn_cluster(caf::actor_system& sys, room_env& env, std::vector<caf::actor> registries,
                         caf::io::middleman_actor mm) {
  return sys.spawn<cluster_actor>(env, std::move(registries), std::move(mm));
}

}  // namespace kaiwa::detail
