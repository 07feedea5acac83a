#include "read/projector.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <sched.h>
#include <unistd.h>

#include "core/bytes.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "storage/journal.hpp"

namespace kaiwa::read {

std::string_view to_string(projection_state s) noexcept {
  switch (s) {
    case projection_state::catching_up:
      return "catching_up";
    case projection_state::live:
      return "live";
    case projection_state::rebuilding:
      return "rebuilding";
  }
  return "?";
}

namespace {

using clock = std::chrono::steady_clock;

// Projections a projector feeds: fixed-size arrays in each dirty entry keep it one allocation.
constexpr std::size_t max_projections = 4;

/// The projector's offset key of `room`: `shard 0x00 room` (storage/read_store.hpp).
std::string offset_key(const room_id& room, std::uint32_t shards) {
  auto k = storage::shard_prefix(shard_of(room.str(), shards));
  k += '\0';
  k += room.str();
  return k;
}

}  // namespace

storage::status erase_room(storage::journal& journal, const std::vector<projection*>& projections,
                           const room_id& room, std::size_t batch_ops) {
  // The erasure deletes what the walks below see, through the WAL; the projector's own writes
  // skip it. Unflushed, a crash would lose those writes and bring back what they had replaced
  // or removed (an edited message's old postings, a kicked member), which the erasure never saw:
  // left behind under a name that may be created again. Flushed first, what it sees is durable.
  // (Nothing of the room is applied meanwhile: this runs between the projector's batches.)
  if (auto st = journal.flush_reads(); !st.ok()) return st;
  for (auto* p : projections) {
    for (bool done = false; !done;) {
      auto batch = journal.new_read_batch();
      auto r = p->erase_room(room, batch, std::max<std::size_t>(batch_ops, 1));
      if (!r) return r.err();
      done = *r;
      // The offset goes with the last batch: until then a crash leaves the deletion mark, and
      // the erasure is done again at start.
      if (done) batch.del(p->family(), offset_key(room, journal.shards()));
      if (auto st = journal.write_reads(std::move(batch), true); !st.ok()) return st;
    }
  }
  return {};
}

struct projector::impl {
  impl(storage::journal& j, std::vector<projection*> ps, projector_config c, notice_sink n)
      : journal(j), projections(std::move(ps)), cfg(c), sink(std::move(n)) {
    if (projections.size() > max_projections)
      throw std::invalid_argument("a projector feeds at most 4 projections");
    for (std::size_t p = 0; p < projections.size(); ++p)
      phase[p].state = projection_state::catching_up;
  }

  // -- the dirty map (guarded by mtx) -------------------------------------------------------

  struct entry {
    seq_t noted = 0;  // the highest seq the journal (or a walk) reported
    std::array<seq_t, max_projections> applied{};  // each projection's offset, when known
    std::array<bool, max_projections> known{};
    // When a walk counted the room in a projection's catch-up or rebuild: the seq that ends
    // it (0: not counted).
    std::array<seq_t, max_projections> target{};
    std::array<clock::time_point, max_projections> since{};  // first unapplied note
    bool queued = false;
    bool in_flight = false;  // the thread is applying it; it re-queues it after
    // The first note that came while in flight, and when: what is left after the apply was
    // noted then (not when the room first became dirty), so a room that stays busy doesn't
    // look ever more behind.
    bool noted_later = false;
    clock::time_point later_note{};
  };

  /// Events noted and not applied for `p` (at least one when the offset is not known yet).
  std::uint64_t pending_of(const entry& e, std::size_t p) const {
    if (!e.known[p]) return e.noted > 0 ? 1 : 0;
    return e.noted > e.applied[p] ? e.noted - e.applied[p] : 0;
  }

