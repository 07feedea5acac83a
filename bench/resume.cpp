// resume: clients subscribed to rooms while a publisher writes; all of them disconnect at once,
// stay away, and reconnect at once (a reconnect storm), each joining with `since` = the last
// seq it saw. Checks that every client continues with no gap and no duplicate (paging history
// when the join reports gap_until) and measures how long the storm takes to catch up; then stays
// live for --duration after the storm, still checking every event.

#include <fmt/format.h>

#include <boost/asio/steady_timer.hpp>

#include "bench/run.hpp"

namespace kaiwa::bench {

namespace {

class resume : public connection_events {
 public:
  resume(runner& r, const resume_config& c) : r_(r), c_(c) {}

  int run() {
    auto& o = r_.opts();
    clients_.resize(c_.clients);
    caught_up_ = std::vector<std::atomic<bool>>(c_.clients);
    max_acked_ = std::vector<std::atomic<std::int64_t>>(c_.rooms);
    for (std::size_t i = 0; i < c_.clients; ++i)
      r_.connect(i, fmt::format("r{}", i), *this, clients_[i].conn);
    if (!r_.wait([&] { return joined_ == c_.clients || failed_; }, std::chrono::seconds(120),
                 [&] { return fmt::format("joined {}/{}", joined_.load(), c_.clients); }) ||
        failed_)
      return r_.give_up("clients could not join");
    r_.connect(c_.clients, "publisher", *this, publisher_);
    r_.wait([] { return false; }, std::chrono::duration<double>(o.warmup_s),
            [&] { return std::string("live"); });

    // The storm: everyone drops at once, stays away, comes back at once.
    for (std::size_t i = 0; i < c_.clients; ++i)
      r_.post(i % r_.threads(), [this, i] {
        clients_[i].away = true;
        clients_[i].conn->close();
      });
    r_.wait([] { return false; }, std::chrono::duration<double>(c_.away_s),
            [&] { return std::string("clients away"); });
    storm_at_ns_ = now_ns();
    for (std::size_t r = 0; r < c_.rooms; ++r) target_.push_back(max_acked_[r].load());
    joined_ = 0;
    // On each client's own thread, where its events read `away` and `conn`.
    for (std::size_t i = 0; i < c_.clients; ++i)
      r_.post(i % r_.threads(), [this, i] {
        clients_[i].away = false;
        r_.connect(i, fmt::format("r{}", i), *this, clients_[i].conn);
      });
    bool done = r_.wait([&] { return caught_.load() == c_.clients; }, std::chrono::seconds(60),
                        [&] { return fmt::format("caught up {}/{}", caught_.load(), c_.clients); });
    // Then live until `duration` after the storm, every event still checked.
    auto live_until = storm_at_ns_ + static_cast<std::int64_t>(o.duration_s * 1e9);
    if (done)
      r_.wait(
          [&] { return now_ns() >= live_until; }, std::chrono::duration<double>(o.duration_s + 1),
          [&] { return fmt::format("live after the storm, {} events checked", checked_.load()); });
    stop_ = true;
    auto cpu = r_.cpu_percent();
    auto st = r_.finish();
    report rep("resume");
    rep.param("clients", std::to_string(c_.clients))
        .param("rooms", std::to_string(c_.rooms))
        .param("rate", fmt::format("{:.0f}/s", c_.rate))
        .param("away_s", fmt::format("{}", c_.away_s));
    rep.figure("reconnected", st.reconnects)
        .figure("caught up", caught_.load())
        .figure("events replayed", replayed_.load())
        .figure("events checked", checked_.load())
        .figure("gaps paged with history", paged_.load())
        .figure("order violations", st.violations)
        .figure("bench cpu %", cpu)
        .latency("catch-up after reconnect", st.request_us)
        .errors(st.errors)
        .print(o.json);
    return done && st.violations == 0 && st.errors.empty() ? 0 : 1;
  }

  void on_ready(connection& c) override {
    if (c.index() == c_.clients) return publish(c);
    auto& cl = clients_[c.index()];
    if (cl.checker.last() < 0) {
      c.send(fmt::format(R"({{"op":"join","id":"j","room":"resume-{}"}})", room_of(c.index())));
    } else {
      r_.thread_stats(c.index() % r_.threads()).reconnects += 1;
      c.send(fmt::format(R"({{"op":"join","id":"j","room":"resume-{}","since":{}}})",
                         room_of(c.index()), cl.checker.last()));
    }
  }

