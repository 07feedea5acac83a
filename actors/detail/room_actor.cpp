// The actor that owns one active room. See rooms.hpp for the life of a command.
//
// Invariants:
// - `state_` already includes every event staged in `open_` and `flying_`; `committed_` is the
//   highest seq known durable. Clients only ever see events <= committed_ from the journal;
//   later ones reach subscribers through broadcast when their commit completes, so a join
//   never gets an event twice and never misses one.
// - At most one write_set is in flight; commands that arrive meanwhile accumulate in `open_`,
//   which is how a busy room's writes get batched.

#include <unordered_map>

#include "actors/detail/messages.hpp"
#include "actors/detail/replication_actor.hpp"
#include "actors/room_state.hpp"
#include "core/log.hpp"
#include "core/replies.hpp"
#include "storage/journal.hpp"

namespace kaiwa::detail {

namespace {

constexpr std::size_t max_backfill = 1000;
// Presence changes are pushed to the subscribers of rooms this small, at most once per
// presence_period; in bigger rooms every join would cost a list the size of the room sent to
// the whole room, so their clients ask with `presence`.
constexpr std::size_t max_presence_push_subscriptions = 100;
constexpr auto presence_period = std::chrono::milliseconds(250);
constexpr std::size_t max_cached_cids = 100'000;

using link_ptr = std::shared_ptr<client_link>;

// A replicate that got no answer (the replication actor is gone): like not_leader. The
// answers it gives are in replication_actor.hpp.
constexpr std::int32_t replicate_failed = -1;

/// Writes, replies and pushes that become visible together when one commit completes.
struct commit_batch {
  storage::write_set writes;
  struct reply {
    link_ptr link;
    frame_ptr frame;
    std::string id;  // to answer with an error instead if the commit fails
  };
  std::vector<reply> replies;
  std::vector<frame_ptr> events;
  std::vector<std::pair<frame_ptr, const client_link*>> receipts;  // frame, reader's link
  std::vector<frame_ptr> pushes;  // to every subscriber, not events (archived)
  std::vector<link_ptr> ended;    // subscriptions the batch ends (kicks), after its events
  seq_t head = 0;
  std::uint64_t generation = 0;  // set when handed to the journal (room_actor::generation_)
  std::vector<seq_t> records;    // seqs of the records it stages that may be rewritten again

  bool empty() const {
    return writes.empty() && replies.empty() && ended.empty() && pushes.empty();
  }
};

frame_ptr encode(const event& e) {
  frame_builder b(frame_builder::opcode::text, 160 + e.text.size());
  encode_event(b.json(), e);
  return b.finish();
}

class room_actor : public caf::event_based_actor {
 public:
  room_actor(caf::actor_config& cfg, room_id room, room_env& env, caf::actor registry)
      : caf::event_based_actor(cfg),
        env_(env),
        registry_(std::move(registry)),
        state_(room),
        room_(std::move(room)),
        backlog_slot_(room_env::backlog_slot(room_)) {
    env_.active += 1;
    env_.activated += 1;
  }

  void on_exit() override { env_.active -= 1; }

  caf::behavior make_behavior() override {
    schedule_tick();
    return {
        [this](command& c) {
          ++received_;
          env_.command_taken(backlog_slot_);
          // Admin reads neither count as activity nor keep the room from passivating.
          if (c.op != room_op::info) last_activity_ = now_millis();
          if (failed_) {
            refuse_failed(c);
            return request_passivation();
          }
          if (deleting_) return refuse_deleting(c);
          if (!recovered_ && !recover()) {
            refuse_failed(c);
            return fail();
          }
          handle(c);
          flush();
          // A room that doesn't exist (a history, edit or presence of a made-up name, a refused
          // creation) has nothing to keep in memory: passivate it now, not after idle_timeout.
          if (!state_.exists() && subs_.empty() && !in_flight_ && open_.empty())
            request_passivation();
        },
        [this](committed_atom, bool ok) { on_committed(ok); },
        [this](deleted_atom, bool ok) { on_deleted(ok); },
        [this](tick_atom) { on_tick(); },
        [this](presence_atom) { push_presence(); },
        [this](stop_atom) {
          stopping_ = true;
          quit_if_done();
        },
    };
  }