  /// Changes `e` with `fn`, keeping the pending counters and `since` in step.
  template <class Fn>
  void update(entry& e, Fn fn) {
    std::array<std::uint64_t, max_projections> before{};
    for (std::size_t p = 0; p < projections.size(); ++p) before[p] = pending_of(e, p);
    fn(e);
    auto now = clock::now();
    for (std::size_t p = 0; p < projections.size(); ++p) {
      auto after = pending_of(e, p);
      phase[p].pending += after;
      phase[p].pending -= before[p];
      if (before[p] == 0 && after > 0) {
        e.since[p] = now;
        unapplied_since[p].insert(now);
      } else if (before[p] > 0 && after == 0) {
        // Every entry with pending events has its note here (all changes go through update).
        auto it = unapplied_since[p].find(e.since[p]);
        if (it != unapplied_since[p].end()) unapplied_since[p].erase(it);
      }
    }
  }

  /// Moves the time `e`'s unapplied events of `p` were first noted to `at`.
  void renote(entry& e, std::size_t p, clock::time_point at) {
    auto it = unapplied_since[p].find(e.since[p]);
    if (it != unapplied_since[p].end()) unapplied_since[p].erase(it);
    e.since[p] = at;
    unapplied_since[p].insert(at);
  }

  bool dirty(const entry& e) const {
    for (std::size_t p = 0; p < projections.size(); ++p)
      if (pending_of(e, p) > 0 || e.target[p] != 0) return true;
    return false;
  }

  void enqueue(const std::string& room, entry& e) {
    if (e.queued || e.in_flight) return;
    e.queued = true;
    queue.push_back(room);
  }

  /// The journal's note after a group commit (writer thread).
  void noted(const std::vector<storage::journal::appended>& rooms) {
    {
      std::lock_guard lock(mtx);
      for (auto& [room, seq] : rooms) {
        auto& e = dirty_map[room];
        if (seq <= e.noted) continue;
        update(e, [&](entry& x) { x.noted = seq; });
        if (e.in_flight && !e.noted_later) {
          e.noted_later = true;
          e.later_note = clock::now();
        }
        enqueue(room, e);
      }
    }
    cv.notify_one();
  }

  // -- walks: catch-up at start, of a shard moved in, and rebuilds --------------------------

  struct walk {
    std::optional<shard_t> shard;  // only this shard's rooms
    std::array<bool, max_projections> mask{};
    bool counted = false;          // counts rooms in the projections' progress (start, rebuild)
    std::optional<room_id> after;  // where the next page starts
  };

  struct phase_state {
    projection_state state = projection_state::catching_up;
    std::uint64_t rooms_total = 0;
    std::uint64_t rooms_done = 0;
    std::uint64_t events_total = 0;  // of the counted rooms, from their offset to their target
    std::uint64_t events_done = 0;
    std::uint64_t estimate = 0;  // rooms on disk when a rebuild began
    bool walking = false;        // its counted walk is not finished
    bool drop_pending = false;   // a rebuild waits for the thread to drop the family
    std::uint64_t pending = 0;
    std::atomic<std::uint64_t> applied{0};
  };

  /// Reads the offset of `room` for projection `p`.
  storage::result<seq_t> read_offset(std::size_t p, const room_id& room) {
    auto v = journal.read_get(projections[p]->family(), offset_key(room, journal.shards()));
    if (!v) return v.err();
    if (!*v) return seq_t{0};
    auto& s = **v;
    if (s.size() != 8)
      return storage::error{storage::errc::corruption, "a projector offset is not 8 bytes"};
    return seq_t{read_be64(s)};
  }

