#include "read/read_side.hpp"

#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/log.hpp"
#include "core/process.hpp"
#include "read/room_list.hpp"
#include "read/search_index.hpp"
#include "read/text.hpp"
#include "storage/journal.hpp"

namespace kaiwa::read {

// -- the read side --------------------------------------------------------------------------

struct read_side::impl {
  impl(storage::journal& j, read_side_config c, read_side_hooks h)
      : journal(j),
        cfg(std::move(c)),
        hooks(std::move(h)),
        rooms(j),
        search(j, rooms, search_config{cfg.search_max_steps}) {
    if (cfg.projections)
      projector = std::make_unique<read::projector>(
          j, std::vector<projection*>{&rooms, &search}, cfg.projector,
          [this](std::vector<notice> ns) { deliver(ns); });
  }

  /// The projector's notices, after their batch committed: this node's sessions, then the
  /// other members'.
  void deliver(const std::vector<notice>& ns) {
    for (auto& n : ns) {
      notices.fetch_add(1, std::memory_order_relaxed);
      if (hooks.push_local) hooks.push_local(n);
      if (hooks.broadcast) hooks.broadcast(n);
    }
  }

  std::vector<shard_t> owned() const {
    if (hooks.owned_shards) return hooks.owned_shards();
    std::vector<shard_t> all(journal.shards());
    for (std::uint32_t s = 0; s < all.size(); ++s) all[s] = static_cast<shard_t>(s);
    return all;
  }

  /// Why projection `name` can't answer now, or nullopt when it is live.
  std::optional<query_error> unavailable(std::string_view name) const {
    if (!projector)
      return query_error{errc::unavailable, "the read models are off on this node (--projections)"};
    for (auto& s : projector->stats()) {
      if (s.name != name || s.state == projection_state::live) continue;
      return query_error{
          errc::unavailable,
          fmt::format("the {} projection is {} ({:.0f}%): retry in a moment", s.name,
                      s.state == projection_state::rebuilding ? "rebuilding" : "catching up",
                      s.progress * 100)};
    }
    return std::nullopt;
  }

  /// This node's page of `r`. Query thread.
  storage::result<page> local(const query_request& r, std::optional<query_error>& refused) const {
    // Search checks access through the room list, so it needs both projections live.
    refused = unavailable("rooms");
    if (!refused && r.kind == query_kind::search) refused = unavailable("search");
    if (refused) return page{};
    auto shards = owned();
    auto p = [&]() -> storage::result<page> {
      switch (r.kind) {
        case query_kind::rooms:
          return rooms.rooms(r.user, shards, r.before, r.limit);
        case query_kind::directory:
          return rooms.directory(r.q, shards, r.before, r.limit);
        case query_kind::search:
          return search.search(r.user, parse_query(r.q), r.room, shards, r.before, r.limit);
      }
      return page{};
    }();
    if (p)
      for (auto s : shards) cover(*p, s);
    return p;
  }

  // -- the query threads --------------------------------------------------------------------

  /// Queues `job`; false when the queue is full or the read side stopped.
  bool submit(std::function<void()> job) {
    {
      std::lock_guard lock(mtx);
      if (stopping || jobs.size() >= cfg.query_queue) return false;
      jobs.push_back(std::move(job));
    }
    cv.notify_one();
    return true;
  }

  void work() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mtx);
        cv.wait(lock, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }

  void run_query(const query_request& r, const reply_fn& done) {
    std::optional<query_error> refused;
    auto mine = local(r, refused);
    if (refused) return done({std::move(refused), {}, false});
    if (!mine) {
      log(log_level::error, "read_query_failed", {{"error", mine.err().message}});
      return done({query_error{errc::internal, "reading the read models failed"}, {}, false});
    }
    if (!hooks.ask_members) return done({std::nullopt, std::move(*mine), false});
    hooks.ask_members(encode_query(r), cfg.gather_timeout,
                      [mine = std::move(*mine), limit = r.limit, shards = journal.shards(), done](
                          std::vector<std::string> pages, bool partial) mutable {
                        std::vector<page> parts;
                        parts.reserve(pages.size() + 1);
                        parts.push_back(std::move(mine));
                        for (auto& bytes : pages) {
                          auto p = decode_page(bytes);
                          if (!p) {
                            partial = true;  // a member answered junk: as if it hadn't answered
                            continue;
                          }
                          parts.push_back(std::move(*p));
                        }
                        auto merged = merge(std::move(parts), limit);
                        // Members that answered may still leave a shard unread: one between
                        // owners during a handover, or one whose owner is not a member yet.
                        partial = partial || !covers_all(merged, shards);
                        done({std::nullopt, std::move(merged), partial});
                      });
  }

  storage::journal& journal;
  read_side_config cfg;
  read_side_hooks hooks;
  room_list rooms;
  search_index search;
  std::unique_ptr<read::projector> projector;

  std::mutex mtx;
  std::condition_variable cv;
  std::deque<std::function<void()>> jobs;  // guarded by mtx
  bool stopping = false;                   // guarded by mtx
  std::vector<std::thread> threads;