 private:
  // -- recovery -----------------------------------------------------------------------------

  bool recover() {
    auto started = std::chrono::steady_clock::now();
    auto snap = env_.journal.snapshot(room_);
    if (!snap) return false;
    if (*snap) {
      auto s = room_state::from_snapshot(room_, **snap);
      if (!s) return false;
      state_ = std::move(*s);
    }
    for (;;) {
      auto evs = env_.journal.events_after(room_, state_.head(), 1000);
      if (!evs) return false;
      for (auto& json : *evs) {
        auto e = decode_event(json);
        if (!e || e->seq != state_.head() + 1) return false;
        state_.apply(*e);
      }
      if (evs->size() < 1000) break;
    }
    committed_ = state_.head();
    recovered_ = true;
    auto took = std::chrono::steady_clock::now() - started;
    if (took > env_.cfg.slow_activation)
      log(log_level::warn, "slow_room_activation",
          {{"room", room_.str()},
           {"ms", std::chrono::duration<double, std::milli>(took).count()},
           {"head", state_.head()}});
    return true;
  }

  // -- commands -----------------------------------------------------------------------------

  void handle(command& c) {
    switch (c.op) {
      case room_op::join:
        return on_join(c);
      case room_op::leave:
        unsubscribe(c.link.get());
        return reply_now(c, left_frame(c));
      case room_op::disconnect:
        return unsubscribe(c.link.get());
      case room_op::info:
        return on_info(c);
      case room_op::snapshot:
        return on_snapshot(c);
      case room_op::destroy:
        return on_destroy(c);
      case room_op::archive:
      case room_op::unarchive:
        return on_archive(c);
      case room_op::adopt:
        for (auto& sub : c.adopted) subs_[sub.link.get()] = sub;
        lanes_dirty_ = true;
        return;
      case room_op::send:
        return on_send(c);
      case room_op::history:
        return on_history(c);
      case room_op::typing:
        return on_typing(c);
      case room_op::read:
        return on_read(c);
      case room_op::presence:
        return on_presence(c);
      case room_op::edit:
      case room_op::del:
      case room_op::create:
      case room_op::invite:
      case room_op::kick:
      case room_op::set_topic:
        append(c);
        return;
    }
  }

  /// Decides `c`, stages its events and queues its reply for after the commit.
  /// Returns false (after replying with the error) when `c` was rejected.
  bool append(command& c) {
    std::optional<event> referenced;
    if (c.op == room_op::edit || c.op == room_op::del) {
      auto r = record(c.ref);
      if (!r) return reply_error(c, errc::internal, "storage error");
      referenced = std::move(*r);
    }
    auto now = now_millis();
    auto d = state_.decide(c, now, referenced);
    if (auto* r = std::get_if<rejection>(&d)) return reply_error(c, r->code, r->message);
    auto& events = std::get<std::vector<event>>(d);
    if (!events.empty() && events.front().type == event_type::created &&
        !env_.creations.allow(c.user.str(), now)) {
      env_.creations_refused.fetch_add(1, std::memory_order_relaxed);
      return reply_error(c, errc::rate_limited, "too many rooms created: retry in a minute");
    }
    std::vector<event> rewrites;
    if (referenced) {
      auto r = rewrites_for(std::move(*referenced), events.back());
      if (!r) return reply_error(c, errc::internal, "storage error");
      rewrites = std::move(*r);
    }
    for (auto& e : events) stage(e);
    for (auto& r : rewrites) stage_record(r);
    if (c.op == room_op::join) return true;
    if (c.op == room_op::kick) end_subscriptions_of(c.target);
    const auto& last = events.back();
    frame_ptr reply;
    if (c.op == room_op::create) {
      frame_builder b;
      begin_reply(b, "created", c.id)
          .field("room", room_.str())
          .field("seq", last.seq)
          .end_object();
      reply = b.finish();
    } else {
      reply = ack_frame(c.id, room_, last.seq, last.ts);
    }
    if (c.op == room_op::send && !c.cid.empty()) remember_cid(c, last.seq, last.ts);
    open_.replies.push_back({c.link, std::move(reply), c.id});
    return true;
  }

