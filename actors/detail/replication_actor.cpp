// The replication actor (replication_actor.hpp): a slot per shard the node was assigned, holding
// the assignment last applied (with its mod revision) and, while the node is one of the shard's
// replicas, its shard_replica over journal_store. Everything a replica does runs here, on this
// actor's thread: the journal's writer posts each completion back as a job message, the metadata
// agent posts each isr write's outcome the same way.
//
// What the actor adds to the protocol (cluster/shard_replica.hpp):
// - whom to lead or follow, from the assignments: a leader leads at an epoch above any it has
//   followed or led (a restarted leader waits for the controller's next epoch);
// - the lease: a leader whose lease is not surely valid steps down and acks nothing, and leads
//   again at its epoch once the lease holds, if the assignment still names it;
// - when the node serves a shard: from the moment its leader has applied its log up to where it
//   ended at the promotion (every event acked before the failover is then in its records);
// - isr changes: one compare-and-swap in flight per shard, on the revision it leads by;
// - a disk error: a leader that stepped down on one asks for another leader (hooks.resign);
// - retention of each replica's log, and snapshots of a shard for followers behind its start
//   (the leader exports and sends; the follower, once its replica's writes are back, ingests
//   and opens its replica again from the ingested log).

#include "actors/detail/replication_actor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <tuple>

#include "actors/detail/snapshot_transfer.hpp"
#include "cluster/journal_store.hpp"
#include "cluster/replication_wire.hpp"
#include "core/log.hpp"
#include "storage/journal.hpp"

namespace kaiwa::detail {

namespace {

using rtick_atom = caf::atom_constant<caf::atom("rtick")>;
using rjob_atom = caf::atom_constant<caf::atom("rjob")>;

/// How often leaders tick (the high watermark out, resends, isr changes) and a lapsed lease is
/// noticed.
constexpr auto tick_period = std::chrono::milliseconds(50);
/// After an isr write failed (a conflict: a newer assignment is on its way; or etcd is not
/// answering), the shard's leader proposes again no sooner than this: a leader that keeps losing
/// its compare-and-swap must not write to etcd at every tick.
constexpr auto proposal_backoff = std::chrono::milliseconds(200);
/// A leader that stepped down on a disk error asks for another leader again this often while
/// the assignment still names it (the first request may have lost its compare-and-swap, or
/// found no other in-sync replica live).
constexpr auto resign_retry = std::chrono::seconds(1);
/// How often retention looks at each replica's log.
constexpr auto retention_period = std::chrono::seconds(1);
/// A snapshot chunk unacknowledged this long is sent again (its connection broke).
constexpr auto snapshot_resend_after = std::chrono::seconds(1);
/// A snapshot that made no progress this long is given up (its follower is gone: it frees its
/// place among the node's max_snapshots_sending and stops holding retention back), and its
/// follower gets no other one for as long (nor after a failed export).
constexpr auto snapshot_give_up_after = std::chrono::seconds(30);

/// Work another thread hands to the actor (a journal completion, an isr write's outcome).
struct replication_job {
  std::function<void()> fn;
};

}  // namespace
}  // namespace kaiwa::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(kaiwa::detail::replication_job)

namespace kaiwa::detail {

namespace {

using cluster::replicate_error;
using cluster::shard_assignment;
using clock = cluster::shard_replica::clock;

/// The shard's journal_store, counting its writes on the journal's thread until their completion
/// is back on the actor: a replica of the shard is not created again from the log on disk while
/// a dropped one's writes may still land (it would take an append's tail past the log end it read
/// for its log, or apply entries again).
class counted_store final : public cluster::replica_store {
 public:
  counted_store(storage::journal& journal, shard_t shard, std::size_t& in_flight,
                cluster::journal_store::post_fn post)
      : inner_(journal, shard, std::move(post)), in_flight_(in_flight) {}

  void append(std::vector<cluster::log_entry> entries, std::function<void(bool)> done) override {
    ++in_flight_;
    inner_.append(std::move(entries), std::move(done));
  }
  void apply(std::vector<cluster::log_entry> entries, std::function<void(bool)> done) override {
    ++in_flight_;
    inner_.apply(std::move(entries), std::move(done));
  }
  std::optional<std::vector<cluster::log_entry>> read(cluster::offset_t after,
                                                      std::size_t max_entries) override {
    return inner_.read(after, max_entries);
  }
  bool truncate(cluster::offset_t keep_through) override { return inner_.truncate(keep_through); }

