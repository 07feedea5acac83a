// conns: N connections, each joined to a room (per_room to a room), held idle; then one
// broadcast per room must reach every connection. Reports the server's memory per connection
// from its admin status (RSS growth over the connections it holds).

#include <fmt/format.h>

#include "bench/run.hpp"

namespace kaiwa::bench {

namespace {

class conns : public connection_events {
 public:
  conns(runner& r, const conns_config& c) : r_(r), c_(c) {}

  int run() {
    auto& o = r_.opts();
    auto bench_fds = raise_fd_limit();
    auto before = fetch_status(o.admin);
    if (!before) {
      fmt::print(stderr, "bench: can't read the node's status at {}:{} (use --admin)\n",
                 o.admin.host, o.admin.port);
      return 1;
    }
    if (c_.connections + 16 > bench_fds)
      fmt::print(stderr, "bench: this process may open {} files; {} connections will not fit\n",
                 bench_fds, c_.connections);
    if (c_.connections + before->open_fds + 16 > before->fd_limit)
      fmt::print(stderr,
                 "bench: the node may open {} files and has {} open; {} connections will not fit\n",
                 before->fd_limit, before->open_fds, c_.connections);
    rooms_ = (c_.connections + c_.per_room - 1) / c_.per_room;
    members_.resize(c_.connections + 1);
    got_ = std::vector<std::atomic<bool>>(c_.connections);
    auto started = clock_type::now();
    for (std::size_t i = 0; i < c_.connections; ++i)
      members_[i] = r_.connect(i, fmt::format("c{}", i), *this);
    bool all =
        r_.wait([&] { return joined_ + failed_ >= c_.connections; }, std::chrono::seconds(300),
                [&] {
                  return fmt::format("joined {}/{} failed {}", joined_.load(), c_.connections,
                                     failed_.load());
                });
    auto connect_s = std::chrono::duration<double>(clock_type::now() - started).count();
    auto held = fetch_status(o.admin);
    if (!all || failed_ > 0) {
      fmt::print(stderr, "bench: only {} of {} connections joined", joined_.load(), c_.connections);
      if (held && held->open_fds + 16 >= held->fd_limit)
        fmt::print(stderr, ": the node ran out of file descriptors ({} of {})", held->open_fds,
                   held->fd_limit);
      fmt::print(stderr, "\n");
    }
    r_.wait([] { return false; }, std::chrono::duration<double>(o.duration_s),
            [&] { return fmt::format("holding {} connections", joined_.load()); });

    // One broadcast per room, from one more connection.
    broadcast_at_ = now_ns();
    members_.back() = r_.connect(c_.connections, "broadcaster", *this);
    bool reached = r_.wait(
        [&] { return received_ >= joined_; }, std::chrono::seconds(30),
        [&] { return fmt::format("broadcast reached {}/{}", received_.load(), joined_.load()); });
    auto cpu = r_.cpu_percent();
    auto st = r_.finish();
    double per_conn = held && joined_ > 0
                          ? (static_cast<double>(held->rss_bytes) - before->rss_bytes) / joined_
                          : 0;
    report rep("conns");
    rep.param("connections", std::to_string(c_.connections))
        .param("per_room", std::to_string(c_.per_room));
    rep.figure("connections held", joined_.load())
        .figure("connect+join time", connect_s, "s")
        .figure("server rss before", before->rss_bytes / 1048576.0, "MiB")
        .figure("server rss holding", held ? held->rss_bytes / 1048576.0 : 0, "MiB")
        .figure("server bytes/connection", per_conn, "B")
        .figure("server open fds", held ? held->open_fds : 0)
        .figure("server fd limit", held ? held->fd_limit : 0)
        .figure("bench fd limit", bench_fds)
        .figure("broadcast reached", received_.load())
        .figure("order violations", st.violations)
        .figure("bench cpu %", cpu)
        .latency("broadcast delivery", st.delivery_us)
        .errors(st.errors)
        .print(o.json);
    return all && reached && failed_ == 0 && st.violations == 0 && st.delivery_us.max() <= 1'000'000
               ? 0
               : 1;
  }

  void on_ready(connection& c) override {
    if (c.index() == c_.connections) {  // the broadcaster
      for (std::size_t r = 0; r < rooms_; ++r)
        c.send(fmt::format(R"({{"op":"send","id":{},"room":"conns-{}","text":"{}:broadcast"}})", r,
                           r, now_ns()));
      return;
    }
    c.send(fmt::format(R"({{"op":"join","id":"j","room":"conns-{}"}})", c.index() / c_.per_room));
  }

  void on_message(connection& c, std::string_view json) override {
    auto t = c.index() % r_.threads();
    if (json.starts_with(R"({"op":"joined")")) {
      joined_ += 1;
      return;
    }
    if (json.starts_with(R"({"op":"event")") && c.index() < c_.connections) {
      if (json.find(":broadcast") == std::string_view::npos) return;  // the room's created event
      if (got_[c.index()].exchange(true)) {
        r_.violation(t, fmt::format("{} got the broadcast twice", c.user()));
        return;
      }
      auto sent = json_int(json, R"("text":)");
      r_.thread_stats(t).delivery_us.record(static_cast<std::uint64_t>(now_ns() - sent) / 1000);
      r_.thread_stats(t).delivered += 1;
      received_ += 1;
      return;
    }
    if (json.starts_with(R"({"op":"error")")) r_.error(t, json_str(json, R"("code":)"));
  }

  void on_closed(connection& c, std::uint16_t code, std::string_view why) override {
    auto t = c.index() % r_.threads();
    r_.error(t, code ? fmt::format("close {}", code) : std::string(why.substr(0, why.find(':'))));
    if (!c.ready()) failed_ += 1;
  }

 private:
  runner& r_;
  conns_config c_;
  std::size_t rooms_ = 0;
  std::vector<std::shared_ptr<connection>> members_;
  std::vector<std::atomic<bool>> got_;
  std::atomic<std::size_t> joined_{0}, failed_{0}, received_{0};
  std::int64_t broadcast_at_ = 0;
};

}  // namespace

int run_conns(const run_options& o, const conns_config& c) {
  runner r(o);
  conns s(r, c);
  return s.run();
}

}  // namespace kaiwa::bench