  /// One page of a walk; false when it failed (the walk stays to be retried). Thread only.
  bool walk_step(walk& w) {
    auto page = journal.room_heads(w.after, cfg.walk_page, w.shard);
    if (!page) {
      log(log_level::error, "projector_walk_failed", {{"error", page.err().message}});
      return false;
    }
    // Offsets are read outside the lock (the thread is their only writer, and nothing of these
    // rooms is in flight between batches).
    struct found {
      const room_id* room;
      seq_t last;
      std::array<std::optional<seq_t>, max_projections> offset;
    };
    std::vector<found> rooms;
    rooms.reserve(page->size());
    for (auto& [room, last] : *page) {
      found f{&room, last, {}};
      for (std::size_t p = 0; p < projections.size(); ++p) {
        if (!w.mask[p]) continue;
        auto o = read_offset(p, room);
        if (!o) {
          log(log_level::error, "projector_offset_read_failed",
              {{"projection", projections[p]->name()}, {"error", o.err().message}});
          return false;
        }
        f.offset[p] = *o;
      }
      rooms.push_back(f);
    }
    {
      std::lock_guard lock(mtx);
      for (auto& f : rooms) {
        auto it = dirty_map.find(f.room->str());
        bool behind = false;
        for (std::size_t p = 0; p < projections.size(); ++p)
          behind = behind || (f.offset[p] && *f.offset[p] < f.last);
        if (it == dirty_map.end() && !behind) {
          // Every room counts in the progress; this one has nothing to do.
          for (std::size_t p = 0; p < projections.size(); ++p)
            if (f.offset[p] && w.counted) {
              phase[p].rooms_total += 1;
              phase[p].rooms_done += 1;
            }
          continue;
        }
        auto& e = dirty_map[f.room->str()];
        update(e, [&](entry& x) {
          x.noted = std::max(x.noted, f.last);
          for (std::size_t p = 0; p < projections.size(); ++p) {
            if (!f.offset[p]) continue;
            // A room the thread applied since the walk began knows its offset better.
            if (!x.known[p]) {
              x.applied[p] = *f.offset[p];
              x.known[p] = true;
            }
            if (!w.counted || x.target[p] != 0) continue;
            phase[p].rooms_total += 1;
            if (x.applied[p] < f.last) {
              x.target[p] = f.last;
              phase[p].events_total += f.last - x.applied[p];
            } else
              phase[p].rooms_done += 1;  // applied live before the walk came to it
          }
        });
        if (dirty(e))
          enqueue(f.room->str(), e);
        else
          dirty_map.erase(f.room->str());
      }
      if (page->size() < cfg.walk_page)
        w.after.reset();
      else
        w.after = page->back().room;
      if (!w.after) {
        for (std::size_t p = 0; p < projections.size(); ++p)
          if (w.mask[p] && w.counted) phase[p].walking = false;
        settle_phases();
      }
    }
    return true;
  }

  /// A projection whose counted walk is over and whose counted rooms are done is live.
  void settle_phases() {
    for (std::size_t p = 0; p < projections.size(); ++p) {
      auto& ph = phase[p];
      if (ph.state == projection_state::live || ph.walking || ph.drop_pending) continue;
      if (ph.rooms_done >= ph.rooms_total) {
        if (ph.state == projection_state::rebuilding)
          log(log_level::info, "projection_rebuilt",
              {{"projection", projections[p]->name()}, {"rooms", ph.rooms_total}});
        ph.state = projection_state::live;
      }
    }
  }

  // -- applying -------------------------------------------------------------------------------

  /// What the thread took of one room for a batch.
  struct taken {
    std::string room;
    std::array<seq_t, max_projections> applied{};
    std::array<bool, max_projections> known{};
    std::array<std::uint64_t, max_projections> count{};  // events applied per projection
    seq_t noted = 0;                                     // the entry's `noted` when taken
    seq_t reached = 0;                                   // the highest seq read from the log
    bool at_end = false;                                 // the log had nothing past `reached`
  };

  /// Applies the next chunk of `t`'s room into `batch`. Thread only.
  storage::status apply_room(taken& t, storage::read_batch& batch, std::vector<notice>& out,
                             const std::array<bool, max_projections>& quiet) {
    room_id room{t.room};
    for (std::size_t p = 0; p < projections.size(); ++p) {
      if (t.known[p]) continue;
      auto o = read_offset(p, room);
      if (!o) return o.err();
      t.applied[p] = *o;
      t.known[p] = true;
    }
    seq_t from = ~seq_t{0};
    for (std::size_t p = 0; p < projections.size(); ++p) from = std::min(from, t.applied[p]);
    auto events = journal.events_after(room, from, cfg.chunk);
    if (!events) return events.err();
    auto now = now_millis();
    std::vector<notice> fresh;
    auto before = t.applied;
    for (auto& json : *events) {
      auto e = decode_event(json);
      if (!e) {
        // It can't be applied, and trying again won't change that: skipped (its seq is the
        // next one, as the log has no gaps), so that the room's later events are not stuck.
        log(log_level::error, "projector_event_undecodable", {{"room", t.room}, {"seq", from + 1}});
        for (std::size_t p = 0; p < projections.size(); ++p)
          if (t.applied[p] == from) t.applied[p] = from + 1;
        from += 1;
        continue;
      }
      from = e->seq;
      for (std::size_t p = 0; p < projections.size(); ++p) {
        if (e->seq <= t.applied[p]) continue;
        fresh.clear();
        if (auto st = projections[p]->apply(*e, json, batch, fresh); !st.ok()) return st;
        t.applied[p] = e->seq;
        t.count[p] += 1;
        if (quiet[p] || now - e->ts > cfg.notice_max_age.count()) continue;
        std::move(fresh.begin(), fresh.end(), std::back_inserter(out));
      }
    }
    for (std::size_t p = 0; p < projections.size(); ++p)
      if (t.applied[p] != before[p])
        batch.put(projections[p]->family(), offset_key(room, journal.shards()), be64(t.applied[p]));
    t.reached = from;
    t.at_end = events->size() < cfg.chunk;
    return {};
  }