 private:
  cluster::journal_store inner_;
  std::size_t& in_flight_;  // the slot's: it outlives the store
};

class replication_actor : public caf::event_based_actor {
 public:
  replication_actor(caf::actor_config& cfg, storage::journal& journal, std::string self,
                    cluster::in_sync_config rcfg, replication_hooks hooks, std::string staging_dir,
                    std::shared_ptr<replication_metrics> metrics, log_retention retention)
      : caf::event_based_actor(cfg),
        journal_(journal),
        self_(std::move(self)),
        cfg_(rcfg),
        retention_(retention),
        staging_dir_(std::move(staging_dir)),
        // Snapshot ids only need to differ between this node's transfers, across restarts too.
        snapshot_ids_(std::random_device{}() * (std::uint64_t{1} << 32)),
        hooks_(std::move(hooks)),
        metrics_(metrics ? std::move(metrics) : std::make_shared<replication_metrics>()) {}

  caf::behavior make_behavior() override {
    delayed_send(this, tick_period, rtick_atom::value);
    return {
        [this](assign_atom, shard_t shard, const std::string& json, std::int64_t revision) {
          on_assign(shard, json, revision);
        },
        [this](replicate_atom, shard_t shard, std::string& payload) {
          return replicate(shard, std::move(payload));
        },
        [this](peer_down_atom, const std::string& node) {
          unreachable_.insert(node);
          for (auto& [_, s] : slots_)
            if (s.replica) s.replica->peer_unreachable(node);
        },
        [this](peer_up_atom, const std::string& node) { unreachable_.erase(node); },
        [this](peer_msg_atom, const std::string& from, const std::string& bytes) {
          on_peer(from, bytes);
        },
        [this](rtick_atom) {
          tick();
          delayed_send(this, tick_period, rtick_atom::value);
        },
        [](rjob_atom, const replication_job& job) { job.fn(); },
        [this](replication_status_atom) { return status_json(); },
    };
  }

  void on_exit() override {
    // Pending writes are answered (not_leader: nothing more will be acked here), the rooms told
    // the shards are no longer served, and the stores' post functions, which hold this actor's
    // handle, released.
    for (auto& [shard, s] : slots_) {
      if (s.replica) s.replica->step_down(replicate_error::not_leader);
      if (s.serving) set_serving(shard, s, false);
    }
    slots_.clear();
  }

 private:
  struct slot {
    std::optional<shard_assignment> assignment;  // the last applied; nullopt before the first
    std::int64_t revision = 0;                   // its mod revision
    std::unique_ptr<counted_store> store;
    std::size_t disk_ops = 0;  // writes of its stores (this one's or a dropped one's) not back
    std::unique_ptr<cluster::shard_replica> replica;  // while this node is one of the replicas
    std::uint64_t life = 0;          // the replica's: completions of a dropped one run into nothing
    cluster::epoch_t led = 0;        // the epoch this actor last made the replica lead
    bool lease_resigned = false;     // stepped down at `led` for the lease
    bool ack_without_lease = false;  // an ack came while the lease didn't hold: step down
    bool serving = false;            // hooks.serving(shard, true) said, not yet false
    cluster::offset_t serve_from = 0;  // the leader's log end at its promotion (led_from)
    std::uint64_t proposal = 0;        // the isr write in flight (its token), 0 when none
    clock::time_point propose_after;   // a failed isr write holds the next one back until then
    std::size_t pending = 0;           // replicates waiting for their ack
    bool open_failing = false;         // its log couldn't be read: logged once, retried each tick
    // Leader: snapshots on their way to followers behind the log's start, by follower.
    std::map<std::string, snapshot_sender> sending;
    std::map<std::string, clock::time_point> snapshot_retry;  // given up: none before then
    // Follower: the snapshot being received, and the one last installed (its leader's
    // repeated last chunk is answered installed again).
    std::unique_ptr<snapshot_receiver> receiving;
    bool install_pending = false;  // received whole, waiting for the replica's writes to be back
    std::tuple<std::string, cluster::epoch_t, std::uint64_t> installed;

    // A leader that stepped down on a disk error: hooks.resign said for this epoch (0: not yet),
    // and says it again from `resign_again`.
    cluster::epoch_t storage_resigned = 0;
    clock::time_point resign_again;
  };

  // -- assignments -------------------------------------------------------------------------

