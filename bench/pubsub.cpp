// fanout (1 room, S subscribers, P publishers) and rooms (R rooms, each with its publishers and
// subscribers): subscribers join first; then publishers send (paced, or up to a window in
// flight), putting their send time in the text so subscribers measure end-to-end delivery.

#include <fmt/format.h>

#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <fstream>

#include "bench/run.hpp"

namespace kaiwa::bench {

namespace {

struct member {
  std::shared_ptr<connection> conn;
  std::size_t room = 0;
  bool publisher = false;
  // publisher
  std::uint64_t next_id = 0;
  std::uint64_t in_flight = 0;
  // The sends not acked yet, by id: a retry must carry the same text, and the first send's time
  // is the ack latency's start. At most `window` entries.
  struct pending_send {
    std::string text;
    std::int64_t sent_ns = 0;
    std::int64_t tried_ns = 0;  // the last (re)send
  };
  std::map<std::uint64_t, pending_send> pending;
  // With --resend-after or --acked-log: each acked id's seq (a resend acked again must get the
  // same one) and the acks in order, for the log.
  std::map<std::uint64_t, std::int64_t> acked_seq;
  std::vector<std::pair<std::int64_t, std::string>> acks;
  std::unique_ptr<boost::asio::steady_timer> pacer, resender;
  clock_type::time_point next_send;
  bool was_ready = false;  // a later on_ready is a reconnect (with --resend-after)
  // subscriber
  seq_checker checker;
  bool joined = false;
  std::uint32_t joins_sent = 0, joins_answered = 0;  // for print_laggards
};

class pubsub : public connection_events {
 public:
  pubsub(runner& r, const pubsub_config& c) : r_(r), c_(c), max_acked_(c.rooms) {
    for (auto& m : max_acked_) m = 0;
  }

  int run(const std::string& name) {
    auto& o = r_.opts();
    auto subs = c_.rooms * c_.subscribers, pubs = c_.rooms * c_.publishers;
    members_.resize(subs + pubs);
    last_seen_ = std::vector<std::atomic<std::int64_t>>(subs + pubs);
    text_.assign(c_.payload, 'x');
    for (std::size_t i = 0; i < subs; ++i) {
      members_[i].room = i % c_.rooms;
      r_.connect(i, fmt::format("sub-{}", i), *this, members_[i].conn);
    }
    bool ok =
        r_.wait([&] { return joined_ == subs || failed_; }, std::chrono::seconds(120),
                [&] { return fmt::format("subscribers joined {}/{}", joined_.load(), subs); });
    if (!ok || failed_) return r_.give_up("subscribers could not join");
    for (std::size_t i = subs; i < subs + pubs; ++i) {
      auto& m = members_[i];
      m.room = (i - subs) % c_.rooms;
      m.publisher = true;
      r_.connect(i, fmt::format("pub-{}", i), *this, m.conn);
    }
    ok = r_.wait([&] { return ready_pubs_ == pubs || failed_; }, std::chrono::seconds(120),
                 [&] { return fmt::format("publishers ready {}/{}", ready_pubs_.load(), pubs); });
    if (!ok || failed_) return r_.give_up("publishers could not connect");

    auto start = clock_type::now();
    measure_from_ = start + std::chrono::duration_cast<clock_type::duration>(
                                std::chrono::duration<double>(o.warmup_s));
    stop_at_ = measure_from_ + std::chrono::duration_cast<clock_type::duration>(
                                   std::chrono::duration<double>(o.duration_s));
    measure_from_ns_ = now_ns() + static_cast<std::int64_t>(o.warmup_s * 1e9);
    stop_at_ns_ = measure_from_ns_ + static_cast<std::int64_t>(o.duration_s * 1e9);
    for (std::size_t i = subs; i < subs + pubs; ++i)
      r_.post(i % r_.threads(), [this, i] { send_more(members_[i]); });
    r_.wait([&] { return clock_type::now() >= stop_at_ || too_large_; },
            std::chrono::duration<double>(o.warmup_s + o.duration_s + 1),
            [acked = per_second("acked", acked_), delivered = per_second("delivered", delivered_)] {
              return acked() + " " + delivered();
            });
    stopping_ = true;
    // A run stopped early (too_large) measured less than --duration: rates are over what was.
    auto measured_s = std::max(
        1e-3, std::chrono::duration<double>(std::min(clock_type::now(), stop_at_) - measure_from_)
                  .count());
    // Drain: every subscriber must reach its room's highest acked seq.
    bool drained =
        r_.wait([&] { return (in_flight_total_ == 0 && lagging() == 0) || too_large_; },
                std::chrono::seconds(30),
                [&] { return fmt::format("draining: {} subscribers behind", lagging()); });
    auto cpu = r_.cpu_percent();
    auto st = r_.finish();
    std::uint64_t lost = drained ? 0 : lagging();
    print_laggards();
    if (!c_.acked_log.empty() && !write_acked_log()) return 1;
    report rep(name);
    rep.param("rooms", std::to_string(c_.rooms))
        .param("publishers_per_room", std::to_string(c_.publishers))
        .param("subscribers_per_room", std::to_string(c_.subscribers))
        .param("payload", std::to_string(c_.payload))
        .param("offered", c_.rate > 0 ? fmt::format("{:.0f}/s", c_.rate) : "max")
        .param("window", std::to_string(c_.window))
        .param("duration_s", fmt::format("{}", o.duration_s));
    rep.figure("offered msgs/s", c_.rate)
        .figure("sent msgs/s", st.sent / measured_s)
        .figure("acked msgs/s", st.acked / measured_s)
        .figure("delivered events/s", st.delivered / measured_s)
        .figure("order violations", st.violations)
        .figure("subscribers missing acked", lost)
        .figure("closed connections", closed_.load())
        .figure("reconnects (resumed)", st.reconnects)
        .figure(c_.resend_ms > 0 ? "sends retried (unavailable, timeout, no reply)"
                                 : "sends retried (unavailable)",
                st.retries)
        .figure("bench cpu %", cpu)
        .latency("ack", st.ack_us)
        .latency("delivery", st.delivery_us)
        .errors(st.errors)
        .print(o.json);
    return st.violations == 0 && lost == 0 && closed_ == 0 && st.errors.empty() && st.acked > 0 ? 0
                                                                                                : 1;
  }

