// conns: N connections, each joined to a room (per_room to a room), held idle; then one
// broadcast per room must reach every connection. Reports the server's memory per connection
// (its RSS growth while holding them, from the admin status).
//
// The connections live in `procs` worker processes (one process may open only so many files);
// the parent coordinates them over pipes: each worker connects and joins its share and says
// so ("J joined failed"), waits for "G", then counts the broadcast that the parent sends from
// its own connection, and reports ("R received violations histogram", "E code count", "END").

#include <fmt/format.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <sstream>

#include "bench/run.hpp"

namespace kaiwa::bench {

namespace {

std::string room_name(std::size_t conn, const conns_config& c) {
  return fmt::format("conns-{}", conn / c.per_room);
}

/// Reads one line from `fd` within `limit`; empty on timeout or EOF.
std::string read_line(int fd, std::chrono::milliseconds limit) {
  std::string line;
  auto deadline = clock_type::now() + limit;
  char ch = 0;
  while (true) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || poll(&p, 1, static_cast<int>(left)) <= 0) return {};
    if (read(fd, &ch, 1) != 1) return {};
    if (ch == '\n') return line;
    line += ch;
  }
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    auto n = write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

/// A worker process's share: connections [first, last).
class conns_worker : public connection_events {
 public:
  conns_worker(runner& r, const conns_config& c, std::size_t first, std::size_t last)
      : r_(r), c_(c), first_(first), last_(last), got_(last - first) {}

  int run(int to_parent, int from_parent) {
    auto& o = r_.opts();
    std::vector<std::shared_ptr<connection>> conns;
    for (auto i = first_; i < last_; ++i)
      r_.connect(i, fmt::format("c{}", i), *this, conns.emplace_back());
    auto n = last_ - first_;
    // The parent prints the progress lines; a worker tells it its counts once a second.
    r_.wait([&] { return joined_ + failed_ >= n; }, std::chrono::seconds(300),
            [&] {
              write_all(to_parent, fmt::format("P {} {}\n", joined_.load(), failed_.load()));
              return std::string();
            });
    write_all(to_parent, fmt::format("J {} {}\n", joined_.load(), failed_.load()));
    if (read_line(from_parent, std::chrono::seconds(600)) != "G") return 1;
    r_.wait([&] { return received_ >= joined_; }, std::chrono::duration<double>(o.duration_s + 60),
            [&] {
              write_all(to_parent, fmt::format("Q {}\n", received_.load()));
              return std::string();
            });
    auto st = r_.finish();
    std::string report =
        fmt::format("R {} {} {}\n", received_.load(), st.violations, st.delivery_us.serialize());
    for (auto& [code, count] : st.errors) report += fmt::format("E {} {}\n", code, count);
    write_all(to_parent, report + "END\n");
    return 0;
  }

  void on_ready(connection& c) override {
    c.send(fmt::format(R"({{"op":"join","id":"j","room":"{}"}})", room_name(c.index(), c_)));
  }

  void on_message(connection& c, std::string_view json) override {
    auto t = c.index() % r_.threads();
    if (json.starts_with(R"({"op":"joined")")) {
      joined_ += 1;
    } else if (json.starts_with(R"({"op":"event")")) {
      if (json.find(":broadcast") == std::string_view::npos) return;  // the room's created event
      if (got_[c.index() - first_].exchange(true))
        return r_.violation(t, fmt::format("{} got the broadcast twice", c.user()));
      auto sent = json_int(json, R"("text":)");
      r_.thread_stats(t).delivery_us.record(static_cast<std::uint64_t>(now_ns() - sent) / 1000);
      received_ += 1;
    } else if (json.starts_with(R"({"op":"error")")) {
      r_.error(t, json_str(json, R"("code":)"));
    }
  }

  void on_closed(connection& c, std::uint16_t code, std::string_view why) override {
    r_.error(c.index() % r_.threads(),
             code ? fmt::format("close {}", code) : std::string(why.substr(0, why.find(':'))));
    if (!c.ready()) failed_ += 1;
  }