  void on_assign(shard_t shard, const std::string& json, std::int64_t revision) {
    auto a = cluster::decode_assignment(json);
    if (shard >= journal_.shards() || !a) {
      metrics_->invalid_assignments += 1;
      log(log_level::error, "replication_assignment_refused", {{"shard", std::to_string(shard)}});
      return;
    }
    auto& s = slots_[shard];
    if (revision <= s.revision) {
      // The watch's replay of one already applied; or, different and older, what etcd restored
      // from a backup holds: never followed (the replica keeps the newer one it has), said.
      if (revision < s.revision && s.assignment && *a != *s.assignment)
        log(log_level::warn, "replication_assignment_older",
            {{"shard", std::to_string(shard)},
             {"revision", std::to_string(revision)},
             {"epoch", std::to_string(a->epoch)},
             {"applied_revision", std::to_string(s.revision)},
             {"applied_epoch", std::to_string(s.assignment->epoch)}});
      return;
    }
    s.assignment = std::move(*a);
    s.revision = revision;
    steer(shard, s);
    sync(shard, s);
  }

  /// Makes the replica lead, follow or go as the slot's assignment says.
  void steer(shard_t shard, slot& s) {
    auto& a = *s.assignment;
    if (!a.holds(self_)) return drop(shard, s);
    if (!s.replica && !open(shard, s)) return;  // tried again at the next tick
    auto& r = *s.replica;
    if (a.leader != self_) {
      // An assignment older than an epoch the replica learned from a leader's append changes
      // nothing (it already follows the newer one).
      if (a.epoch >= r.epoch()) r.follow(a);
      s.lease_resigned = false;
      return;
    }
    if (r.leading()) {
      if (a.epoch == r.epoch()) return r.lead(a, clock::now());  // replicas or isr changed
      if (a.epoch < r.epoch()) return;
    } else {
      // A restarted leader holds its epoch's entries; only a newer epoch lets it lead (the
      // controller's failover or preferred-leader move), unless this actor stepped it down for
      // its lease at that epoch and the assignment still names it.
      bool again = s.lease_resigned && a.epoch == s.led;
      if (a.epoch <= std::max(r.followed(), r.epoch()) && !again) return;
    }
    if (!hooks_.lease_valid()) return;            // tried again at the next tick
    if (s.serving) set_serving(shard, s, false);  // a new epoch: its rooms start over
    s.led = a.epoch;
    s.lease_resigned = false;
    s.proposal = 0;  // an earlier epoch's isr write is not this one's
    r.lead(a, clock::now());
    s.serve_from = r.led_from();
    for (auto& node : unreachable_) r.peer_unreachable(node);
  }

  /// The shard's replica from its log on disk: where the log ends, what was applied, and its
  /// epoch history as persisted beside the log (written with each epoch's first entry, cut with
  /// the log): a few keys, whatever the log's length.
  bool open(shard_t shard, slot& s) {
    if (s.disk_ops > 0) return false;  // a dropped replica's writes are still landing
    auto at = journal_.replica_position(shard);
    if (!at.ok()) return open_failed(shard, s, at.err().message);
    auto epochs = journal_.replica_history(shard);
    if (!epochs.ok()) return open_failed(shard, s, epochs.err().message);
    std::vector<cluster::leader_epochs::entry> entries;
    for (auto& e : *epochs) entries.push_back({e.epoch, e.start});
    auto history = cluster::leader_epochs::from(std::move(entries));
    // A log with entries has the epoch of its first one at least (a log written before the
    // history was kept beside it has none, and is refused rather than followed blind).
    bool fits =
        history && (history->entries().empty() ? at->log_end < at->log_start
                                               : history->entries().back().start <= at->log_end);
    if (!fits) return open_failed(shard, s, "its epoch history doesn't fit its log");
    s.open_failing = false;
    s.life = ++lives_;
    auto self = caf::actor_cast<caf::actor>(this);
    s.store = std::make_unique<counted_store>(
        journal_, shard, s.disk_ops, [this, self, shard, life = s.life](std::function<void()> fn) {
          caf::anon_send(self, rjob_atom::value,
                         replication_job{[this, shard, life, fn] { completed(shard, life, fn); }});
        });
    s.replica = std::make_unique<cluster::shard_replica>(
        shard, self_, *s.store,
        [this](const std::string& node, std::string bytes) { send_to(node, std::move(bytes)); },
        at->log_end, at->applied, *history, history->latest(), cfg_);
    return true;
  }

  bool open_failed(shard_t shard, slot& s, const std::string& why) {
    if (!s.open_failing)
      log(log_level::error, "replica_open_failed",
          {{"shard", std::to_string(shard)}, {"error", why}});
    s.open_failing = true;
    return false;
  }