  /// Takes rooms until the batch is full, writes it, and settles the entries. False when
  /// something failed (the rooms stay dirty). Thread only.
  bool apply_batch() {
    auto batch = journal.new_read_batch();
    std::vector<taken> rooms;
    std::vector<notice> out;
    std::array<bool, max_projections> quiet{};
    storage::status failed;
    while (batch.count() < cfg.batch_ops && batch.bytes() < cfg.batch_bytes) {
      taken t;
      {
        std::lock_guard lock(mtx);
        if (queue.empty()) break;
        t.room = std::move(queue.front());
        queue.pop_front();
        auto& e = dirty_map[t.room];
        e.queued = false;
        e.in_flight = true;
        e.noted_later = false;
        t.applied = e.applied;
        t.known = e.known;
        t.noted = e.noted;
        for (std::size_t p = 0; p < projections.size(); ++p)
          quiet[p] = phase[p].state == projection_state::rebuilding;
      }
      failed = apply_room(t, batch, out, quiet);
      rooms.push_back(std::move(t));
      if (!failed.ok()) break;
    }
    if (rooms.empty()) return true;
    if (failed.ok()) failed = journal.write_reads(std::move(batch));
    {
      std::lock_guard lock(mtx);
      for (auto& t : rooms) {
        auto& e = dirty_map[t.room];
        e.in_flight = false;
        if (failed.ok()) {
          update(e, [&](entry& x) {
            // The log ended before what was noted (the room's shard moved away and was
            // dropped): nothing more to apply, unless a note came in meanwhile.
            if (t.at_end && x.noted == t.noted) x.noted = t.reached;
            x.noted = std::max(x.noted, t.reached);
            for (std::size_t p = 0; p < projections.size(); ++p) {
              if (auto target = x.target[p]; target != 0)
                phase[p].events_done +=
                    std::min(t.applied[p], target) - std::min(x.applied[p], target);
              x.applied[p] = t.applied[p];
              x.known[p] = true;
              phase[p].applied.fetch_add(t.count[p], std::memory_order_relaxed);
              if (x.target[p] != 0 && x.applied[p] >= x.target[p]) {
                x.target[p] = 0;
                phase[p].rooms_done += 1;
              }
            }
          });
          // Applied all that was noted when taken: what is left came with later notes.
          for (std::size_t p = 0; p < projections.size(); ++p)
            if (e.noted_later && e.applied[p] >= t.noted && pending_of(e, p) > 0)
              renote(e, p, e.later_note);
        }
        if (dirty(e))
          enqueue(t.room, e);
        else
          dirty_map.erase(t.room);
      }
      if (failed.ok()) settle_phases();
      delivering = failed.ok() && !out.empty() && sink;
    }
    if (!failed.ok()) {
      idle_cv.notify_all();
      log(log_level::error, "projector_apply_failed",
          {{"rooms", std::uint64_t{rooms.size()}}, {"error", failed.err().message}});
      return false;
    }
    if (delivering) {
      // After the commit and outside the lock: the sink posts to sessions and the cluster.
      sink(std::move(out));
      std::lock_guard lock(mtx);
      delivering = false;
    }
    idle_cv.notify_all();
    return true;
  }

