// chat: a realistic mix. Users join a few rooms picked by Zipf popularity (fetching recent
// history as a client does on join), then send at random times to their rooms, say they are
// typing first, mark what they read, and now and then edit what they sent. Every subscription
// is checked for order, and at the end every room's acked head must have reached its members.

#include <fmt/format.h>

#include <boost/asio/steady_timer.hpp>
#include <random>

#include "bench/run.hpp"

namespace kaiwa::bench {

namespace {

class chat : public connection_events {
 public:
  chat(runner& r, const chat_config& c) : r_(r), c_(c) {}

  int run() {
    auto& o = r_.opts();
    // Zipf weights over rooms: room k has weight 1/(k+1)^s.
    std::vector<double> w(c_.rooms);
    for (std::size_t k = 0; k < c_.rooms; ++k)
      w[k] = 1.0 / std::pow(static_cast<double>(k + 1), c_.zipf);
    std::discrete_distribution<std::size_t> pick(w.begin(), w.end());
    std::mt19937 rng(42);
    users_.resize(c_.users);
    max_acked_ = std::vector<std::atomic<std::int64_t>>(c_.rooms);
    for (std::size_t u = 0; u < c_.users; ++u) {
      auto& user = users_[u];
      user.rng.seed(static_cast<unsigned>(u) + 1);
      while (user.rooms.size() < std::min(c_.rooms_per_user, c_.rooms)) {
        auto r = pick(rng);
        if (std::find(user.rooms.begin(), user.rooms.end(), r) == user.rooms.end())
          user.rooms.push_back(r);
      }
      user.checkers.resize(user.rooms.size());
      expected_joins_ += user.rooms.size();
    }
    last_seen_ = std::vector<std::atomic<std::int64_t>>(expected_joins_);
    std::size_t slot = 0;
    for (auto& user : users_) {
      user.first_slot = slot;
      slot += user.rooms.size();
    }
    for (std::size_t u = 0; u < c_.users; ++u)
      r_.connect(u, fmt::format("user{}", u), *this, users_[u].conn);
    if (!r_.wait([&] { return joins_ == expected_joins_ || failed_; }, std::chrono::seconds(120),
                 [&] { return fmt::format("joined {}/{}", joins_.load(), expected_joins_); }) ||
        failed_) {
      return r_.give_up("users could not join");
    }
    measure_from_ns_ = now_ns() + static_cast<std::int64_t>(o.warmup_s * 1e9);
    stop_at_ns_ = measure_from_ns_ + static_cast<std::int64_t>(o.duration_s * 1e9);
    for (std::size_t u = 0; u < c_.users; ++u)
      r_.post(u % r_.threads(), [this, u] { schedule(u); });
    r_.wait([&] { return now_ns() >= stop_at_ns_; },
            std::chrono::duration<double>(o.warmup_s + o.duration_s + 1),
            per_second("delivered", delivered_));
    bool drained =
        r_.wait([&] { return lagging() == 0; }, std::chrono::seconds(30),
                [&] { return fmt::format("draining: {} subscriptions behind", lagging()); });
    auto lag = lagging();
    auto cpu = r_.cpu_percent();
    auto st = r_.finish();
    report rep("chat");
    rep.param("users", std::to_string(c_.users))
        .param("rooms", std::to_string(c_.rooms))
        .param("rooms_per_user", std::to_string(c_.rooms_per_user))
        .param("zipf", fmt::format("{}", c_.zipf))
        .param("sends_per_user_s", fmt::format("{}", c_.sends_per_user_s));
    rep.figure("sends/s", st.sent / o.duration_s)
        .figure("acked/s", st.acked / o.duration_s)
        .figure("delivered events/s", st.delivered / o.duration_s)
        .figure("history requests", st.requests)
        .figure("order violations", st.violations)
        .figure("subscriptions missing acked", drained ? 0 : lag)
        .figure("bench cpu %", cpu)
        .latency("ack", st.ack_us)
        .latency("delivery", st.delivery_us)
        .latency("history on join", st.request_us)
        .errors(st.errors)
        .print(o.json);
    return drained && st.violations == 0 && st.errors.empty() ? 0 : 1;
  }

  void on_ready(connection& c) override {
    auto& user = users_[c.index()];
    user.join_sent_ns = now_ns();
    for (auto r : user.rooms) {
      c.send(fmt::format(R"({{"op":"join","id":"j{}","room":"chat-{}"}})", r, r));
      c.send(fmt::format(R"({{"op":"history","id":"h","room":"chat-{}","limit":50}})", r));
    }
  }