  // -- connection_events --------------------------------------------------------------------

  void on_ready(connection& c) override {
    auto& m = members_[c.index()];
    bool again = std::exchange(m.was_ready, true);
    if (again) r_.thread_stats(c.index() % r_.threads()).reconnects += 1;
    if (m.publisher) {
      if (!again) ready_pubs_ += 1;
      // Reconnected: what was sent on the lost connection goes again, with its cid.
      for (auto& [id, p] : m.pending) send_message(m, id);
    } else {
      send_join(m);
    }
  }

  void on_message(connection& c, std::string_view json) override {
    auto& m = members_[c.index()];
    auto t = c.index() % r_.threads();
    auto& st = r_.thread_stats(t);
    if (json.starts_with(R"({"op":"event")")) {
      auto seq = json_int(json, R"("seq":)");
      std::string problem;
      if (!m.checker.observe(seq, problem))
        r_.violation(t, fmt::format("{} in {}: {}", c.user(), room_name(m.room), problem));
      last_seen_[c.index()].store(m.checker.last(), std::memory_order_relaxed);
      auto sent = json_int(json, R"("text":)");
      auto now = now_ns();
      if (sent >= measure_from_ns_ && sent < stop_at_ns_) {
        st.delivered += 1;
        st.delivery_us.record(static_cast<std::uint64_t>(now - sent) / 1000);
        delivered_.fetch_add(1, std::memory_order_relaxed);
      }
      return;
    }
    if (json.starts_with(R"({"op":"ack")")) {
      auto id = static_cast<std::uint64_t>(json_int(json, R"("id":)"));
      auto seq = json_int(json, R"("seq":)");
      auto now = now_ns();
      auto p = m.pending.find(id);
      if (p == m.pending.end()) {
        // A resent send's second ack: the cid must have given it the first one's seq.
        auto first = m.acked_seq.find(id);
        if (first == m.acked_seq.end() || first->second != seq)
          r_.violation(t, fmt::format("{} in {}: send {} acked at seq {} and at {}", c.user(),
                                      room_name(m.room), id,
                                      first == m.acked_seq.end() ? -1 : first->second, seq));
        return;
      }
      auto sent = p->second.sent_ns;
      if (tracks_acks()) {
        m.acked_seq.emplace(id, seq);
        m.acks.emplace_back(seq, std::move(p->second.text));
      }
      m.pending.erase(p);
      if (sent >= measure_from_ns_ && sent < stop_at_ns_) {
        st.acked += 1;
        st.ack_us.record(static_cast<std::uint64_t>(now - sent) / 1000);
        acked_.fetch_add(1, std::memory_order_relaxed);
      }
      auto& max = max_acked_[m.room];
      auto cur = max.load(std::memory_order_relaxed);
      while (seq > cur && !max.compare_exchange_weak(cur, seq, std::memory_order_relaxed)) {
      }
      m.in_flight -= 1;
      in_flight_total_.fetch_sub(1, std::memory_order_relaxed);
      send_more(m);
      return;
    }
    if (json.starts_with(R"({"op":"joined")")) {
      m.joins_answered += 1;
      // A resume's backfill follows from `since`: the checker goes on from where it was.
      if (!std::exchange(m.joined, true)) {
        m.checker.reset_to(json_int(json, R"("head":)"));
        last_seen_[c.index()].store(m.checker.last(), std::memory_order_relaxed);
        joined_ += 1;
      }
      return;
    }
    if (json.starts_with(R"({"op":"error")")) {
      auto code = json_str(json, R"("code":)");
      // The node answers a frame over its size limit without the id it couldn't read, so the
      // send can't be told apart from the others: every one may be refused alike (its limit
      // bounds the whole frame, the text plus ~60 bytes of JSON that grow with the ids), and
      // the run stops here.
      if (code == "too_large") {
        r_.error(t, code);
        if (!too_large_.exchange(true))
          fmt::print(stderr,
                     "bench: the node refuses {}-byte texts as too_large (its --max-message-bytes "
                     "bounds the whole frame: the text and ~60 bytes of JSON): give a smaller "
                     "--payload\n",
                     c_.payload);
        return;
      }
      // A late answer to a send that was resent and has been acked since: nothing to do.
      if (m.publisher && c_.resend_ms > 0 &&
          !m.pending.count(static_cast<std::uint64_t>(json_int(json, R"("id":)"))))
        return;
      // `unavailable` means "retry after a moment" (the room's shard is moving, PROTOCOL.md),
      // and kaiwa answers it only for commands it did not apply: the same send goes again.
      // With resends, `timeout` (the node went down or the leader changed before answering:
      // maybe applied) goes again too, with its cid: the dedupe returns the first seq.
      auto id = static_cast<std::uint64_t>(json_int(json, R"("id":)"));
      if (m.publisher && m.pending.count(id) &&
          (code == "unavailable" || (c_.resend_ms > 0 && code == "timeout"))) {
        st.retries += 1;
        retry_later(m, id);
        return;
      }
      // A join answered `unavailable` (the room's shard has no leader yet) is asked again.
      if (!m.publisher && code == "unavailable") {
        st.retries += 1;
        auto timer = std::make_shared<boost::asio::steady_timer>(r_.ioc(t), kRetry);
        timer->async_wait([this, &m, timer](boost::system::error_code ec) {
          if (!ec) send_join(m);
        });
        return;
      }
      r_.error(t, code);
      if (m.publisher && m.pending.erase(id)) {
        m.in_flight -= 1;
        in_flight_total_.fetch_sub(1, std::memory_order_relaxed);
      }
    }
  }