  void stage(const event& e) {
    auto f = encode(e);
    state_.apply(e);
    open_.writes.put_event(room_, e.seq, f->payload());
    if (e.type == event_type::edit) remember_record(e);
    if (e.type == event_type::message && !e.cid.empty())
      open_.writes.put_dedupe(room_, e.from, e.cid, e.seq);
    // The room's metadata is written when it is created and with each snapshot, not per
    // event: the head is always the last event's seq, one seek away.
    if (e.type == event_type::created || e.seq % env_.cfg.snapshot_every == 0) put_meta();
    if (e.seq % env_.cfg.snapshot_every == 0) open_.writes.put_snapshot(room_, state_.snapshot());
    open_.events.push_back(std::move(f));
    open_.head = e.seq;
  }

  // -- edits and deletes --------------------------------------------------------------------

  /// The stored form of event `seq` as the staged batches leave it: a message with a pending
  /// rewrite or a staged edit event from `staged_records_`, else the journal's record when it
  /// is durable. Events staged by new commands are not visible here, as they are not to clients.
  storage::result<std::optional<event>> record(seq_t seq) {
    if (auto it = staged_records_.find(seq); it != staged_records_.end())
      return std::optional<event>{it->second.first};
    if (seq < 1 || seq > committed_) return std::optional<event>{};
    auto json = env_.journal.event(room_, seq);
    if (!json) return json.err();
    if (!*json) return std::optional<event>{};
    return decode_event(**json);
  }

  /// The records that `change` (an edit or delete of message `m`) rewrites, staged in the same
  /// write_set as `change` so that history and backfill serve the current text or none, and
  /// RocksDB's compaction drops the old values. A delete redacts the message's edits too.
  storage::result<std::vector<event>> rewrites_for(event m, const event& change) {
    std::vector<event> out;
    if (change.type == event_type::del) {
      for (auto s : m.edits) {
        auto edit = record(s);
        if (!edit) return edit.err();
        if (*edit && (*edit)->type == event_type::edit) out.push_back(redacted(std::move(**edit)));
      }
    }
    out.push_back(rewritten(std::move(m), change));
    return out;
  }

  void stage_record(const event& r) {
    open_.writes.put_event(room_, r.seq, encode(r)->payload());
    remember_record(r);
  }

  void remember_record(const event& e) {
    staged_records_.insert_or_assign(e.seq, std::pair{e, generation_});
    open_.records.push_back(e.seq);
  }

  /// `b` is durable: the journal now holds what it staged, unless a later batch restaged it.
  void forget_records(const commit_batch& b) {
    for (auto s : b.records)
      if (auto it = staged_records_.find(s);
          it != staged_records_.end() && it->second.second == b.generation)
        staged_records_.erase(it);
  }

  void put_meta() { open_.writes.put_meta(room_, state_.meta()); }

  void on_send(command& c) {
    if (!c.cid.empty()) {
      auto key = cid_key(c.user, c.cid);
      auto it = cids_.find(key);
      if (it != cids_.end())
        return queue_reply(c, ack_frame(c.id, room_, it->second.first, it->second.second));
      auto stored = env_.journal.dedupe(room_, c.user, c.cid);
      if (!stored) return (void)reply_error(c, errc::internal, "storage error");
      if (*stored) {
        auto json = env_.journal.event(room_, **stored);
        auto e = json && *json ? decode_event(**json) : std::nullopt;
        if (!e) return (void)reply_error(c, errc::internal, "storage error");
        return queue_reply(c, ack_frame(c.id, room_, e->seq, e->ts));
      }
    }
    append(c);
  }