  /// Nothing pending and every projection live. Under mtx.
  bool idle() const {
    if (!queue.empty() || !walks.empty() || rebuild_asked || delivering) return false;
    for (std::size_t p = 0; p < projections.size(); ++p)
      if (phase[p].state != projection_state::live || phase[p].pending > 0) return false;
    return true;
  }

  // -- the thread -----------------------------------------------------------------------------

  /// Drops the families of projections whose rebuild was asked for, and starts their walks.
  bool start_rebuilds() {
    for (std::size_t p = 0; p < projections.size(); ++p) {
      {
        std::lock_guard lock(mtx);
        if (!phase[p].drop_pending) continue;
      }
      if (auto st = journal.drop_reads(projections[p]->family()); !st.ok()) {
        log(log_level::error, "projection_drop_failed",
            {{"projection", projections[p]->name()}, {"error", st.err().message}});
        return false;
      }
      std::lock_guard lock(mtx);
      auto& ph = phase[p];
      ph.drop_pending = false;
      // What was counted before the drop is void.
      ph.rooms_total = ph.rooms_done = ph.events_total = ph.events_done = 0;
      // Every offset of the family is gone: the map's known offsets are now 0.
      for (auto& [room, e] : dirty_map)
        update(e, [&](entry& x) {
          x.applied[p] = 0;
          x.known[p] = true;
          x.target[p] = 0;
        });
      for (auto& w : walks) w.mask[p] = false;
      walk w;
      w.mask[p] = true;
      w.counted = true;
      walks.push_back(w);
      log(log_level::info, "projection_rebuild_started",
          {{"projection", projections[p]->name()}, {"rooms_estimate", ph.estimate}});
    }
    return true;
  }

  /// Erases the rooms forget_room was asked for. Thread only.
  void run_forgets() {
    for (;;) {
      std::pair<room_id, std::function<void(storage::status)>> f;
      {
        std::lock_guard lock(mtx);
        if (forgets.empty()) return;
        f = std::move(forgets.front());
        forgets.pop_front();
      }
      auto& [room, done] = f;
      auto st = erase_room(journal, projections, room, cfg.batch_ops);
      auto last = st.ok() ? journal.last_seq(room) : storage::result<seq_t>(seq_t{0});
      if (st.ok() && !last) st = last.err();
      if (st.ok()) {
        std::lock_guard lock(mtx);
        auto it = dirty_map.find(room.str());
        if (it != dirty_map.end() || *last > 0) {
          auto& e = dirty_map[room.str()];
          update(e, [&](entry& x) {
            x.noted = *last;
            x.applied = {};
            x.known.fill(true);  // every offset of the room is gone: 0
            for (std::size_t p = 0; p < projections.size(); ++p)
              if (x.target[p] != 0) {  // a catch-up counted it: it has nothing left to do
                x.target[p] = 0;
                phase[p].rooms_done += 1;
              }
          });
          if (dirty(e))
            enqueue(room.str(), e);
          else if (!e.in_flight)
            dirty_map.erase(room.str());
        }
        settle_phases();
      }
      if (!st.ok())
        log(log_level::error, "projector_forget_failed",
            {{"room", room.str()}, {"error", st.err().message}});
      done(st);
    }
  }

