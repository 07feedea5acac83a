// history: rooms with long logs (prefilled when shorter), then clients page through them at
// random with up to `window` requests in flight each. Every page is checked: `limit` events,
// consecutive seqs ending just before `before`.

#include <fmt/format.h>

#include <boost/asio/steady_timer.hpp>

#include <random>
#include <unordered_map>

#include "bench/run.hpp"

namespace kaiwa::bench {

namespace {

class history : public connection_events {
 public:
  history(runner& r, const history_config& c) : r_(r), c_(c) {}

  int run() {
    auto& o = r_.opts();
    // Prefill: one writer per room tops its log up to `events`.
    heads_ = std::vector<std::atomic<std::int64_t>>(c_.rooms);
    writers_pending_ = c_.rooms;
    writer_state_.resize(c_.rooms);
    for (std::size_t r = 0; r < c_.rooms; ++r)
      r_.connect(r, fmt::format("writer-{}", r), *this, conns_.emplace_back());
    if (!r_.wait(
            [&] { return writers_pending_ == 0 || failed_; }, std::chrono::seconds(300),
            [&] { return fmt::format("prefilling: {} rooms to go", writers_pending_.load()); }) ||
        failed_) {
      return r_.give_up("prefill failed");
    }
    clients_.resize(c_.clients);
    for (std::size_t i = 0; i < c_.clients; ++i) {
      clients_[i].rng.seed(static_cast<unsigned>(i));
      r_.connect(c_.rooms + i, fmt::format("reader-{}", i), *this, conns_.emplace_back());
    }
    r_.wait([&] { return ready_ == c_.clients || failed_; }, std::chrono::seconds(60),
            [&] { return fmt::format("readers ready {}/{}", ready_.load(), c_.clients); });
    measure_from_ns_ = now_ns() + static_cast<std::int64_t>(o.warmup_s * 1e9);
    stop_at_ns_ = measure_from_ns_ + static_cast<std::int64_t>(o.duration_s * 1e9);
    go_ = true;
    for (std::size_t i = 0; i < c_.clients; ++i) {
      auto idx = c_.rooms + i;
      r_.post(idx % r_.threads(), [this, i, c = conns_[idx]] { fill(i, *c); });
    }
    r_.wait([&] { return now_ns() >= stop_at_ns_ && in_flight_ == 0; },
            std::chrono::duration<double>(o.warmup_s + o.duration_s + 30),
            per_second("pages", pages_));
    auto cpu = r_.cpu_percent();
    auto st = r_.finish();
    report rep("history");
    rep.param("rooms", std::to_string(c_.rooms))
        .param("events", std::to_string(c_.events))
        .param("clients", std::to_string(c_.clients))
        .param("limit", std::to_string(c_.limit))
        .param("window", std::to_string(c_.window));
    rep.figure("pages/s", st.requests / o.duration_s)
        .figure("events/s", st.requests * c_.limit / o.duration_s)
        .figure("bad pages", st.violations)
        .figure("bench cpu %", cpu)
        .latency("page", st.request_us)
        .errors(st.errors)
        .print(o.json);
    return st.violations == 0 && st.errors.empty() && st.requests > 0 ? 0 : 1;
  }

  void on_ready(connection& c) override {
    if (c.index() < c_.rooms) {
      c.send(fmt::format(R"({{"op":"join","id":"j","room":"history-{}"}})", c.index()));
    } else {
      ready_ += 1;
    }
  }

  void on_message(connection& c, std::string_view json) override {
    auto t = c.index() % r_.threads();
    if (c.index() < c_.rooms) return on_writer_message(c, json);
    if (!json.starts_with(R"({"op":"history")")) {
      if (json.starts_with(R"({"op":"error")")) r_.error(t, json_str(json, R"("code":)"));
      return;
    }
    auto& cl = clients_[c.index() - c_.rooms];
    auto id = json_int(json, R"("id":)");
    // Replies for different rooms come from different room actors, so they may be reordered.
    auto pending = cl.pending.find(id);
    if (pending == cl.pending.end())
      return r_.violation(t, fmt::format("{}: reply to unknown id {}", c.user(), id));
    auto [sent, before] = pending->second;
    cl.pending.erase(pending);
    // Check the page: `limit` events with seqs before-limit .. before-1, in order.
    std::size_t n = 0;
    std::int64_t expect = before - static_cast<std::int64_t>(c_.limit);
    for (auto at = json.find(R"({"op":"event")"); at != std::string_view::npos;
         at = json.find(R"({"op":"event")", at + 1), ++n) {
      auto seq = json_int(json.substr(at), R"("seq":)");
      if (seq != expect++) {
        r_.violation(
            t, fmt::format("history of {} before {}: seq {} out of place", c.user(), before, seq));
        break;
      }
    }
    if (n != c_.limit)
      r_.violation(
          t, fmt::format("history page before {} had {} events, not {}", before, n, c_.limit));
    if (sent >= measure_from_ns_ && sent < stop_at_ns_) {
      auto& st = r_.thread_stats(t);
      st.requests += 1;
      st.request_us.record(static_cast<std::uint64_t>(now_ns() - sent) / 1000);
      pages_.fetch_add(1, std::memory_order_relaxed);
    }
    cl.in_flight -= 1;
    in_flight_ -= 1;
    fill(c.index() - c_.rooms, c);
  }