  void on_join(command& c) {
    if (!append(c)) return;
    if (subs_.size() < max_presence_push_subscriptions && !subscribed(c.user)) presence_changed();
    subs_[c.link.get()] = {c.link, c.user};
    lanes_dirty_ = true;
    std::vector<frame_ptr> frames;
    frame_builder b;
    auto& w = begin_reply(b, "joined", c.id).field("room", room_.str()).field("head", committed_);
    // Only when set: a client learns at join that the room is read-only (the push says changes).
    if (state_.archived()) w.field("archived", true);
    std::vector<std::string> backfill;
    if (c.since && *c.since < committed_) {
      seq_t from = *c.since;
      if (committed_ - from > max_backfill) {
        from = committed_ - max_backfill;
        w.field("gap_until", from + 1);
      }
      auto evs = env_.journal.events_after(room_, from, committed_ - from);
      if (!evs) {
        unsubscribe(c.link.get());
        return (void)reply_error(c, errc::internal, "storage error");
      }
      backfill = std::move(*evs);
    }
    w.end_object();
    frames.push_back(b.finish());
    for (auto& json : backfill) frames.push_back(text_frame(json));
    c.link->post([link = c.link, frames = std::move(frames)] {
      for (auto& f : frames) link->reply(f);
    });
  }

  void on_history(command& c) {
    if (auto r = state_.check_read(c.user)) return (void)reply_error(c, r->code, r->message);
    storage::result<std::vector<std::string>> evs = std::vector<std::string>{};
    bool more = false;
    if (c.after) {
      seq_t upper = std::min<seq_t>(committed_, c.before ? *c.before - 1 : committed_);
      seq_t n = upper > *c.after ? std::min<seq_t>(c.limit, upper - *c.after) : 0;
      evs = env_.journal.events_after(room_, *c.after, n);
      more = *c.after + n < upper;
    } else {
      seq_t before = std::min<seq_t>(c.before.value_or(committed_ + 1), committed_ + 1);
      seq_t n = before > 1 ? std::min<seq_t>(c.limit, before - 1) : 0;
      // Seqs are gapless, so the page is [before - n, before): a forward scan, which RocksDB
      // does far more cheaply than stepping backwards.
      evs = env_.journal.events_after(room_, before - 1 - n, n);
      more = before > n + 1;
    }
    if (!evs) return (void)reply_error(c, errc::internal, "storage error");
    std::size_t bytes = 64;
    for (auto& e : *evs) bytes += e.size() + 1;
    frame_builder b(frame_builder::opcode::text, bytes);
    auto& w = begin_reply(b, "history", c.id).field("room", room_.str());
    w.key("events").begin_array();
    for (auto& e : *evs) w.raw(e);
    w.end_array().field("more", more).end_object();
    reply_now(c, b.finish());
  }

  void on_typing(command& c) {
    if (auto r = state_.check_read(c.user)) return (void)reply_error(c, r->code, r->message);
    frame_builder b;
    b.json()
        .begin_object()
        .field("op", "typing")
        .field("room", room_.str())
        .field("user", c.user.str())
        .end_object();
    broadcast({b.finish()}, c.link.get());
  }

  void on_read(command& c) {
    if (auto r = state_.check_read(c.user)) return (void)reply_error(c, r->code, r->message);
    if (c.seq > committed_)
      return (void)reply_error(c, errc::bad_request, "seq is beyond the room's head");
    auto it = markers_.find(c.user.str());
    if (it == markers_.end()) {
      auto stored = env_.journal.marker(c.user, room_);
      if (!stored) return (void)reply_error(c, errc::internal, "storage error");
      it = markers_.emplace(c.user.str(), *stored).first;
    }
    if (c.seq <= it->second) return queue_reply(c, ok_frame(c.id));  // never moves backwards
    it->second = c.seq;
    open_.writes.put_marker(c.user, room_, c.seq);
    frame_builder b;
    b.json()
        .begin_object()
        .field("op", "receipt")
        .field("room", room_.str())
        .field("user", c.user.str())
        .field("seq", c.seq)
        .end_object();
    open_.receipts.emplace_back(b.finish(), c.link.get());
    open_.replies.push_back({c.link, ok_frame(c.id), c.id});
  }