  void run() {
    // The write path comes first (the "projections never slow the ack"): this thread
    // runs under SCHED_IDLE, so any other thread of the node that wakes takes its CPU at once
    // and it runs on what they leave. Under a load that fills the cores it falls behind (the
    // lag shows it) instead of taking CPU from the acks; it catches up when they leave room.
    // (At nice 10 a woken ack path thread could still wait for this one's time slice to end;
    // docs/benchmarks.md.) Its RocksDB writes are done by the journal's writer thread
    // (journal::write_reads), so it never holds up a group commit while it is preempted.
    if (cfg.idle_priority) {
      sched_param param{};
      if (sched_setscheduler(static_cast<pid_t>(gettid()), SCHED_IDLE, &param) != 0)
        log(log_level::warn, "projector_priority_not_set", {{"policy", "SCHED_IDLE"}});
    }
    auto backoff = cfg.retry;
    auto fail = [&] {
      std::unique_lock lock(mtx);
      cv.wait_for(lock, backoff, [&] { return stopping; });
      backoff = std::min(backoff * 2, cfg.max_retry);
    };
    while (true) {
      {
        std::unique_lock lock(mtx);
        cv.wait(lock, [&] {
          return stopping || !queue.empty() || !walks.empty() || rebuild_asked || !forgets.empty();
        });
        if (stopping) return;
        rebuild_asked = false;
      }
      run_forgets();
      if (!start_rebuilds()) {
        {
          std::lock_guard lock(mtx);
          rebuild_asked = true;
        }
        fail();
        continue;
      }
      // One page of the oldest walk, then one batch: a long walk doesn't hold up live rooms.
      std::optional<walk> w;
      {
        std::lock_guard lock(mtx);
        if (!walks.empty()) w = walks.front();
      }
      if (w) {
        if (!walk_step(*w)) {
          fail();
          continue;
        }
        std::lock_guard lock(mtx);
        // A rebuild may have taken projections out of its mask meanwhile.
        for (std::size_t p = 0; p < max_projections; ++p)
          w->mask[p] = w->mask[p] && walks.front().mask[p];
        if (w->after)
          walks.front() = *w;
        else
          walks.pop_front();
      }
      idle_cv.notify_all();
      if (!apply_batch()) {
        fail();
        continue;
      }
      backoff = cfg.retry;
    }
  }

  storage::journal& journal;
  std::vector<projection*> projections;
  projector_config cfg;
  notice_sink sink;