  void on_closed(connection& c, std::uint16_t code, std::string_view why) override {
    r_.closed(c.index() % r_.threads(), code);
    fmt::print(stderr, "bench: {} closed: {}\n", c.user(), why);
    failed_ = true;
  }

 private:
  struct writer {
    std::int64_t target = 0, next = 0, acked = 0;
    bool done = false;
  };
  struct client {
    std::mt19937 rng;
    std::size_t in_flight = 0;
    std::uint64_t next_id = 0;
    std::unordered_map<std::int64_t, std::pair<std::int64_t, std::int64_t>>
        pending;  // id -> sent ns, before
  };

  void on_writer_message(connection& c, std::string_view json) {
    auto& w = writer_state_[c.index()];
    if (json.starts_with(R"({"op":"joined")")) {
      auto head = json_int(json, R"("head":)");
      heads_[c.index()] = head;
      w.next = w.acked = head;
      w.target = std::max<std::int64_t>(head, static_cast<std::int64_t>(c_.events));
      if (head >= w.target) {
        w.done = true;
        writers_pending_ -= 1;
        return;
      }
      for (int i = 0; i < 64 && w.next < w.target; ++i, ++w.next)
        c.send(
            fmt::format(R"({{"op":"send","id":1,"room":"history-{}","text":"history filler {}"}})",
                        c.index(), w.next));
      return;
    }
    if (json.starts_with(R"({"op":"error")")) {
      // Filling faster than the node's per-connection rate limit (or while the room's shard
      // moves): that filler was not appended, so another one goes after a pause.
      auto timer = std::make_shared<boost::asio::steady_timer>(r_.ioc(c.index() % r_.threads()),
                                                               std::chrono::milliseconds(50));
      timer->async_wait([this, &c, &w, timer](boost::system::error_code ec) {
        if (ec) return;
        c.send(
            fmt::format(R"({{"op":"send","id":1,"room":"history-{}","text":"history filler {}"}})",
                        c.index(), w.next++));
      });
      return;
    }
    if (json.starts_with(R"({"op":"ack")")) {
      auto seq = json_int(json, R"("seq":)");
      w.acked = seq;
      heads_[c.index()] = seq;
      if (seq >= w.target) {
        if (!w.done) writers_pending_ -= 1;
        w.done = true;
        return;
      }
      if (w.next < w.target) {
        c.send(
            fmt::format(R"({{"op":"send","id":1,"room":"history-{}","text":"history filler {}"}})",
                        c.index(), w.next));
        ++w.next;
      }
    }
  }

  void fill(std::size_t i, connection& c) {
    auto& cl = clients_[i];
    while (go_ && cl.in_flight < c_.window && now_ns() < stop_at_ns_) {
      auto room = std::uniform_int_distribution<std::size_t>(0, c_.rooms - 1)(cl.rng);
      auto head = heads_[room].load();
      auto lo = static_cast<std::int64_t>(c_.limit) + 1;
      if (head + 1 < lo) continue;
      auto before = std::uniform_int_distribution<std::int64_t>(lo, head + 1)(cl.rng);
      auto id = cl.next_id++;
      cl.pending[static_cast<std::int64_t>(id)] = {now_ns(), before};
      c.send(fmt::format(R"({{"op":"history","id":{},"room":"history-{}","before":{},"limit":{}}})",
                         id, room, before, c_.limit));
      cl.in_flight += 1;
      in_flight_ += 1;
    }
  }

  runner& r_;
  history_config c_;
  std::vector<std::shared_ptr<connection>> conns_;
  std::vector<std::atomic<std::int64_t>> heads_;
  std::vector<writer> writer_state_;
  std::vector<client> clients_;
  std::atomic<std::size_t> writers_pending_{0}, ready_{0};
  std::atomic<std::int64_t> in_flight_{0};
  std::atomic<std::uint64_t> pages_{0};
  std::atomic<bool> go_{false}, failed_{false};
  std::int64_t measure_from_ns_ = 0, stop_at_ns_ = 0;
};

}  // namespace

int run_history(const run_options& o, const history_config& c) {
  runner r(o);
  history s(r, c);
  return s.run();
}

}  // namespace kaiwa::bench