  void on_closed(connection& c, std::uint16_t code, std::string_view why) override {
    auto t = c.index() % r_.threads();
    auto& m = members_[c.index()];
    // With --resend-after, a connection the server closed as PROTOCOL.md says a client
    // recovers from (4010: a room's node went down; 1001: going away) is made again: a
    // subscriber resumes with join + since, a publisher resends what is pending. A reconnect
    // refused (the node is still starting again) is tried again after --resend-after.
    bool recoverable = c.ready() ? code == 4010 || code == 1001 : m.was_ready;
    if (c_.resend_ms > 0 && recoverable && !stopping_) {
      auto timer = std::make_shared<boost::asio::steady_timer>(
          r_.ioc(t), c.ready() ? kRetry : std::chrono::milliseconds(c_.resend_ms));
      timer->async_wait(
          [this, &m, i = c.index(), user = c.user(), timer](boost::system::error_code ec) {
            if (!ec) r_.connect(i, user, *this, m.conn);
          });
      return;
    }
    closed_ += 1;
    r_.closed(t, code);
    // Said once, not by each of the thousands of subscribers.
    if (!c.ready() && !failed_.exchange(true))
      fmt::print(stderr, "bench: {} could not connect: {}\n", c.user(), why);
  }

 private:
  static constexpr std::chrono::milliseconds kRetry{20};