  mutable std::mutex mtx;
  std::condition_variable cv;
  mutable std::condition_variable idle_cv;
  std::unordered_map<std::string, entry> dirty_map;
  std::deque<std::string> queue;  // dirty rooms not in flight, oldest note first
  std::deque<walk> walks;
  std::deque<std::pair<room_id, std::function<void(storage::status)>>> forgets;
  std::array<phase_state, max_projections> phase;
  // Per projection, when each room with unapplied events was first noted: the oldest is the
  // lag, read in O(1) by scrapes and queries without walking the dirty map.
  std::array<std::multiset<clock::time_point>, max_projections> unapplied_since;
  bool rebuild_asked = false;
  bool delivering = false;  // the thread is handing a batch's notices to the sink
  bool stopping = false;
  bool stopped_for_good = false;
  std::thread thread;
};

projector::projector(storage::journal& journal, std::vector<projection*> projections,
                     projector_config cfg, notice_sink notices)
    : impl_(std::make_shared<impl>(journal, std::move(projections), cfg, std::move(notices))) {
  // The journal may call this until it stops, after the projector is gone: it holds the impl.
  journal.on_appended(
      [weak = std::weak_ptr<impl>(impl_)](const std::vector<storage::journal::appended>& rooms) {
        if (auto i = weak.lock()) i->noted(rooms);
      });
}

projector::~projector() { stop(); }

void projector::start() {
  std::lock_guard lock(impl_->mtx);
  if (impl_->thread.joinable() || impl_->stopped_for_good) return;
  impl::walk w;
  auto estimate = impl_->journal.disk().rooms;
  for (std::size_t p = 0; p < impl_->projections.size(); ++p) {
    w.mask[p] = true;
    impl_->phase[p].walking = true;
    impl_->phase[p].estimate = estimate;
  }
  w.counted = true;
  impl_->walks.push_back(w);
  impl_->thread = named_thread("kaiwa-projector", [i = impl_.get()] { i->run(); });
}

void projector::stop() {
  {
    std::lock_guard lock(impl_->mtx);
    impl_->stopping = true;
    impl_->stopped_for_good = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Erasures it did not get to: their rooms keep the deletion mark (done again at start).
  decltype(impl_->forgets) left;
  {
    std::lock_guard lock(impl_->mtx);
    left.swap(impl_->forgets);
  }
  for (auto& [room, done] : left) done(storage::error{storage::errc::stopped, "stopped"});
}

void projector::catch_up_shard(shard_t shard) {
  {
    std::lock_guard lock(impl_->mtx);
    // The shard's offsets came with its data: what the map knew of its rooms is stale.
    auto shards = impl_->journal.shards();
    for (auto& [room, e] : impl_->dirty_map)
      if (shard_of(room, shards) == shard && !e.in_flight)
        impl_->update(e, [](impl::entry& x) { x.known = {}; });
    impl::walk w;
    w.shard = shard;
    for (std::size_t p = 0; p < impl_->projections.size(); ++p) w.mask[p] = true;
    impl_->walks.push_back(w);
  }
  impl_->cv.notify_one();
}

void projector::forget_room(const room_id& room, std::function<void(storage::status)> done) {
  {
    std::lock_guard lock(impl_->mtx);
    if (!impl_->stopping) {
      impl_->forgets.emplace_back(room, std::move(done));
      impl_->cv.notify_one();
      return;
    }
  }
  done(storage::error{storage::errc::stopped, "the projector is stopped"});
}

std::optional<std::string> projector::rebuild(std::string_view name) {
  auto& ps = impl_->projections;
  auto it = std::find_if(ps.begin(), ps.end(), [&](auto* p) { return p->name() == name; });
  if (it == ps.end()) return "no projection '" + std::string(name) + "'";
  auto p = static_cast<std::size_t>(it - ps.begin());
  auto estimate = impl_->journal.disk().rooms;
  {
    std::lock_guard lock(impl_->mtx);
    auto& ph = impl_->phase[p];
    if (ph.state == projection_state::rebuilding)
      return "projection '" + std::string(name) + "' is being rebuilt already";
    ph.state = projection_state::rebuilding;
    ph.drop_pending = true;
    ph.walking = true;
    ph.rooms_total = ph.rooms_done = ph.events_total = ph.events_done = 0;
    ph.estimate = estimate;
    impl_->rebuild_asked = true;
  }
  impl_->cv.notify_one();
  return std::nullopt;
}

std::optional<projection_state> projector::state(std::string_view name) const {
  auto& ps = impl_->projections;
  auto it = std::find_if(ps.begin(), ps.end(), [&](auto* p) { return p->name() == name; });
  if (it == ps.end()) return std::nullopt;
  std::lock_guard lock(impl_->mtx);
  return impl_->phase[static_cast<std::size_t>(it - ps.begin())].state;
}

std::vector<projection_stats> projector::stats() const {
  std::vector<projection_stats> out;
  auto now = clock::now();
  std::lock_guard lock(impl_->mtx);
  for (std::size_t p = 0; p < impl_->projections.size(); ++p) {
    auto& ph = impl_->phase[p];
    projection_stats s;
    s.name = std::string(impl_->projections[p]->name());
    s.state = ph.state;
    s.rooms_done = ph.rooms_done;
    s.rooms_total = ph.rooms_total;
    s.events_done = ph.events_done;
    s.events_total = ph.events_total;
    if (s.state == projection_state::live) {
      s.progress = 1;
    } else {
      // Events done of the rooms walked so far, scaled by how much of the walk is done
      // (against RocksDB's estimate of the rooms while it runs).
      s.progress = s.events_total  ? static_cast<double>(s.events_done) / s.events_total
                   : s.rooms_total ? static_cast<double>(s.rooms_done) / s.rooms_total
                                   : 0.0;
      if (ph.walking)
        s.progress *= ph.estimate > s.rooms_total ? static_cast<double>(s.rooms_total) / ph.estimate
                                                  : (ph.estimate ? 1.0 : 0.0);
    }
    s.pending = ph.pending;
    auto& since = impl_->unapplied_since[p];
    s.lag_seconds =
        since.empty() ? 0.0 : std::chrono::duration<double>(now - *since.begin()).count();
    s.applied = ph.applied.load(std::memory_order_relaxed);
    out.push_back(std::move(s));
  }
  return out;
}

bool projector::wait_idle(std::chrono::milliseconds limit) const {
  std::unique_lock lock(impl_->mtx);
  return impl_->idle_cv.wait_for(lock, limit, [&] { return impl_->idle(); });
}

}  // namespace kaiwa::read