 private:
  runner& r_;
  conns_config c_;
  std::size_t first_, last_;
  std::vector<std::atomic<bool>> got_;
  std::atomic<std::size_t> joined_{0}, failed_{0}, received_{0};
};

/// The parent's one connection, which sends the broadcast.
class broadcaster : public connection_events {
 public:
  explicit broadcaster(std::size_t rooms) : rooms_(rooms) {}
  void on_ready(connection& c) override {
    for (std::size_t r = 0; r < rooms_; ++r)
      c.send(fmt::format(R"({{"op":"send","id":{},"room":"conns-{}","text":"{}:broadcast"}})", r, r,
                         now_ns()));
  }
  void on_message(connection&, std::string_view json) override {
    if (json.starts_with(R"({"op":"ack")")) acked_ += 1;
  }
  void on_closed(connection&, std::uint16_t, std::string_view) override {}
  std::atomic<std::size_t> acked_{0};

 private:
  std::size_t rooms_;
};

struct worker_proc {
  pid_t pid = -1;
  int from_child = -1, to_child = -1;
  std::string unread;  // bytes from the child not yet ending in a newline
  bool ended = false;  // the child closed its end, or sent "END"
  std::size_t joined = 0, failed = 0, received = 0;  // its latest counts
  bool reported_join = false;                        // it sent "J"
};

/// Reads what the worker has written so far, without blocking, and hands each whole line to
/// `on_line`.
void read_lines(worker_proc& w, const std::function<void(const std::string&)>& on_line) {
  char buf[4096];
  for (;;) {
    pollfd p{w.from_child, POLLIN, 0};
    if (w.ended || poll(&p, 1, 0) <= 0) return;
    auto n = read(w.from_child, buf, sizeof buf);
    if (n <= 0) {
      w.ended = true;
      return;
    }
    w.unread.append(buf, static_cast<std::size_t>(n));
    for (std::size_t nl; (nl = w.unread.find('\n')) != std::string::npos;) {
      auto line = w.unread.substr(0, nl);
      w.unread.erase(0, nl + 1);
      on_line(line);
    }
  }
}

}  // namespace