  /// The node is no longer one of the shard's replicas: the replica goes, its data stays (the
  /// controller's removal drops it, or the node returns as a replica and catches up from it).
  void drop(shard_t shard, slot& s) {
    if (s.replica) s.replica->step_down(replicate_error::not_leader);
    s.replica.reset();
    s.store.reset();
    s.sending.clear();
    s.receiving.reset();
    s.install_pending = false;
    s.life = 0;
    s.led = 0;
    s.lease_resigned = false;
    s.storage_resigned = 0;
    s.proposal = 0;
    s.open_failing = false;
    if (s.serving) set_serving(shard, s, false);
  }

  // -- after each event --------------------------------------------------------------------

  /// Settles what follows from the replica's state: a lapsed lease seen at an ack steps it down;
  /// the shard is served from when its leader has applied what it held at the promotion, until
  /// it stops leading.
  void sync(shard_t shard, slot& s) {
    if (s.ack_without_lease) {
      s.ack_without_lease = false;
      if (s.replica && s.replica->leading()) resign_for_lease(shard, s);
    }
    bool leading = s.replica && s.replica->leading();
    if (!leading) {
      s.proposal = 0;  // the replica forgot it; its outcome is nobody's now
      s.sending.clear();
    }
    if (s.serving && !leading) {
      set_serving(shard, s, false);
    } else if (!s.serving && leading && s.replica->applied() >= s.serve_from) {
      set_serving(shard, s, true);
    }
    // After the rooms were told: whoever sees the request for another leader sees this node
    // no longer serving.
    if (!leading && s.replica && s.replica->storage_failed()) resign_for_storage(shard, s);
  }

  void set_serving(shard_t shard, slot& s, bool serving) {
    s.serving = serving;
    log(log_level::info, serving ? "shard_serving" : "shard_not_serving",
        {{"shard", std::to_string(shard)}, {"epoch", std::to_string(s.led)}});
    hooks_.serving(shard, serving);
  }

  void resign_for_lease(shard_t shard, slot& s) {
    metrics_->lease_step_downs += 1;
    log(log_level::warn, "shard_leader_lease_lapsed", {{"shard", std::to_string(shard)}});
    s.replica->step_down(replicate_error::deposed);
    s.lease_resigned = true;
  }

  /// Its disk failed while it led: this actor won't make it lead that epoch again (only a
  /// lease step-down leads again at the same epoch), so another replica must lead the next one.
  void resign_for_storage(shard_t shard, slot& s) {
    auto& a = *s.assignment;
    if (a.leader != self_ || a.epoch != s.led) return;  // the shard has moved on already
    auto now = clock::now();
    if (s.storage_resigned == s.led && now < s.resign_again) return;
    if (s.storage_resigned != s.led) {
      metrics_->storage_resigns += 1;
      log(log_level::error, "shard_leader_resigned",
          {{"shard", std::to_string(shard)},
           {"epoch", std::to_string(s.led)},
           {"reason", "storage"}});
    }
    s.storage_resigned = s.led;
    s.resign_again = now + resign_retry;
    hooks_.resign(shard, s.led);
  }

  void completed(shard_t shard, std::uint64_t life, const std::function<void()>& fn) {
    auto it = slots_.find(shard);
    if (it == slots_.end()) return;
    --it->second.disk_ops;
    if (it->second.install_pending) install(shard, it->second);
    if (it->second.life != life) return;
    fn();
    sync(shard, it->second);
  }

  // -- writes ------------------------------------------------------------------------------

  caf::typed_response_promise<std::int32_t> replicate(shard_t shard, std::string payload) {
    auto rp = make_response_promise<std::int32_t>();
    auto it = slots_.find(shard);
    auto refuse = [&](replicate_error why) {
      metrics_->writes_failed += 1;
      rp.deliver(replicate_code(why));
      return rp;
    };
    if (it == slots_.end() || !it->second.replica || !it->second.replica->leading() ||
        !hooks_.lease_valid())
      return refuse(replicate_error::not_leader);
    auto& s = it->second;
    // A payload that no replica could apply (the journal refuses it) would fail the leader's
    // apply and step it down: refused here. The room's own write_sets never get this large.
    if (payload.size() > storage::journal::max_replica_payload)
      return refuse(replicate_error::storage);
    if (s.pending >= max_pending_replicates) {
      metrics_->writes_refused_full += 1;
      return refuse(replicate_error::not_enough_in_sync);
    }
    ++s.pending;
    s.replica->replicate(
        std::move(payload),
        [this, shard, rp](std::optional<replicate_error> e) mutable { acked(shard, e, rp); });
    sync(shard, s);
    return rp;
  }