  void on_info(command& c) {
    if (!state_.exists()) return (void)reply_error(c, errc::not_found, "no such room");
    auto users = subscribed_users();
    frame_builder b;
    auto& w = begin_reply(b, "room", c.id)
                  .field("room", room_.str())
                  .field("shard", std::uint64_t{env_.shard(room_)})
                  .field("head", committed_)
                  .field("owner", state_.owner().str())
                  .field("private", state_.is_private())
                  .field("archived", state_.archived())
                  .field("topic", state_.topic())
                  .field("active", c.was_active)
                  .field("subscriptions", std::uint64_t{subs_.size()})
                  .field("last_activity_ms", last_activity_);
    // Outside a cluster the admin API adds the node that answered: it is the room's.
    if (env_.cfg.cluster) w.field("node", env_.cfg.cluster->node_id);
    w.key("members").begin_array();
    for (auto& m : state_.members()) w.value(m);
    w.end_array().key("subscribers").begin_array();
    for (auto& u : users) w.value(u);
    w.end_array().end_object();
    reply_now(c, b.finish());
  }

  void on_snapshot(command& c) {
    if (!state_.exists()) return (void)reply_error(c, errc::not_found, "no such room");
    open_.writes.put_snapshot(room_, state_.snapshot());
    put_meta();
    frame_builder b;
    begin_reply(b, "snapshot", c.id)
        .field("room", room_.str())
        .field("head", state_.head())
        .end_object();
    queue_reply(c, b.finish());
  }

  // -- archive and delete -------------------------------------------------------------------

  /// Archived state is kept in the snapshot and the meta record, both written now, so that it
  /// survives restarts; subscribers are told once it is durable.
  void on_archive(command& c) {
    if (!state_.exists()) return (void)reply_error(c, errc::not_found, "no such room");
    bool archived = c.op == room_op::archive;
    if (state_.archived() != archived) {
      state_.set_archived(archived);
      open_.writes.put_snapshot(room_, state_.snapshot());
      put_meta();
      open_.pushes.push_back(archived_frame({}));
    }
    queue_reply(c, archived_frame(c.id));
  }

  frame_ptr archived_frame(std::string_view id) const {
    frame_builder b;
    begin_reply(b, "archived", id)
        .field("room", room_.str())
        .field("archived", state_.archived())
        .end_object();
    return b.finish();
  }

  /// Tells the subscribers, ends their subscriptions, and starts the deletion once nothing of
  /// the room is being committed. Until it ends, every command is refused (refuse_deleting).
  void on_destroy(command& c) {
    if (!state_.exists()) return (void)reply_error(c, errc::not_found, "no such room");
    if (!env_.cfg.delete_room)
      return (void)reply_error(c, errc::unavailable, "this node can't delete rooms");
    // The erasure is the leader's alone (storage::journal, "deleting a room"), not an entry of
    // the shard's replicated log: the followers would keep the room, and a failover bring it
    // back. Refused until it is replicated; `archive` works.
    if (env_.replication)
      return (void)reply_error(
          c, errc::unavailable,
          "rooms of a replicated cluster can't be deleted yet (archive it instead)");
    frame_builder b;
    b.json().begin_object().field("op", "deleted").field("room", room_.str()).end_object();
    broadcast({b.finish()}, nullptr);
    for (auto& [_, s] : subs_)
      s.link->post([link = s.link, room = room_] { link->subscription_ended(room, "deleted"); });
    subs_.clear();
    lanes_.clear();
    deleting_ = true;
    deleter_ = c;
    start_deletion();
  }

  void start_deletion() {
    if (!deleting_ || deletion_started_ || in_flight_ || !open_.empty()) return;
    deletion_started_ = true;
    env_.cfg.delete_room(room_, [self = caf::actor{this}](bool ok) {
      caf::anon_send(self, deleted_atom::value, ok);
    });
  }

  /// The room's data is gone: this actor now holds what recovery from the empty log would give
  /// (no room), so the name can be created again at once.
  void on_deleted(bool ok) {
    deleting_ = deletion_started_ = false;
    auto c = std::move(deleter_);
    if (!ok) {
      reply_error(c, errc::internal, "the deletion failed: it is done again when the node starts");
      fail();
      return quit_if_done();
    }
    log(log_level::info, "room_deleted", {{"room", room_.str()}, {"head", state_.head()}});
    state_ = room_state(room_);
    committed_ = 0;
    cids_.clear();
    markers_.clear();
    staged_records_.clear();
    frame_builder b;
    begin_reply(b, "deleted", c.id).field("room", room_.str()).end_object();
    reply_now(c, b.finish());
    if (stopping_) return quit_if_done();
    request_passivation();
  }