  void on_message(connection& c, std::string_view json) override {
    auto t = c.index() % r_.threads();
    if (c.index() == c_.clients) {  // the publisher's acks
      if (json.starts_with(R"({"op":"ack")")) {
        auto room = static_cast<std::size_t>(json_int(json, R"("id":)"));
        auto seq = json_int(json, R"("seq":)");
        auto cur = max_acked_[room].load();
        while (seq > cur && !max_acked_[room].compare_exchange_weak(cur, seq)) {
        }
      }
      return;
    }
    auto& cl = clients_[c.index()];
    if (cl.away || &c != cl.conn.get()) return;
    std::string problem;
    if (json.starts_with(R"({"op":"joined")")) {
      if (cl.checker.last() < 0) {
        cl.checker.reset_to(json_int(json, R"("head":)"));
        joined_ += 1;
      } else if (auto gap_until = json_int(json, R"("gap_until":)"); gap_until > 0) {
        // Events last+1 .. gap_until-1 come from history; the backfill continues at gap_until.
        paged_ += 1;
        cl.gap_from = cl.checker.last() + 1;
        cl.gap_to = gap_until - 1;
        cl.checker.reset_to(gap_until - 1);
        c.send(
            fmt::format(R"({{"op":"history","id":"h","room":"resume-{}","after":{},"limit":200}})",
                        room_of(c.index()), cl.gap_from - 1));
      }
      return;
    }
    if (json.starts_with(R"({"op":"history")")) {
      for (auto at = json.find(R"({"op":"event")");
           at != std::string_view::npos && cl.gap_from <= cl.gap_to;
           at = json.find(R"({"op":"event")", at + 1)) {
        auto seq = json_int(json.substr(at), R"("seq":)");
        if (seq != cl.gap_from++)
          r_.violation(t, fmt::format("{}: history seq {} out of place", c.user(), seq));
      }
      if (cl.gap_from <= cl.gap_to)
        c.send(
            fmt::format(R"({{"op":"history","id":"h","room":"resume-{}","after":{},"limit":200}})",
                        room_of(c.index()), cl.gap_from - 1));
      return;
    }
    if (!json.starts_with(R"({"op":"event")")) return;
    auto seq = json_int(json, R"("seq":)");
    checked_ += 1;
    if (!cl.checker.observe(seq, problem))
      r_.violation(t, fmt::format("{}: {}", c.user(), problem));
    if (storm_at_ns_ > 0 && !caught_up_[c.index()]) {
      replayed_ += 1;
      if (seq >= target_[room_of(c.index())] && cl.gap_from > cl.gap_to) {
        caught_up_[c.index()] = true;
        caught_ += 1;
        r_.thread_stats(t).request_us.record(static_cast<std::uint64_t>(now_ns() - storm_at_ns_) /
                                             1000);
      }
    }
  }

  void on_closed(connection& c, std::uint16_t code, std::string_view why) override {
    if (c.index() < c_.clients && clients_[c.index()].away) return;  // we closed it
    r_.closed(c.index() % r_.threads(), code);
    // One that never connected fails the run at once (as in chat), said once.
    if (!c.ready() && !failed_.exchange(true))
      fmt::print(stderr, "bench: {} could not connect: {}\n", c.user(), why);
  }

 private:
  struct client {
    std::shared_ptr<connection> conn;
    seq_checker checker;
    bool away = false;
    std::int64_t gap_from = 1, gap_to = 0;
  };

  std::size_t room_of(std::size_t i) const { return i % c_.rooms; }

  void publish(connection& c) {
    if (stop_) return;
    // A burst every 10 ms at the configured rate, round-robin over the rooms.
    auto per_tick = std::max<std::size_t>(1, static_cast<std::size_t>(c_.rate / 100));
    for (std::size_t k = 0; k < per_tick; ++k, ++next_room_)
      c.send(fmt::format(R"({{"op":"send","id":{},"room":"resume-{}","text":"resume"}})",
                         next_room_ % c_.rooms, next_room_ % c_.rooms));
    if (!timer_)
      timer_ = std::make_unique<boost::asio::steady_timer>(r_.ioc(c.index() % r_.threads()));
    timer_->expires_after(std::chrono::milliseconds(10));
    timer_->async_wait([this, &c](boost::system::error_code ec) {
      if (!ec) publish(c);
    });
  }

  runner& r_;
  resume_config c_;
  std::vector<client> clients_;
  std::vector<std::atomic<bool>> caught_up_;
  std::vector<std::atomic<std::int64_t>> max_acked_;
  std::vector<std::int64_t> target_;
  std::shared_ptr<connection> publisher_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
  std::size_t next_room_ = 0;
  std::atomic<std::size_t> joined_{0}, caught_{0}, paged_{0};
  std::atomic<bool> failed_{false};
  std::atomic<std::uint64_t> replayed_{0}, checked_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> storm_at_ns_{0};
};

}  // namespace

int run_resume(const run_options& o, const resume_config& c) {
  raise_fd_limit();
  runner r(o);
  resume s(r, c);
  return s.run();
}

}  // namespace kaiwa::bench
