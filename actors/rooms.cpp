#include "actors/rooms.hpp"

#include <atomic>
#include <thread>

#include "actors/detail/messages.hpp"
#include "core/replies.hpp"
#include "storage/journal.hpp"

namespace kaiwa {

struct rooms::impl {
  impl(rooms_config c, storage::journal& j) : env{j, std::move(c)} {
    // CAF's own default is at least 4 threads; on a small machine they only contend.
    auto threads =
        env.cfg.threads ? env.cfg.threads : std::max(1u, std::thread::hardware_concurrency());
    sys_cfg.set("scheduler.max-threads", threads);
    // Idle workers poll for a while before they sleep; CAF's defaults (100 busy polls, then
    // 500 polls with 50 us sleeps) burn a core's worth of wake-ups that the I/O threads need.
    sys_cfg.set("work-stealing.aggressive-poll-attempts", std::size_t{10});
    sys_cfg.set("work-stealing.moderate-poll-attempts", std::size_t{10});
  }

  detail::room_env env;
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::vector<caf::actor> registries;
  std::atomic<bool> running{false};
};

rooms::rooms(rooms_config cfg, storage::journal& journal)
    : impl_(std::make_unique<impl>(std::move(cfg), journal)) {}

rooms::~rooms() { stop(); }

void rooms::start() {
  impl_->sys = std::make_unique<caf::actor_system>(impl_->sys_cfg);
  for (std::size_t i = 0; i < std::max<std::size_t>(1, impl_->env.cfg.registries); ++i)
    impl_->registries.push_back(detail::spawn_registry(*impl_->sys, impl_->env));
  impl_->running = true;
}

void rooms::dispatch(command c) {
  if (!impl_->running) {
    if (c.op != room_op::disconnect)
      c.link->send(error_frame(c.id, errc::unavailable, "the node is shutting down"));
    return;
  }
  impl_->env.command_queued();
  auto& regs = impl_->registries;
  auto& target = regs[std::hash<room_id>{}(c.room) % regs.size()];
  caf::anon_send(target, std::move(c));
}

void rooms::stop() {
  if (!impl_->running.exchange(false)) return;
  for (auto& r : impl_->registries) caf::anon_send(r, detail::stop_atom::value);
  impl_->registries.clear();
  impl_->sys->await_all_actors_done();
  impl_->sys.reset();
}

rooms_stats rooms::stats() const {
  auto& e = impl_->env;
  return {e.active.load(),
          e.activated.load(),
          e.passivated.load(),
          e.events_appended.load(),
          e.deliveries.load(),
          static_cast<std::uint64_t>(std::max<std::int64_t>(0, e.queued.load())),
          static_cast<std::uint64_t>(e.queued_high_water.load())};
}

}  // namespace kaiwa