  static std::string room_name(std::size_t r) { return fmt::format("bench-{}", r); }

  void send_join(member& m) {
    m.joins_sent += 1;
    if (m.joined)
      m.conn->send(fmt::format(R"({{"op":"join","id":"j","room":"{}","since":{}}})",
                               room_name(m.room), m.checker.last()));
    else
      m.conn->send(fmt::format(R"({{"op":"join","id":"j","room":"{}"}})", room_name(m.room)));
  }

  /// Names the first few subscribers that did not reach their room's highest ack.
  void print_laggards() const {
    std::size_t said = 0;
    for (std::size_t i = 0; i < c_.rooms * c_.subscribers && said < 5; ++i) {
      auto seen = last_seen_[i].load(std::memory_order_relaxed);
      auto acked = max_acked_[members_[i].room].load(std::memory_order_relaxed);
      if (seen >= acked) continue;
      ++said;
      fmt::print(
          stderr,
          "bench: sub-{} in {} saw up to seq {}, acked up to {} ({} joins sent, {} answered)\n", i,
          room_name(members_[i].room), seen, acked, members_[i].joins_sent,
          members_[i].joins_answered);
    }
  }

  std::size_t lagging() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < c_.rooms * c_.subscribers; ++i)
      if (last_seen_[i].load(std::memory_order_relaxed) <
          max_acked_[members_[i].room].load(std::memory_order_relaxed))
        ++n;
    return n;
  }

  void send_more(member& m) {
    if (stopping_ || !m.conn) return;
    auto per_pub_rate = c_.rate / static_cast<double>(c_.rooms * c_.publishers);
    while (m.in_flight < c_.window) {
      auto now = clock_type::now();
      if (c_.rate > 0) {
        if (m.next_send.time_since_epoch().count() == 0) {
          // Publishers start at evenly spread offsets within one period: started together,
          // they would send in lockstep bursts of one message each, which real clients don't.
          auto period = std::chrono::duration<double>(1.0 / per_pub_rate);
          auto pubs = static_cast<double>(c_.rooms * c_.publishers);
          auto k = static_cast<double>(&m - &members_[c_.rooms * c_.subscribers]);
          m.next_send = now + std::chrono::duration_cast<clock_type::duration>(period * (k / pubs));
        }
        if (m.next_send > now) {
          if (!m.pacer)
            m.pacer =
                std::make_unique<boost::asio::steady_timer>(r_.ioc(m.conn->index() % r_.threads()));
          m.pacer->expires_at(m.next_send);
          m.pacer->async_wait([this, &m](boost::system::error_code ec) {
            if (!ec) send_more(m);
          });
          return;
        }
        m.next_send += std::chrono::duration_cast<clock_type::duration>(
            std::chrono::duration<double>(1.0 / per_pub_rate));
      }
      auto id = m.next_id++;
      auto ns = now_ns();
      auto text = fmt::format("{}:", ns);
      if (text.size() < text_.size()) text.append(text_, 0, text_.size() - text.size());
      m.pending[id] = {std::move(text), ns, ns};
      send_message(m, id);
      m.in_flight += 1;
      in_flight_total_.fetch_add(1, std::memory_order_relaxed);
      if (ns >= measure_from_ns_ && ns < stop_at_ns_)
        r_.thread_stats(m.conn->index() % r_.threads()).sent += 1;
      if (clock_type::now() >= stop_at_) stopping_ = true;
    }
  }

