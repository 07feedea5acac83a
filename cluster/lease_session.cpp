#include "cluster/lease_session.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cluster/etcd_client.hpp"
#include "core/log.hpp"
#include "core/process.hpp"

namespace kaiwa::cluster {

namespace {

/// After a failed renewal, the next try comes this soon (still bounded by valid_until).
constexpr auto retry_delay = std::chrono::milliseconds(100);

}  // namespace

struct lease_session::state {
  etcd_client& client;
  std::int64_t id = 0;
  std::chrono::seconds ttl{};
  std::chrono::milliseconds period{};
  std::function<void()> lost;

  // valid_until as steady-clock ticks; read from any thread, written by the renewal thread.
  std::atomic<steady::rep> until{0};
  std::mutex mtx;  // with cv: the wait between renewals, cut short by close()
  std::condition_variable cv;
  bool closing = false;
  std::thread thread;

  state(etcd_client& c, std::int64_t lease, std::chrono::seconds granted,
        std::chrono::milliseconds every, std::function<void()> on_lost)
      : client(c), id(lease), ttl(granted), period(every), lost(std::move(on_lost)) {}

  void set_until(steady::time_point t) { until.store(t.time_since_epoch().count()); }
  steady::time_point get_until() const {
    return steady::time_point(steady::duration(until.load()));
  }

  /// Waits `d` or until close(); true when closing.
  bool wait(steady::duration d) {
    std::unique_lock lock(mtx);
    return cv.wait_for(lock, d, [&] { return closing; });
  }

  void run() {
    auto next = steady::now() + period;
    bool failing = false;  // the last renewal failed: the first failure of a run is logged
    for (;;) {
      if (wait(next - steady::now())) return;
      auto sent = steady::now();
      if (sent >= get_until()) return end("not renewed within its TTL");
      auto r = client.lease_keepalive(id);
      if (r.ok() && *r > 0) {
        // What etcd granted counts from when it processed this renewal, after `sent`.
        set_until(sent + std::chrono::seconds(*r));
        next = sent + period;
        if (failing) log(log_level::info, "lease_renewed", {{"lease", std::to_string(id)}});
        failing = false;
      } else if (r.ok()) {
        return end("etcd says it expired");
      } else {
        if (!failing)
          log(log_level::warn, "lease_renewal_failed",
              {{"lease", std::to_string(id)}, {"error", r.err().message}});
        failing = true;
        next = steady::now() + retry_delay;
      }
    }
  }

  void end(const char* why) {
    // Past the deadline already, or now (etcd says it's gone): valid_until keeps the instant the
    // node stopped holding the lease.
    set_until(std::min(get_until(), steady::now()));
    log(log_level::error, "lease_lost", {{"lease", std::to_string(id)}, {"why", why}});
    if (lost) lost();
  }
};

result<std::unique_ptr<lease_session>> lease_session::open(etcd_client& client, lease_config cfg,
                                                           std::function<void()> lost) {
  if (cfg.ttl.count() < 1 || cfg.renewals < 2)
    return error{errc::invalid, "a lease needs a TTL of 1 s or more and 2 renewals a TTL or more"};
  auto asked = steady::now();
  auto granted = client.lease_grant(cfg.ttl.count());
  if (!granted.ok()) return granted.err();
  auto ttl = std::chrono::seconds(granted->ttl);
  auto s = std::make_shared<state>(
      client, granted->id, ttl,
      std::chrono::duration_cast<std::chrono::milliseconds>(ttl) / cfg.renewals, std::move(lost));
  s->set_until(asked + ttl);
  s->thread = named_thread("kaiwa-lease", [s] { s->run(); });
  return std::unique_ptr<lease_session>(new lease_session(std::move(s)));
}

lease_session::lease_session(std::shared_ptr<state> s) : state_(std::move(s)) {}

lease_session::~lease_session() { close(); }

void lease_session::close() {
  {
    std::lock_guard lock(state_->mtx);
    if (state_->closing) return;
    state_->closing = true;
  }
  state_->cv.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
  bool held = valid();
  state_->set_until(std::min(state_->get_until(), steady::now()));
  if (held) (void)state_->client.lease_revoke(state_->id);
}

std::int64_t lease_session::id() const noexcept { return state_->id; }

std::chrono::seconds lease_session::granted_ttl() const noexcept { return state_->ttl; }

lease_session::steady::time_point lease_session::valid_until() const noexcept {
  return state_->get_until();
}

}  // namespace kaiwa::cluster