int run_conns(const run_options& o, const conns_config& c) {
  auto bench_fds = raise_fd_limit();
  auto procs = std::max<std::size_t>(1, c.procs);
  auto before = fetch_status(o.admin);
  if (!before) {
    fmt::print(stderr, "bench: can't read the node's status at {}:{} (use --admin)\n", o.admin.host,
               o.admin.port);
    return 1;
  }
  if (c.connections / procs + 64 > bench_fds)
    fmt::print(stderr,
               "bench: one process may open {} files: {} connections need --procs {} or more\n",
               bench_fds, c.connections, c.connections / (bench_fds - 64) + 1);
  if (c.connections + before->open_fds + 16 > before->fd_limit)
    fmt::print(
        stderr,
        "bench: the node may open {} files and has {} open: {} more connections will not fit\n",
        before->fd_limit, before->open_fds, c.connections);

  // Workers first: fork before this process starts any thread.
  std::vector<worker_proc> workers(procs);
  for (std::size_t k = 0; k < procs; ++k) {
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0) return 1;
    auto pid = fork();
    if (pid == 0) {
      close(up[0]);
      close(down[1]);
      runner r(o);
      conns_worker w(r, c, c.connections * k / procs, c.connections * (k + 1) / procs);
      _exit(w.run(up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    workers[k].pid = pid;
    workers[k].from_child = up[0];
    workers[k].to_child = down[1];
  }

  runner r(o);  // after the forks: a runner starts threads
  auto started = clock_type::now();
  auto sum = [&](std::size_t worker_proc::*count) {
    std::size_t n = 0;
    for (auto& w : workers) n += w.*count;
    return n;
  };
  // "P joined failed" once a second while connecting, then "J joined failed".
  auto join_lines = [&](worker_proc& w) {
    read_lines(w, [&](const std::string& text) {
      std::istringstream line(text);
      std::string tag;
      std::size_t j = 0, f = 0;
      if (!(line >> tag >> j >> f) || (tag != "P" && tag != "J")) return;
      w.joined = j;
      w.failed = f;
      w.reported_join = w.reported_join || tag == "J";
    });
  };
  r.wait(
      [&] {
        bool all_in = true;
        for (auto& w : workers) {
          join_lines(w);
          all_in = all_in && (w.reported_join || w.ended);
        }
        return all_in;
      },
      std::chrono::seconds(330),
      [&] {
        return fmt::format("connecting: {} of {} joined, {} failed", sum(&worker_proc::joined),
                           c.connections, sum(&worker_proc::failed));
      });
  bool all = std::all_of(workers.begin(), workers.end(), [](auto& w) { return w.reported_join; });
  std::size_t joined = sum(&worker_proc::joined), failed = sum(&worker_proc::failed);
  auto connect_s = std::chrono::duration<double>(clock_type::now() - started).count();
  auto held = fetch_status(o.admin);
  if (!all || failed > 0 || joined < c.connections) {
    fmt::print(stderr, "bench: only {} of {} connections joined", joined, c.connections);
    if (held && held->open_fds + 16 >= held->fd_limit)
      fmt::print(stderr, ": the node ran out of file descriptors ({} of {})", held->open_fds,
                 held->fd_limit);
    fmt::print(stderr, "\n");
  }
  for (auto& w : workers) write_all(w.to_child, "G\n");

  r.wait([] { return false; }, std::chrono::duration<double>(o.duration_s),
         [&] { return fmt::format("holding {} connections in {} processes", joined, procs); });
  broadcaster b((c.connections + c.per_room - 1) / c.per_room);
  std::shared_ptr<connection> conn;
  r.connect(c.connections, "broadcaster", b, conn);

  // "Q received" once a second while the broadcast arrives, then the report: "R received
  // violations histogram", "E code count" lines and "END".
  stats total;
  auto report_lines = [&](worker_proc& w) {
    read_lines(w, [&](const std::string& line) {
      if (line == "END") {
        w.ended = true;
      } else if (line.starts_with("Q ")) {
        w.received = std::strtoull(line.c_str() + 2, nullptr, 10);
      } else if (line.starts_with("R ")) {
        std::istringstream in(line.substr(2));
        std::size_t got = 0, violations = 0;
        in >> got >> violations;
        w.received = got;
        total.violations += violations;
        std::string rest;
        std::getline(in, rest);
        if (!rest.empty() && rest.front() == ' ') rest.erase(0, 1);
        total.delivery_us.merge_serialized(rest);
      } else if (line.starts_with("E ")) {
        auto sp = line.rfind(' ');
        total.errors[line.substr(2, sp - 2)] += std::strtoull(line.c_str() + sp + 1, nullptr, 10);
      }
    });
  };
  r.wait(
      [&] {
        bool all_ended = true;
        for (auto& w : workers) {
          report_lines(w);
          all_ended = all_ended && w.ended;
        }
        return all_ended;
      },
      std::chrono::duration<double>(o.duration_s + 90),
      [&] {
        return fmt::format("broadcast reached {} of {}", sum(&worker_proc::received), joined);
      });
  std::size_t received = sum(&worker_proc::received);
  for (auto& w : workers) {
    if (!w.ended) kill(w.pid, SIGKILL);  // a worker that never reported: don't wait forever
    int status = 0;
    waitpid(w.pid, &status, 0);
    close(w.from_child);
    close(w.to_child);
  }
  auto cpu = r.cpu_percent();
  r.finish();
  double per_conn =
      held && joined > 0 ? (static_cast<double>(held->rss_bytes) - before->rss_bytes) / joined : 0;
  report rep("conns");
  rep.param("connections", std::to_string(c.connections))
      .param("per_room", std::to_string(c.per_room))
      .param("procs", std::to_string(procs));
  rep.figure("connections held", joined)
      .figure("connect+join time", connect_s, "s")
      .figure("server rss before", before->rss_bytes / 1048576.0, "MiB")
      .figure("server rss holding", held ? held->rss_bytes / 1048576.0 : 0, "MiB")
      .figure("server bytes/connection", per_conn, "B")
      .figure("server open fds", held ? held->open_fds : 0)
      .figure("server fd limit", held ? held->fd_limit : 0)
      .figure("bench fd limit", bench_fds)
      .figure("broadcast reached", received)
      .figure("order violations", total.violations)
      .figure("parent cpu %", cpu)
      .latency("broadcast delivery", total.delivery_us)
      .errors(total.errors)
      .print(o.json);
  bool ok = all && failed == 0 && joined == c.connections && received == joined &&
            total.violations == 0 && total.delivery_us.max() <= 1'000'000;
  return ok ? 0 : 1;
}

}  // namespace kaiwa::bench