  void refuse_deleting(const command& c) {
    for (auto& s : c.adopted)
      s.link->post([link = s.link, room = room_] { link->subscription_lost(room); });
    if (c.op != room_op::disconnect && c.op != room_op::adopt)
      c.link->send(error_frame(c.id, errc::unavailable, "the room is being deleted: retry"));
  }

  void on_presence(command& c) {
    if (auto r = state_.check_read(c.user)) return (void)reply_error(c, r->code, r->message);
    reply_now(c, presence_frame(c.id));
  }

  std::set<std::string> subscribed_users() const {
    std::set<std::string> users;
    for (auto& [_, s] : subs_) users.insert(s.user.str());
    return users;
  }

  /// The presence reply (with the request's id) or push (no id).
  frame_ptr presence_frame(std::string_view id) const {
    frame_builder b;
    auto& w = begin_reply(b, "presence", id).field("room", room_.str());
    w.key("users").begin_array();
    for (auto& u : subscribed_users()) w.value(u);
    w.end_array().end_object();
    return b.finish();
  }

  bool subscribed(const user_id& user) const {
    return std::any_of(subs_.begin(), subs_.end(),
                       [&](auto& kv) { return kv.second.user == user; });
  }

  /// A user's first subscription began or last one ended: push the new list soon.
  void presence_changed() {
    if (presence_push_pending_ || subs_.size() > max_presence_push_subscriptions) return;
    presence_push_pending_ = true;
    delayed_send(this, presence_period, presence_atom::value);
  }

  void push_presence() {
    presence_push_pending_ = false;
    if (!subs_.empty() && subs_.size() <= max_presence_push_subscriptions)
      broadcast({presence_frame({})}, nullptr);
  }

  // -- replies and fan-out ------------------------------------------------------------------

  frame_ptr left_frame(const command& c) {
    frame_builder b;
    begin_reply(b, "left", c.id).field("room", room_.str()).end_object();
    return b.finish();
  }

  bool reply_error(const command& c, errc code, std::string_view msg) {
    c.link->send(error_frame(c.id, code, msg));
    return false;
  }

  void reply_now(const command& c, frame_ptr f) { c.link->send(std::move(f)); }

  /// A reply that must not overtake commits already staged (e.g. an ack for a retried cid).
  void queue_reply(const command& c, frame_ptr f) {
    open_.replies.push_back({c.link, std::move(f), c.id});
  }

  void broadcast(std::vector<frame_ptr> frames, const client_link* exclude) {
    if (subs_.empty() || frames.empty()) return;
    if (lanes_dirty_) rebuild_lanes();
    auto receivers = subs_.size() - (exclude && subs_.contains(exclude) ? 1 : 0);
    env_.deliveries.fetch_add(frames.size() * receivers, std::memory_order_relaxed);
    auto shared = std::make_shared<const frame_list>(std::move(frames));
    for (auto& group : lanes_) group->front()->push_to_lane(group, shared, exclude);
  }

  void rebuild_lanes() {
    std::unordered_map<const void*, std::shared_ptr<link_group>> by_lane;
    for (auto& [_, s] : subs_) {
      auto& g = by_lane[s.link->lane()];
      if (!g) g = std::make_shared<link_group>();
      g->push_back(s.link);
    }
    lanes_.clear();
    for (auto& [_, g] : by_lane) lanes_.push_back(std::move(g));
    lanes_dirty_ = false;
  }

  void unsubscribe(client_link* link) {
    auto it = subs_.find(link);
    if (it == subs_.end()) return;
    auto user = it->second.user;
    subs_.erase(it);
    lanes_dirty_ = true;
    if (subs_.size() < max_presence_push_subscriptions && !subscribed(user)) presence_changed();
  }

  /// Ends `user`'s subscriptions once the staged events (its member_removed among them)
  /// have been delivered, so the kicked user still sees its own removal.
  void end_subscriptions_of(const user_id& user) {
    for (auto& [_, s] : subs_)
      if (s.user == user) open_.ended.push_back(s.link);
  }

  // -- commit pipeline ----------------------------------------------------------------------