  void acked(shard_t shard, std::optional<replicate_error> e,
             caf::typed_response_promise<std::int32_t>& rp) {
    auto& s = slots_.at(shard);  // slots are never erased while the actor runs
    --s.pending;
    // A leader paused past its lease may have been replaced meanwhile: it acks nothing unless
    // the lease surely holds now. The write is durable on the isr, so it may survive: deposed.
    if (!e && !hooks_.lease_valid()) {
      e = replicate_error::deposed;
      s.ack_without_lease = true;
    }
    if (e) {
      metrics_->writes_failed += 1;
      rp.deliver(replicate_code(*e));
    } else {
      metrics_->writes_acked += 1;
      rp.deliver(replicate_acked);
    }
  }

  // -- peers -------------------------------------------------------------------------------

  void on_peer(const std::string& from, const std::string& bytes) {
    metrics_->messages_received += 1;
    metrics_->bytes_received += bytes.size();
    auto shard = cluster::shard_of_message(bytes);
    auto it = shard ? slots_.find(*shard) : slots_.end();
    if (it == slots_.end() || !it->second.replica) {
      // A shard this node holds no replica of (yet: its assignment may still be on the way;
      // the leader resends).
      metrics_->unknown_shard += 1;
      return;
    }
    switch (bytes.front()) {  // replication_wire's type
      case 5:
        on_snapshot_chunk(from, *shard, it->second, bytes);
        break;
      case 6:
        on_snapshot_ack(from, *shard, it->second, bytes);
        break;
      default:
        it->second.replica->on_message(from, bytes, clock::now());
    }
    sync(*shard, it->second);
  }

  // -- snapshots ---------------------------------------------------------------------------

  /// Leader: starts a snapshot for each follower behind the log's start (a few at a time on
  /// the node: each is the shard's export on disk) and resends a chunk left unanswered.
  void send_snapshots(shard_t shard, slot& s, clock::time_point now) {
    std::erase_if(s.sending, [&](auto& out) {
      if (now - out.second.progress < snapshot_give_up_after) return false;
      metrics_->snapshots_failed += 1;
      log(log_level::warn, "snapshot_given_up",
          {{"shard", std::to_string(shard)}, {"follower", out.first}});
      s.snapshot_retry[out.first] = now + snapshot_give_up_after;
      return true;
    });
    for (auto& node : s.replica->behind_log_start()) {
      if (s.sending.contains(node) || sending_count() >= max_snapshots_sending) continue;
      if (auto r = s.snapshot_retry.find(node); r != s.snapshot_retry.end()) {
        if (now < r->second) continue;
        s.snapshot_retry.erase(r);
      }
      auto log_end = s.replica->log_end();
      auto id = ++snapshot_ids_;
      auto dir = staging_dir_ + "/snapshot-out-" + std::to_string(shard) + "-" + node;
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
      // On this thread: a shard within the retention bound exports in well under a second,
      // and its records are what a follower needs anyway.
      auto files = journal_.export_shard(shard, dir);
      auto sender = files.ok()
                        ? snapshot_sender::make(shard, s.replica->epoch(), id, dir, files->paths)
                        : std::nullopt;
      if (!sender) {
        std::filesystem::remove_all(dir, ec);
        s.snapshot_retry[node] = now + snapshot_give_up_after;  // not again at every tick
        metrics_->snapshots_failed += 1;
        log(log_level::error, "snapshot_export_failed",
            {{"shard", std::to_string(shard)},
             {"follower", node},
             {"error", files.ok() ? "unreadable files" : files.err().message}});
        continue;
      }
      log(log_level::info, "snapshot_sending",
          {{"shard", std::to_string(shard)},
           {"follower", node},
           {"bytes", std::to_string(sender->bytes())}});
      auto& out = s.sending.emplace(node, std::move(*sender)).first->second;
      out.progress = now;
      out.log_end = log_end;
      send_chunk(node, out, now);
    }
    for (auto& [node, out] : s.sending)
      if (now - out.sent >= snapshot_resend_after) send_chunk(node, out, now);
  }

  std::size_t sending_count() const {
    std::size_t n = 0;
    for (auto& [shard, s] : slots_) n += s.sending.size();
    return n;
  }