  bool tracks_acks() const { return c_.resend_ms > 0 || !c_.acked_log.empty(); }

  /// Sends publisher `m`'s pending message `id` (again, for a retry: the same text and cid).
  void send_message(member& m, std::uint64_t id) {
    auto p = m.pending.find(id);
    if (p == m.pending.end()) return;  // acked meanwhile
    p->second.tried_ns = now_ns();
    if (c_.resend_ms > 0) {
      m.conn->send(
          fmt::format(R"({{"op":"send","id":{},"room":"{}","text":"{}","cid":"{}-{}-{}"}})", id,
                      room_name(m.room), p->second.text, m.conn->user(), run_, id));
      arm_resender(m);
    } else {
      m.conn->send(fmt::format(R"({{"op":"send","id":{},"room":"{}","text":"{}"}})", id,
                               room_name(m.room), p->second.text));
    }
  }

  void retry_later(member& m, std::uint64_t id) {
    auto timer =
        std::make_shared<boost::asio::steady_timer>(r_.ioc(m.conn->index() % r_.threads()), kRetry);
    timer->async_wait([this, &m, id, timer](boost::system::error_code ec) {
      if (!ec && m.conn) send_message(m, id);
    });
  }

  /// One timer per publisher, running while it has sends pending: each one unanswered for
  /// resend_ms (sent to a node that stopped, or lost with a connection) goes again.
  void arm_resender(member& m) {
    if (m.resender) return;
    m.resender =
        std::make_unique<boost::asio::steady_timer>(r_.ioc(m.conn->index() % r_.threads()));
    resend_tick(m);
  }

  void resend_tick(member& m) {
    auto period = std::chrono::milliseconds(std::max<std::size_t>(c_.resend_ms / 4, 5));
    m.resender->expires_after(period);
    m.resender->async_wait([this, &m](boost::system::error_code ec) {
      if (ec) return;
      auto stale_before = now_ns() - static_cast<std::int64_t>(c_.resend_ms) * 1'000'000;
      std::vector<std::uint64_t> due;
      for (auto& [id, p] : m.pending)
        if (p.tried_ns < stale_before) due.push_back(id);
      auto& st = r_.thread_stats(m.conn->index() % r_.threads());
      for (auto id : due) {
        st.retries += 1;
        send_message(m, id);
      }
      resend_tick(m);
    });
  }

  /// The acks of every publisher, "room seq text" a line; false (said) when it can't be written.
  bool write_acked_log() const {
    std::ofstream out(c_.acked_log, std::ios::trunc);
    for (auto& m : members_)
      for (auto& [seq, text] : m.acks)
        out << room_name(m.room) << ' ' << seq << ' ' << text << '\n';
    out.flush();
    if (out) return true;
    fmt::print(stderr, "bench: could not write {}\n", c_.acked_log);
    return false;
  }

  runner& r_;
  pubsub_config c_;
  std::vector<member> members_;
  std::vector<std::atomic<std::int64_t>> max_acked_;  // per room
  std::vector<std::atomic<std::int64_t>> last_seen_;  // per subscriber, for the drain check
  std::string text_;
  // In every cid: a run's sends are not taken for an earlier run's on the same data dir (the
  // node's dedupe would answer them with the old seqs and append nothing).
  std::string run_ = fmt::format("{:x}", now_ns());
  std::atomic<std::size_t> joined_{0}, ready_pubs_{0}, closed_{0};
  std::atomic<std::uint64_t> acked_{0}, delivered_{0};
  std::atomic<std::int64_t> in_flight_total_{0};
  std::atomic<bool> stopping_{false}, failed_{false};
  std::atomic<bool> too_large_{false};  // the node refused a send as over its size limit
  clock_type::time_point measure_from_, stop_at_;
  std::int64_t measure_from_ns_ = 0, stop_at_ns_ = 0;
};

}  // namespace

int run_pubsub(const run_options& o, const pubsub_config& c, const std::string& name) {
  raise_fd_limit();
  runner r(o);
  pubsub p(r, c);
  return p.run(name);
}

}  // namespace kaiwa::bench