  void flush() {
    if (in_flight_ || open_.empty()) return;
    if (open_.writes.empty()) {  // only replies about what is already durable
      deliver(open_);
      open_ = {};
      return;
    }
    flying_ = std::move(open_);
    open_ = {};
    flying_.generation = generation_++;
    in_flight_ = true;
    if (env_.replication) return replicate();
    env_.journal.commit(std::move(flying_.writes),
                        [self = caf::actor{this}](const storage::status& s) {
                          caf::anon_send(self, committed_atom::value, s.ok());
                        });
  }

  /// A replicated shard's commit: the write_set goes to the shard's log through the node's
  /// replication actor, which answers once every in-sync replica holds it and it is applied
  /// here (docs/cluster.md "Replication and failover"). Its records are read back from the
  /// journal only after that, like a local commit's.
  void replicate() {
    auto payload = env_.journal.replica_payload(flying_.writes);
    request(env_.replication, caf::infinite, replicate_atom::value, env_.shard(room_),
            std::move(payload))
        .then([this](std::int32_t code) { on_replicated(code); },
              [this](caf::error&) { on_replicated(replicate_failed); });
  }

  void on_replicated(std::int32_t code) {
    if (code == replicate_acked) return on_committed(true);
    // Not written (this node no longer leads, or too few replicas are in sync): `unavailable`,
    // the client retries and reaches the new leader. Deposed: the write may survive on the new
    // leader or not, like a timeout. Either way this actor's state may be ahead of the log.
    auto [code_sent, why] =
        code == replicate_code(cluster::replicate_error::deposed)
            ? std::pair{errc::timeout,
                        "the shard's leader changed before the write was acked: it may or may "
                        "not have been applied"}
        : code == replicate_code(cluster::replicate_error::storage)
            ? std::pair{errc::internal, "the journal write failed"}
            : std::pair{errc::unavailable, "the room's shard is changing leader: retry"};
    in_flight_ = false;
    answer_failed(code_sent, why);
  }

  void on_committed(bool ok) {
    in_flight_ = false;
    if (!ok) return answer_failed(errc::internal, "the journal write failed");
    env_.events_appended += flying_.events.size();
    committed_ = std::max(committed_, flying_.head);  // a batch of markers only has no head
    forget_records(flying_);
    deliver(flying_);
    flying_ = {};
    flush();
    start_deletion();
    quit_if_done();
  }

  /// The room's state may now be ahead of the disk: answers everyone waiting and stops, so the
  /// next command activates a fresh actor that recovers from what is durable.
  void answer_failed(errc code, std::string_view why) {
    // Until it is passivated, later commands learn the same: retry (a leadership change) or not.
    failed_code_ = code == errc::internal ? errc::internal : errc::unavailable;
    for (auto* b : {&flying_, &open_})
      for (auto& r : b->replies) r.link->send(error_frame(r.id, code, why));
    fail();
  }

  /// Sends a durable batch's replies, events and receipts. Per lane, replies are posted before
  /// the events, so a sender sees its ack before its own event.
  void deliver(commit_batch& b) {
    for (auto& r : b.replies) r.link->send(std::move(r.frame));
    broadcast(std::move(b.events), nullptr);
    for (auto& [f, reader] : b.receipts) broadcast({std::move(f)}, reader);
    broadcast(std::move(b.pushes), nullptr);
    for (auto& link : b.ended) {
      unsubscribe(link.get());
      link->post([link, room = room_] { link->subscription_ended(room, "kicked"); });
    }
  }

  // -- passivation --------------------------------------------------------------------------

  void schedule_tick() {
    auto period = std::max(env_.cfg.idle_timeout / 2, std::chrono::milliseconds{10});
    delayed_send(this, period, tick_atom::value);
  }

  void on_tick() {
    bool idle = failed_ || (subs_.empty() && !in_flight_ && open_.empty() && !deleting_ &&
                            now_millis() - last_activity_ >= env_.cfg.idle_timeout.count());
    if (idle) request_passivation();
    schedule_tick();
  }