  void send_chunk(const std::string& node, snapshot_sender& out, clock::time_point now) {
    out.sent = now;
    auto chunk = out.current();
    if (!chunk) return;  // an unreadable file: tried again at the resend, given up at last
    metrics_->snapshot_bytes_sent += chunk->size();
    hooks_.send(node, std::move(*chunk));
  }

  void on_snapshot_ack(const std::string& from, shard_t shard, slot& s, std::string_view bytes) {
    auto a = cluster::decode_snapshot_ack(bytes);
    auto it = s.sending.find(from);
    if (!a || !s.replica->leading() || a->epoch != s.replica->epoch() || it == s.sending.end() ||
        it->second.id() != a->id)
      return;
    if (a->installed) {
      metrics_->snapshots_sent += 1;
      log(log_level::info, "snapshot_installed_by_follower",
          {{"shard", std::to_string(shard)}, {"follower", from}});
      s.sending.erase(it);
      s.replica->snapshot_installed(from);
      return;
    }
    bool first = !it->second.started();
    if (!it->second.acked(a->next)) return;
    if (first) {
      // The follower's first sign of life. An export made before it was reachable that the
      // log has moved past since would be followed by another: a fresh one is made instead.
      auto at = journal_.replica_position(shard);
      if (at.ok() && at->log_start > it->second.log_end + 1) {
        s.sending.erase(it);
        return;
      }
    }
    it->second.progress = clock::now();
    send_chunk(from, it->second, it->second.progress);
  }

  /// Follower: writes a chunk of its leader's snapshot, and installs the snapshot once whole.
  void on_snapshot_chunk(const std::string& from, shard_t shard, slot& s, std::string_view bytes) {
    auto c = cluster::decode_snapshot_chunk(bytes);
    // Only from the leader of the assignment this node follows, at its epoch.
    if (!c || !s.assignment || s.replica->leading() || from != s.assignment->leader ||
        c->epoch != s.assignment->epoch)
      return;
    auto ack = [&](std::uint32_t next, bool installed) {
      hooks_.send(from,
                  cluster::encode(cluster::snapshot_ack{shard, c->epoch, c->id, next, installed}));
    };
    if (s.installed == std::tuple{from, c->epoch, c->id}) return ack(c->seq + 1, true);
    if (!s.receiving || s.receiving->id() != c->id) {
      if (c->seq != 0) return;  // a transfer this node lost (a restart): the leader starts over
      s.receiving = std::make_unique<snapshot_receiver>(
          staging_dir_ + "/snapshot-in-" + std::to_string(shard), c->id);
      s.install_pending = false;
    }
    using outcome = snapshot_receiver::outcome;
    switch (s.receiving->take(*c)) {
      case outcome::written:
      case outcome::repeated:
        return ack(s.receiving->next(), false);
      case outcome::ignored:
        return;
      case outcome::failed:
        metrics_->snapshots_failed += 1;
        log(log_level::error, "snapshot_receive_failed", {{"shard", std::to_string(shard)}});
        s.receiving.reset();  // its chunk 0, resent, starts it over
        return;
      case outcome::complete:
        s.install_pending = true;
        std::get<0>(s.installed) = from;  // whom to tell, once installed
        std::get<1>(s.installed) = c->epoch;
        std::get<2>(s.installed) = 0;
        return install(shard, s);
    }
  }

  /// Replaces the shard's data with the received snapshot once no write of the replica is on
  /// its way to the journal (one landing after would mix the old log into the new), then opens
  /// the replica again from the ingested log and follows.
  void install(shard_t shard, slot& s) {
    if (!s.install_pending || s.disk_ops > 0) return;  // completed() or the tick comes back
    s.install_pending = false;
    auto receiving = std::move(s.receiving);
    auto [from, epoch, unused] = s.installed;
    if (s.replica) s.replica->step_down(replicate_error::not_leader);
    s.replica.reset();
    s.store.reset();
    s.life = 0;
    auto st = journal_.ingest_shard(shard, receiving->paths());
    if (!st.ok()) {
      metrics_->snapshots_failed += 1;
      log(log_level::error, "snapshot_ingest_failed",
          {{"shard", std::to_string(shard)}, {"error", st.err().message}});
      s.installed = {};
      steer(shard, s);  // from what the journal holds now; the leader sends another
      return;
    }
    metrics_->snapshots_installed += 1;
    s.installed = {from, epoch, receiving->id()};
    steer(shard, s);
    auto at = journal_.replica_position(shard);
    log(log_level::info, "snapshot_installed",
        {{"shard", std::to_string(shard)},
         {"leader", from},
         {"log_end", at.ok() ? std::to_string(at->log_end) : "?"}});
    hooks_.send(from, cluster::encode(cluster::snapshot_ack{shard, epoch, receiving->id(),
                                                            receiving->next(), true}));
  }