  std::atomic<std::uint64_t> queries{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> member_queries{0};
  std::atomic<std::uint64_t> partial{0};
  std::atomic<std::uint64_t> notices{0};
};

read_side::read_side(storage::journal& journal, read_side_config cfg, read_side_hooks hooks)
    : impl_(std::make_unique<impl>(journal, std::move(cfg), std::move(hooks))) {}

read_side::~read_side() { stop(); }

void read_side::start() {
  // Before the projector: a search index in another layout is dropped, and its catch-up then
  // rebuilds it.
  if (auto s = impl_->search.check_format(); !s.ok())
    throw std::runtime_error("search index: " + s.err().message);
  if (impl_->projector) impl_->projector->start();
  for (std::size_t i = 0; i < std::max<std::size_t>(1, impl_->cfg.query_threads); ++i)
    impl_->threads.push_back(named_thread("kaiwa-query", [i = impl_.get()] { i->work(); }));
}

void read_side::stop() {
  {
    std::lock_guard lock(impl_->mtx);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
  if (impl_->projector) impl_->projector->stop();
}

void read_side::query(query_request r, reply_fn done) {
  impl_->queries.fetch_add(1, std::memory_order_relaxed);
  auto counted = [i = impl_.get(), done = std::move(done)](query_reply reply) {
    if (reply.partial) i->partial.fetch_add(1, std::memory_order_relaxed);
    done(std::move(reply));
  };
  auto job = [i = impl_.get(), r = std::move(r), counted] { i->run_query(r, counted); };
  if (impl_->submit(std::move(job))) return;
  impl_->refused.fetch_add(1, std::memory_order_relaxed);
  counted({query_error{errc::rate_limited, "this node has too many queries waiting: retry"},
           {},
           false});
}

void read_side::answer_member(std::string_view request, std::function<void(std::string)> reply) {
  impl_->member_queries.fetch_add(1, std::memory_order_relaxed);
  auto r = decode_query(request);
  if (!r) {
    log(log_level::warn, "read_member_query_bad", {{"bytes", std::uint64_t{request.size()}}});
    return reply({});
  }
  auto job = [i = impl_.get(), r = std::move(*r), reply] {
    std::optional<query_error> refused;
    auto mine = i->local(r, refused);
    if (refused || !mine) return reply({});
    reply(encode_page(*mine));
  };
  if (!impl_->submit(job)) {
    impl_->refused.fetch_add(1, std::memory_order_relaxed);
    reply({});
  }
}

void read_side::deliver_remote(const notice& n) {
  if (impl_->hooks.push_local) impl_->hooks.push_local(n);
}

void read_side::forget_room(const room_id& room, std::function<void(bool ok)> done) {
  if (impl_->projector)
    return impl_->projector->forget_room(
        room, [done = std::move(done)](storage::status st) { done(st.ok()); });
  auto st = erase_room(impl_->journal, {&impl_->rooms, &impl_->search}, room,
                       impl_->cfg.projector.batch_ops);
  if (!st.ok())
    log(log_level::error, "read_forget_failed",
        {{"room", room.str()}, {"error", st.err().message}});
  done(st.ok());
}

const room_list& read_side::room_list_model() const { return impl_->rooms; }

void read_side::shard_ingested(shard_t shard) {
  if (impl_->projector) impl_->projector->catch_up_shard(shard);
}

std::optional<std::string> read_side::rebuild(std::string_view name) {
  if (!impl_->projector) return std::string("the read models are off on this node (--projections)");
  return impl_->projector->rebuild(name);
}

std::vector<projection_stats> read_side::stats() const {
  return impl_->projector ? impl_->projector->stats() : std::vector<projection_stats>{};
}

bool read_side::projections_enabled() const noexcept { return impl_->projector != nullptr; }

void read_side::render_metrics(std::string& out) const {
  auto s = stats();
  auto family = [&](const char* name, const char* type, const char* help, auto value) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
    for (auto& p : s) out += fmt::format("{}{{projection=\"{}\"}} {}\n", name, p.name, value(p));
  };
  family("kaiwa_projection_lag_seconds", "gauge",
         "Age of the oldest event noted and not yet applied by the projection.",
         [](const projection_stats& p) { return p.lag_seconds; });
  family("kaiwa_projection_pending_events", "gauge",
         "Events appended and not yet applied by the projection.",
         [](const projection_stats& p) { return p.pending; });
  family("kaiwa_projection_events_applied_total", "counter",
         "Events the projection applied since the node started.",
         [](const projection_stats& p) { return p.applied; });
  family("kaiwa_projection_live", "gauge",
         "1 when the projection answers queries; 0 while it catches up or is rebuilt.",
         [](const projection_stats& p) { return p.state == projection_state::live ? 1 : 0; });
  auto counter = [&](const char* name, const char* help, const std::atomic<std::uint64_t>& v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} counter\n{} {}\n", name, help, name, name,
                       v.load(std::memory_order_relaxed));
  };
  counter("kaiwa_read_queries_total", "rooms, directory and search queries of clients.",
          impl_->queries);
  counter("kaiwa_read_queries_refused_total",
          "Queries refused because --query-queue queries were waiting (clients' and members').",
          impl_->refused);
  counter("kaiwa_read_member_queries_total", "Queries of other members answered here.",
          impl_->member_queries);
  counter("kaiwa_read_partial_total",
          "Replies that said partial: a member owning shards didn't answer in time.",
          impl_->partial);
  counter("kaiwa_read_notices_total", "Notices (invited) raised by projections on this node.",
          impl_->notices);
}

}  // namespace kaiwa::read