  /// The room could not recover, or a commit failed (its state may be ahead of the disk): it
  /// serves nothing more and asks to be passivated, so that the next command activates a fresh
  /// actor that recovers from what is durable. It does not quit on its own: commands the
  /// registry has already forwarded would be dropped unanswered (and stay counted in the
  /// backlog); the passivation handshake stops it once it has answered all of them.
  void fail() {
    failed_ = true;
    // Its subscribers would silently stop getting events: their clients resume with `since`.
    for (auto& [_, s] : subs_)
      s.link->post([link = s.link, room = room_] { link->subscription_lost(room); });
    subs_.clear();
    lanes_.clear();
    open_ = {};
    flying_ = {};
    staged_records_.clear();
    request_passivation();
    // Already told to stop (its shard released, e.g. its leadership lost while a replicated
    // write was in flight): the registry forwards it nothing more, so it ends now. Waiting for
    // the passivation handshake would wait forever, the registry holding its commands.
    quit_if_done();
  }

  void refuse_failed(const command& c) {
    for (auto& s : c.adopted)
      s.link->post([link = s.link, room = room_] { link->subscription_lost(room); });
    if (c.op != room_op::disconnect && c.op != room_op::adopt)
      c.link->send(error_frame(c.id, failed_code_,
                               failed_code_ == errc::internal
                                   ? "the room failed to read or write its log"
                                   : "the room's shard is changing leader: retry"));
  }

  /// The registry stops this room if every command it forwarded has been received.
  void request_passivation() { send(registry_, idle_atom::value, room_.str(), received_); }

  void quit_if_done() {
    // A deletion under way is waited for: its admin request is answered when it ends.
    if (stopping_ && !in_flight_ && open_.empty() && !deleting_) {
      // A room stopped for a shard handover still has subscribers; they go with its data.
      if (!subs_.empty()) {
        std::vector<room_subscriber> subs;
        for (auto& [_, sub] : subs_) subs.push_back(sub);
        send(registry_, subs_atom::value, room_.str(), std::move(subs));
      }
      env_.passivated += 1;
      quit();
    }
  }

  // -- dedupe -------------------------------------------------------------------------------

  static std::string cid_key(const user_id& user, std::string_view cid) {
    std::string k = user.str();
    k += '\0';
    k += cid;
    return k;
  }

  void remember_cid(const command& c, seq_t seq, millis_t ts) {
    if (cids_.size() >= max_cached_cids) cids_.clear();  // older ones are found in the journal
    cids_[cid_key(c.user, c.cid)] = {seq, ts};
  }

  room_env& env_;
  caf::actor registry_;
  room_state state_;
  room_id room_;
  std::size_t backlog_slot_;  // of room_, in env_.backlog
  bool recovered_ = false;
  bool failed_ = false;                // see fail()
  errc failed_code_ = errc::internal;  // what commands are refused with once failed_
  bool stopping_ = false;
  bool deleting_ = false;          // see on_destroy
  bool deletion_started_ = false;  // delete_room called, its answer not in yet
  command deleter_;                // the admin command that asked, answered by on_deleted
  seq_t committed_ = 0;
  std::uint64_t received_ = 0;  // commands received, for the passivation handshake
  millis_t last_activity_ = now_millis();

  std::unordered_map<const client_link*, room_subscriber> subs_;
  bool presence_push_pending_ = false;
  std::vector<std::shared_ptr<const link_group>> lanes_;  // subs_ grouped by lane, rebuilt lazily
  bool lanes_dirty_ = true;

  commit_batch open_;    // staged, not yet handed to the journal
  commit_batch flying_;  // handed to the journal, awaiting its completion
  bool in_flight_ = false;
  std::uint64_t generation_ = 0;  // of open_; flying_'s is one less
  // Records that open_ or flying_ (re)write and edits or deletes may rewrite again before they
  // are durable: seq -> (record, generation of the batch that staged it last).
  std::unordered_map<seq_t, std::pair<event, std::uint64_t>> staged_records_;

  std::unordered_map<std::string, std::pair<seq_t, millis_t>> cids_;  // user NUL cid -> ack
  std::unordered_map<std::string, seq_t> markers_;                    // user -> read marker
};

}  // namespace

caf::actor spawn_room(caf::actor_system& sys, room_id room, room_env& env, caf::actor registry) {
  return sys.spawn<room_actor>(std::move(room), env, std::move(registry));
}

}  // namespace kaiwa::detail