  void on_message(connection& c, std::string_view json) override {
    auto t = c.index() % r_.threads();
    auto& st = r_.thread_stats(t);
    auto& user = users_[c.index()];
    if (json.starts_with(R"({"op":"event")")) {
      auto room = parse_room(json_str(json, R"("room":)"));
      auto k = slot_of(user, room);
      if (k == npos) return;
      auto seq = json_int(json, R"("seq":)");
      std::string problem;
      if (!user.checkers[k].observe(seq, problem))
        r_.violation(t, fmt::format("{} in chat-{}: {}", c.user(), room, problem));
      last_seen_[user.first_slot + k].store(user.checkers[k].last(), std::memory_order_relaxed);
      auto sent = json_int(json, R"("text":)");
      if (json.find(R"("type":"message")") != std::string_view::npos && sent >= measure_from_ns_ &&
          sent < stop_at_ns_) {
        st.delivered += 1;
        st.delivery_us.record(static_cast<std::uint64_t>(now_ns() - sent) / 1000);
        delivered_.fetch_add(1, std::memory_order_relaxed);
      }
      if (std::uniform_int_distribution<int>(0, 19)(user.rng) == 0)
        c.send(fmt::format(R"({{"op":"read","id":"r","room":"chat-{}","seq":{}}})", room, seq));
      return;
    }
    if (json.starts_with(R"({"op":"ack")")) {
      auto id = json_int(json, R"("id":)");
      auto seq = json_int(json, R"("seq":)");
      auto room = parse_room(json_str(json, R"("room":)"));
      auto cur = max_acked_[room].load();
      while (seq > cur && !max_acked_[room].compare_exchange_weak(cur, seq)) {
      }
      if (id >= 0) {
        auto sent = user.sent_ns[static_cast<std::size_t>(id) % user.sent_ns.size()];
        if (sent >= measure_from_ns_ && sent < stop_at_ns_) {
          st.acked += 1;
          st.ack_us.record(static_cast<std::uint64_t>(now_ns() - sent) / 1000);
        }
        // Now and then the author fixes a typo.
        if (std::uniform_int_distribution<int>(0, 19)(user.rng) == 0)
          c.send(
              fmt::format(R"({{"op":"edit","id":-1,"room":"chat-{}","ref":{},"text":"{}:edited"}})",
                          room, seq, now_ns()));
      }
      return;
    }
    if (json.starts_with(R"({"op":"joined")")) {
      auto room = parse_room(json_str(json, R"("room":)"));
      auto k = slot_of(user, room);
      if (k != npos) {
        user.checkers[k].reset_to(json_int(json, R"("head":)"));
        last_seen_[user.first_slot + k].store(user.checkers[k].last(), std::memory_order_relaxed);
      }
      joins_ += 1;
      return;
    }
    if (json.starts_with(R"({"op":"history")")) {
      st.requests += 1;
      st.request_us.record(static_cast<std::uint64_t>(now_ns() - user.join_sent_ns) / 1000);
      return;
    }
    if (json.starts_with(R"({"op":"error")")) r_.error(t, json_str(json, R"("code":)"));
  }

  void on_closed(connection& c, std::uint16_t code, std::string_view why) override {
    r_.closed(c.index() % r_.threads(), code);
    // One that never connected fails the run at once (a node that isn't there would otherwise
    // be waited for 2 minutes), said once, not by each of the thousands of users.
    if (!c.ready() && !failed_.exchange(true))
      fmt::print(stderr, "bench: {} could not connect: {}\n", c.user(), why);
  }

 private:
  static constexpr std::size_t npos = ~std::size_t{0};

  struct user_state {
    std::shared_ptr<connection> conn;
    std::mt19937 rng;
    std::vector<std::size_t> rooms;
    std::vector<seq_checker> checkers;  // by position in rooms
    std::size_t first_slot = 0;         // in last_seen_
    std::vector<std::int64_t> sent_ns = std::vector<std::int64_t>(64);
    std::uint64_t next_id = 0;
    std::int64_t join_sent_ns = 0;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };

  static std::size_t parse_room(std::string_view name) {
    std::size_t r = 0;
    for (char ch : name.substr(5)) r = r * 10 + static_cast<std::size_t>(ch - '0');
    return r;
  }

  static std::size_t slot_of(const user_state& u, std::size_t room) {
    for (std::size_t k = 0; k < u.rooms.size(); ++k)
      if (u.rooms[k] == room) return k;
    return npos;
  }

  std::size_t lagging() const {
    std::size_t n = 0;
    for (auto& u : users_)
      for (std::size_t k = 0; k < u.rooms.size(); ++k)
        if (last_seen_[u.first_slot + k].load(std::memory_order_relaxed) <
            max_acked_[u.rooms[k]].load())
          ++n;
    return n;
  }

  void schedule(std::size_t u) {
    auto& user = users_[u];
    if (now_ns() >= stop_at_ns_) return;
    std::exponential_distribution<double> gap(c_.sends_per_user_s);
    if (!user.timer)
      user.timer = std::make_unique<boost::asio::steady_timer>(r_.ioc(u % r_.threads()));
    user.timer->expires_after(std::chrono::duration_cast<clock_type::duration>(
        std::chrono::duration<double>(gap(user.rng))));
    user.timer->async_wait([this, u](boost::system::error_code ec) {
      if (ec) return;
      act(u);
      schedule(u);
    });
  }

  void act(std::size_t u) {
    auto& user = users_[u];
    if (now_ns() >= stop_at_ns_) return;
    auto room =
        user.rooms[std::uniform_int_distribution<std::size_t>(0, user.rooms.size() - 1)(user.rng)];
    if (std::uniform_int_distribution<int>(0, 4)(user.rng) == 0)
      user.conn->send(fmt::format(R"({{"op":"typing","room":"chat-{}"}})", room));
    auto id = user.next_id++;
    auto ns = now_ns();
    user.sent_ns[id % user.sent_ns.size()] = ns;
    user.conn->send(fmt::format(
        R"({{"op":"send","id":{},"room":"chat-{}","text":"{}:hello from {}"}})", id, room, ns, u));
    if (ns >= measure_from_ns_) r_.thread_stats(u % r_.threads()).sent += 1;
  }

  runner& r_;
  chat_config c_;
  std::vector<user_state> users_;
  std::vector<std::atomic<std::int64_t>> max_acked_, last_seen_;
  std::size_t expected_joins_ = 0;
  std::atomic<std::size_t> joins_{0};
  std::atomic<bool> failed_{false};
  std::atomic<std::uint64_t> delivered_{0};
  std::int64_t measure_from_ns_ = 0, stop_at_ns_ = 0;
};

}  // namespace

int run_chat(const run_options& o, const chat_config& c) {
  raise_fd_limit();
  runner r(o);
  chat s(r, c);
  return s.run();
}

}  // namespace kaiwa::bench