  void send_to(const std::string& node, std::string bytes) {
    if (!bytes.empty() && bytes.front() == 1) {  // an append (replication_wire's type 1)
      metrics_->appends_sent += 1;
      metrics_->append_bytes_sent += bytes.size();
    }
    hooks_.send(node, std::move(bytes));
  }

  // -- the tick ----------------------------------------------------------------------------

  // -- retention ---------------------------------------------------------------------------

  /// Once a retention period: trims each replica's log to the bound (a range deletion, off the
  /// append path: this actor's thread, while the journal's writer goes on) and refreshes the
  /// log gauges.
  void retain(clock::time_point now) {
    if (now < retain_after_) return;
    retain_after_ = now + retention_period;
    std::uint64_t entries = 0, bytes = 0, behind = 0;
    for (auto& [shard, s] : slots_) {
      if (!s.replica) continue;
      behind += s.replica->behind_log_start().size();
      auto size = trim(shard, *s.replica);
      if (!size) continue;
      entries += size->entries;
      bytes += size->bytes;
    }
    metrics_->log_entries = entries;
    metrics_->log_bytes = bytes;
    metrics_->followers_behind_log_start = behind;
  }

  /// Trims the shard's log to the retention bound; its size after.
  std::optional<storage::journal::replica_log_stats> trim(shard_t shard,
                                                          const cluster::shard_replica& r) {
    auto at = journal_.replica_position(shard);
    auto size = journal_.replica_log_size(shard);
    if (!at.ok() || !size.ok()) return std::nullopt;
    auto keep = std::max<std::uint64_t>(retention_.max_entries, 1);
    if (size->entries > 0 && size->bytes > retention_.max_bytes) {
      // Estimated from the average entry: the estimate of a range is all RocksDB gives cheaply.
      auto average = std::max<std::uint64_t>(size->bytes / size->entries, 1);
      keep = std::min(keep, std::max<std::uint64_t>(retention_.max_bytes / average, 1));
    }
    if (size->entries < keep + std::max<std::uint64_t>(keep / 16, 1)) return *size;
    // A follower taking a snapshot continues from the log after it: that part is kept while
    // the transfer goes on (a follower that never answered doesn't hold it).
    auto limit = r.trim_limit();
    for (auto& [node, out] : slots_.at(shard).sending)
      if (out.started()) limit = std::min(limit, out.log_end + 1);
    auto start = std::min(at->log_end + 1 - keep, limit);
    if (start <= at->log_start) return *size;
    if (auto st = journal_.trim_replica_log(shard, start); !st.ok()) {
      log(log_level::error, "replica_log_trim_failed",
          {{"shard", std::to_string(shard)}, {"error", st.err().message}});
      return *size;
    }
    metrics_->log_trims += 1;
    metrics_->entries_trimmed += start - at->log_start;
    size->entries -= start - at->log_start;
    size->bytes = size->bytes / (size->entries + start - at->log_start) * size->entries;
    return *size;
  }

  void tick() {
    auto now = clock::now();
    retain(now);
    auto lease = hooks_.lease_valid();
    for (auto& [shard, s] : slots_) {
      if (!s.assignment) continue;
      if (!s.replica) {
        if (s.assignment->holds(self_)) steer(shard, s);  // its log failed to open: again
      } else if (!s.replica->leading()) {
        if (s.assignment->leader == self_) steer(shard, s);  // waiting for the lease
        install(shard, s);
      } else if (!lease) {
        resign_for_lease(shard, s);
      } else {
        send_snapshots(shard, s, now);
        if (auto isr = s.replica->tick(now)) {
          // Held back after a failure: the replica drops the proposal and asks again later.
          if (now < s.propose_after)
            s.replica->isr_failed();
          else
            propose(shard, s, std::move(*isr));
        }
      }
      sync(shard, s);
    }
  }

  void propose(shard_t shard, slot& s, std::vector<std::string> isr) {
    auto next = *s.assignment;
    next.isr = isr;
    if (!cluster::valid(next)) {  // the tracker keeps the leader in; this is its bug, not etcd's
      log(log_level::error, "isr_proposal_invalid", {{"shard", std::to_string(shard)}});
      return s.replica->isr_failed();
    }
    auto token = ++proposals_;
    s.proposal = token;
    auto expected = s.revision;
    auto before = s.assignment->isr;
    auto self = caf::actor_cast<caf::actor>(this);
    hooks_.propose_isr(shard, std::move(next), expected,
                       [this, self, shard, token, expected, isr = std::move(isr),
                        before = std::move(before)](std::optional<std::int64_t> revision) {
                         caf::anon_send(self, rjob_atom::value, replication_job{[=, this] {
                                          proposed(shard, token, expected, isr, before, revision);
                                        }});
                       });
  }

  void proposed(shard_t shard, std::uint64_t token, std::int64_t expected,
                const std::vector<std::string>& isr, const std::vector<std::string>& before,
                std::optional<std::int64_t> revision) {
    auto it = slots_.find(shard);
    if (it == slots_.end() || it->second.proposal != token) return;
    auto& s = it->second;
    s.proposal = 0;
    // Written, and nothing newer applied since (or the watch brought this very write first):
    // the leader takes it. A newer assignment applied meanwhile already set the isr.
    bool written = revision && (s.revision == expected || s.revision == *revision);
    if (!written) {
      metrics_->isr_proposals_failed += 1;
      s.propose_after = clock::now() + proposal_backoff;
      s.replica->isr_failed();
      return sync(shard, s);
    }
    auto dropped = std::any_of(before.begin(), before.end(), [&](const std::string& n) {
      return std::find(isr.begin(), isr.end(), n) == isr.end();
    });
    auto added = std::any_of(isr.begin(), isr.end(), [&](const std::string& n) {
      return std::find(before.begin(), before.end(), n) == before.end();
    });
    if (dropped) metrics_->isr_shrinks += 1;
    if (added) metrics_->isr_expands += 1;
    log(log_level::info, "isr_written",
        {{"shard", std::to_string(shard)}, {"isr", std::to_string(isr.size())}});
    if (s.revision == expected) {
      s.assignment->isr = isr;
      s.revision = *revision;
    }
    s.replica->isr_written(isr, clock::now());
    sync(shard, s);
  }

  // -- status ------------------------------------------------------------------------------

  std::string status_json() const {
    // Node ids are valid_name()s (checked by decode_assignment): nothing in them to escape.
    std::string out = "[";
    for (auto& [shard, s] : slots_) {
      if (!s.replica) continue;
      auto& r = *s.replica;
      auto& a = *s.assignment;
      if (out.size() > 1) out += ',';
      out += "{\"shard\":" + std::to_string(shard) + ",\"epoch\":" + std::to_string(a.epoch) +
             ",\"leader\":\"" + a.leader + "\",\"leading\":" + (r.leading() ? "true" : "false") +
             ",\"serving\":" + (s.serving ? "true" : "false") +
             ",\"log_end\":" + std::to_string(r.log_end()) +
             ",\"applied\":" + std::to_string(r.applied()) +
             ",\"high_watermark\":" + std::to_string(r.high_watermark()) + ",\"isr\":[";
      for (std::size_t i = 0; i < a.isr.size(); ++i) out += (i ? ",\"" : "\"") + a.isr[i] + "\"";
      out += "],\"revision\":" + std::to_string(s.revision) + "}";
    }
    return out + "]";
  }

  storage::journal& journal_;
  std::string self_;
  cluster::in_sync_config cfg_;
  log_retention retention_;
  clock::time_point retain_after_;  // the next retention pass
  std::string staging_dir_;
  std::uint64_t snapshot_ids_;
  replication_hooks hooks_;
  std::shared_ptr<replication_metrics> metrics_;
  std::map<shard_t, slot> slots_;
  std::set<std::string> unreachable_;  // peers whose connection is down (peer_down_atom)
  std::uint64_t lives_ = 0;
  std::uint64_t proposals_ = 0;
};

}  // namespace

caf::actor spawn_replication(caf::actor_system& sys, storage::journal& journal, std::string self,
                             cluster::in_sync_config cfg, replication_hooks hooks,
                             std::string staging_dir, std::shared_ptr<replication_metrics> metrics,
                             log_retention retention) {
  return sys.spawn<replication_actor, caf::detached>(journal, std::move(self), cfg,
                                                     std::move(hooks), std::move(staging_dir),
                                                     std::move(metrics), retention);
}

}  // namespace kaiwa::detail
