// search: the read side's scale and speed (docs/benchmarks.md, "Search"). Loads the corpus
// (corpus.hpp) into the node, through `send` on several connections with a window of sends in
// flight each (ack throughput and latency), or offline through the journal (offline_load.cpp);
// waits until the search projection has applied everything (its metrics), then asks the fixed
// query set over one WebSocket connection, one query at a time, and the same queries of a
// Groonga server over one persistent connection (GQTP), and reports both side by side.

#include <fmt/format.h>
#include <simdjson.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>

#include "bench/run.hpp"
#include "core/json.hpp"

namespace kaiwa::bench {

namespace {

namespace asio = boost::asio;

constexpr std::string_view filter_room = "room-0";  // the busiest room (corpus.hpp)

std::string search_request(const search_query& q, std::size_t limit, std::uint64_t id) {
  std::string out;
  json_writer w(out);
  w.begin_object().field("op", "search").field("id", id).field("q", q.q);
  if (q.in_room) w.field("room", filter_room);
  w.field("limit", std::uint64_t{limit}).end_object();
  return out;
}

std::string group_name(const search_query& q) {
  return fmt::format("{} term{}{}", q.terms, q.terms > 1 ? "s" : "", q.in_room ? ", room" : "");
}

/// `name{labels} value` in Prometheus text; nullopt when the series is absent.
std::optional<double> metric(std::string_view text, std::string_view series) {
  for (std::size_t at = text.find(series); at != std::string_view::npos;
       at = text.find(series, at + 1)) {
    if ((at == 0 || text[at - 1] == '\n') && at + series.size() < text.size() &&
        text[at + series.size()] == ' ')
      return std::strtod(std::string(text.substr(at + series.size() + 1, 32)).c_str(), nullptr);
  }
  return std::nullopt;
}

/// `s` as a double-quoted value of a Groonga command.
std::string groonga_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + '"';
}

/// One persistent connection to a Groonga server speaking GQTP, its binary protocol, used from
/// one thread. (Groonga's built-in HTTP server closes the connection after every reply, which
/// would charge Groonga a TCP connect per query; GQTP keeps one connection, like the WebSocket
/// kaiwa is asked over.) A request is a 24-byte header and a command line; the reply is a header
/// (its status 0 on success) and the command's JSON output without the HTTP envelope.
class gqtp_client {
 public:
  explicit gqtp_client(const endpoint& server) : socket_(ioc_) {
    socket_.connect(asio::ip::tcp::endpoint(asio::ip::make_address(server.host), server.port));
    socket_.set_option(asio::ip::tcp::no_delay(true));
  }

  /// The output of `command`; nullopt (and `error` set) when Groonga reports a failure.
  std::optional<std::string> call(std::string_view command, std::string& error) {
    std::array<unsigned char, header_size> h{};
    h[0] = 0xc7;  // protocol
    h[5] = 0x02;  // flags: GRN_CTX_TAIL, the whole command in one message
    put_be32(h.data() + 8, static_cast<std::uint32_t>(command.size()));
    asio::write(socket_, std::array<asio::const_buffer, 2>{asio::buffer(h), asio::buffer(command)});
    asio::read(socket_, asio::buffer(h));
    auto status = (h[6] << 8) | h[7];
    auto size = (std::uint32_t{h[8]} << 24) | (std::uint32_t{h[9]} << 16) |
                (std::uint32_t{h[10]} << 8) | h[11];
    if (size > max_reply) throw std::runtime_error("groonga reply too large");
    std::string body(size, '\0');
    asio::read(socket_, asio::buffer(body));
    if (status != 0) {
      error = std::move(body);
      return std::nullopt;
    }
    return body;
  }

 private:
  static constexpr std::size_t header_size = 24;
  static constexpr std::uint32_t max_reply = 64 << 20;
  static void put_be32(unsigned char* p, std::uint32_t v) {
    p[0] = v >> 24, p[1] = (v >> 16) & 0xff, p[2] = (v >> 8) & 0xff, p[3] = v & 0xff;
  }

  asio::io_context ioc_;
  asio::ip::tcp::socket socket_;
};

/// What one query of the set measured on one engine.
struct query_result {
  histogram latency_us;
  std::uint64_t hits = 0;   // hits of the last answer (<= limit)
  std::uint64_t total = 0;  // Groonga: all matches of the last answer
};

class search_bench : public connection_events {
 public:
  search_bench(runner& r, const search_config& c)
      : r_(r), c_(c), queries_(query_set()), kaiwa_(queries_.size()), groonga_(queries_.size()) {}

  int run() {
    auto& o = r_.opts();
    report rep("search");
    rep.param("messages", std::to_string(c_.corpus.messages))
        .param("rooms", std::to_string(c_.corpus.rooms))
        .param("users", std::to_string(c_.corpus.users))
        .param("seed", std::to_string(c_.corpus.seed))
        .param("load", c_.load)
        .param("rounds", std::to_string(c_.rounds))
        .param("limit", std::to_string(c_.limit));
    if (c_.load == "ws" && !load_ws(rep)) return r_.give_up("the load did not complete");
    if (!wait_index(rep)) return r_.give_up("the search projection did not catch up");
    if (auto s = fetch_status(o.admin)) rep.figure("node rss after indexing", s->rss_bytes, "B");
    if (c_.rounds > 0) {
      if (!query_kaiwa()) return r_.give_up("the queries did not complete");
      if (auto s = fetch_status(o.admin)) rep.figure("node rss after queries", s->rss_bytes, "B");
      if (c_.groonga) query_groonga(*c_.groonga);
    }
    auto cpu = r_.cpu_percent();
    auto st = r_.finish();
    return summarize(rep, st, cpu);
  }

  // -- connection_events --------------------------------------------------------------------

  void on_ready(connection& c) override {
    if (c.index() < loaders_.size()) return fill(c);
    searcher_ready_ = true;
  }

  void on_message(connection& c, std::string_view json) override {
    if (c.index() < loaders_.size()) return on_loader_message(c, json);
    if (!json.starts_with(R"({"op":"results")") && !json.starts_with(R"({"op":"error")")) return;
    on_answer(c, json);
  }

  void on_closed(connection& c, std::uint16_t code, std::string_view why) override {
    r_.closed(c.index() % r_.threads(), code);
    fmt::print(stderr, "bench: {} closed: {}\n", c.user(), why);
    failed_ = true;
  }

 private:
  // -- loading through `send` ---------------------------------------------------------------

  struct loader {
    std::vector<std::string> sends;  // ready-made requests; the id is the index
    std::vector<std::int64_t> sent_ns;
    std::size_t next = 0, acked = 0, in_flight = 0;
    bool paced = false;  // a timer will call fill() again
  };

  bool load_ws(report& rep) {
    // Rooms are split among the connections (room % connections), so each room's messages are
    // sent in corpus order by one connection. The requests are made before the clock starts.
    loaders_.resize(std::max<std::size_t>(1, c_.connections));
    corpus gen(c_.corpus);
    corpus_message m;
    while (gen.next(m)) {
      auto& l = loaders_[m.room % loaders_.size()];
      std::string req;
      json_writer(req)
          .begin_object()
          .field("op", "send")
          .field("id", std::uint64_t{l.sends.size()})
          .field("room", corpus::room_name(m.room))
          .field("text", m.text)
          .end_object();
      l.sends.push_back(std::move(req));
    }
    for (auto& l : loaders_) l.sent_ns.resize(l.sends.size());
    // Each connection stays under the node's default per-connection rate limit (10,000
    // requests/s, PROTOCOL.md): a loader over it would be refused and then closed.
    per_connection_rate_ = std::min(
        max_rate_per_connection,
        c_.rate > 0 ? c_.rate / static_cast<double>(loaders_.size()) : max_rate_per_connection);
    auto started = load_started_ns_ = now_ns();
    for (std::size_t i = 0; i < loaders_.size(); ++i)
      r_.connect(i, fmt::format("loader-{}", i), *this, conns_.emplace_back());
    bool done = r_.wait([&] { return acked_ == c_.corpus.messages || failed_; },
                        std::chrono::duration<double>(3600), per_second("acked", acked_));
    auto seconds = (now_ns() - started) / 1e9;
    if (!done || failed_) return false;
    // Idle from now on: closed, or the node's pings (which they don't answer) would end them
    // with an error during a long wait for the index.
    for (std::size_t i = 0; i < conns_.size(); ++i)
      r_.post(i % r_.threads(), [c = conns_[i]] { c->close(); });
    rep.figure("load acked msgs/s", c_.corpus.messages / seconds)
        .figure("load seconds", seconds, "s")
        .figure("load retries", static_cast<double>(retries_.load()));
    return true;
  }

  void fill(connection& c) {
    auto& l = loaders_[c.index()];
    auto allowed = static_cast<std::size_t>(static_cast<double>(now_ns() - load_started_ns_) / 1e9 *
                                            per_connection_rate_) +
                   c_.window;
    while (l.in_flight < c_.window && l.next < l.sends.size() && l.next < allowed)
      send(c, l.next++);
    // Ahead of its rate with nothing in flight (no ack will call fill): wait a millisecond.
    if (l.in_flight == 0 && l.next < l.sends.size() && !l.paced) {
      l.paced = true;
      auto timer = std::make_shared<asio::steady_timer>(r_.ioc(c.index() % r_.threads()),
                                                        std::chrono::milliseconds(1));
      timer->async_wait([this, &c, &l, timer](boost::system::error_code ec) {
        l.paced = false;
        if (!ec) fill(c);
      });
    }
  }

  void send(connection& c, std::size_t i) {
    auto& l = loaders_[c.index()];
    l.sent_ns[i] = now_ns();
    l.in_flight += 1;
    c.send(l.sends[i]);
  }

  void on_loader_message(connection& c, std::string_view json) {
    auto t = c.index() % r_.threads();
    auto& l = loaders_[c.index()];
    auto id = json_int(json, R"("id":)");
    if (id < 0 || static_cast<std::size_t>(id) >= l.sends.size()) return;
    auto i = static_cast<std::size_t>(id);
    if (json.starts_with(R"({"op":"ack")")) {
      auto& st = r_.thread_stats(t);
      st.acked += 1;
      st.ack_us.record(static_cast<std::uint64_t>(now_ns() - l.sent_ns[i]) / 1000);
      l.in_flight -= 1;
      l.acked += 1;
      acked_.fetch_add(1, std::memory_order_relaxed);
      return fill(c);
    }
    if (!json.starts_with(R"({"op":"error")")) return;
    auto code = json_str(json, R"("code":)");
    l.in_flight -= 1;
    if (code != "rate_limited" && code != "unavailable") {
      r_.error(t, code);
      failed_ = true;
      return;
    }
    // Faster than the node's per-connection rate limit, or the room's shard is moving: that
    // message was not appended, so it goes again after a pause (and counts as a retry).
    retries_.fetch_add(1, std::memory_order_relaxed);
    auto timer = std::make_shared<asio::steady_timer>(r_.ioc(t), std::chrono::milliseconds(50));
    timer->async_wait([this, &c, i, timer](boost::system::error_code ec) {
      if (!ec) send(c, i);
    });
  }

  // -- waiting for the index ----------------------------------------------------------------

  bool wait_index(report& rep) {
    auto& o = r_.opts();
    static constexpr std::string_view applied_series =
        R"(kaiwa_projection_events_applied_total{projection="search"})";
    static constexpr std::string_view pending_series =
        R"(kaiwa_projection_pending_events{projection="search"})";
    static constexpr std::string_view live_series = R"(kaiwa_projection_live{projection="search"})";
    struct sample {
      std::int64_t at_ns;
      double applied, pending;
      bool live;
    };
    auto take = [&]() -> std::optional<sample> {
      auto body = http_get(o.admin, "/metrics");
      if (!body) return std::nullopt;
      auto applied = metric(*body, applied_series), pending = metric(*body, pending_series);
      if (!applied || !pending) return std::nullopt;
      return sample{now_ns(), *applied, *pending, metric(*body, live_series).value_or(1) == 1};
    };
    auto first = take();
    if (!first) {
      fmt::print(stderr,
                 "bench: the node has no search projection metrics ({}): not waiting for the "
                 "index\n",
                 applied_series);
      return true;
    }
    // Caught up: live (answering queries), nothing pending and at least every message applied
    // (a node started on an offline-loaded dir applies them all in its catch-up; `created`
    // events count too). A node already live with nothing pending at the first look was started
    // on an index that is whole (it would be catching up otherwise): no wait.
    auto target =
        first->live && first->pending == 0 ? 0.0 : static_cast<double>(c_.corpus.messages);
    auto last = *first;
    bool done = r_.wait(
        [&] {
          // Twice a second: rendering the metrics costs the node CPU it would index with.
          if (now_ns() - last.at_ns >= 500'000'000)
            if (auto s = take()) last = *s;
          return last.live && last.pending == 0 && last.applied >= target;
        },
        std::chrono::duration<double>(c_.index_timeout_s),
        [&] { return fmt::format("indexed {:.0f}, pending {:.0f}", last.applied, last.pending); });
    if (!done) return false;
    auto seconds = (last.at_ns - first->at_ns) / 1e9;
    rep.figure("index wait seconds", seconds, "s").figure("events applied", last.applied);
    if (seconds > 0 && last.applied > first->applied)
      rep.figure("index events/s", (last.applied - first->applied) / seconds);
    return true;
  }

  // -- kaiwa's queries ----------------------------------------------------------------------

  bool query_kaiwa() {
    auto idx = loaders_.size();
    r_.connect(idx, "searcher", *this, searcher_);
    if (!r_.wait([&] { return searcher_ready_.load() || failed_.load(); }, std::chrono::seconds(30),
                 [] { return std::string("connecting"); }) ||
        failed_)
      return false;
    // One pass to warm caches (and to wait out `unavailable` while the projection finishes
    // catching up), then `rounds` measured passes; one query in flight at a time.
    total_queries_ = queries_.size() * (1 + c_.rounds);
    patience_until_ns_ = now_ns() + 30'000'000'000;
    r_.post(idx % r_.threads(), [this] { ask(); });
    bool done = r_.wait([&] { return answered_ == total_queries_ || failed_; },
                        std::chrono::duration<double>(600 + 5.0 * total_queries_),
                        per_second("queries", answered_)) &&
                !failed_;
    // Idle from now on (Groonga's turn can take minutes): closed before the node's pings,
    // which it doesn't answer, end it with an error.
    r_.post(idx % r_.threads(), [c = searcher_] { c->close(); });
    return done;
  }

  void ask() {
    auto n = answered_.load();
    sent_ns_ = now_ns();
    searcher_->send(search_request(queries_[n % queries_.size()], c_.limit, n));
  }

  void on_answer(connection& c, std::string_view json) {
    auto t = c.index() % r_.threads();
    auto n = answered_.load();
    auto q = n % queries_.size();
    bool warmup = n < queries_.size();
    if (json.starts_with(R"({"op":"error")")) {
      auto code = json_str(json, R"("code":)");
      if (warmup && code == "unavailable" && now_ns() < patience_until_ns_) {
        auto timer =
            std::make_shared<asio::steady_timer>(r_.ioc(t), std::chrono::milliseconds(200));
        timer->async_wait([this, timer](boost::system::error_code ec) {
          if (!ec) ask();
        });
        return;
      }
      r_.error(t, fmt::format("search {}", code));
    } else {
      std::uint64_t hits = 0;
      for (auto at = json.find(R"({"op":"event")"); at != std::string_view::npos;
           at = json.find(R"({"op":"event")", at + 1))
        ++hits;
      kaiwa_[q].hits = hits;
      if (!warmup)
        kaiwa_[q].latency_us.record(static_cast<std::uint64_t>(now_ns() - sent_ns_) / 1000);
    }
    answered_ += 1;
    if (answered_ < total_queries_) ask();
  }

  // -- Groonga's queries --------------------------------------------------------------------

  void query_groonga(const endpoint& server) {
    std::optional<gqtp_client> client;
    try {
      client.emplace(server);
    } catch (const std::exception& e) {
      fmt::print(stderr, "bench: can't connect to groonga: {}\n", e.what());
      groonga_errors_ += 1;
      return;
    }
    simdjson::dom::parser parser;
    std::string error;
    for (std::size_t n = 0; n < queries_.size() * (1 + c_.rounds); ++n) {
      auto& q = queries_[n % queries_.size()];
      // Without Groonga's result cache: every round repeats the queries, and kaiwa has none.
      auto command = fmt::format(
          "select --table Messages --match_columns text --query {} --sort_keys -ts --limit {} "
          "--output_columns _id,room,user,ts,text --cache no",
          groonga_quote(q.q), c_.limit);
      if (q.in_room)
        command += " --filter " + groonga_quote(fmt::format(R"(room == "{}")", filter_room));
      auto started = now_ns();
      std::optional<std::string> body;
      try {
        body = client->call(command, error);
      } catch (const std::exception& e) {
        fmt::print(stderr, "bench: groonga connection failed: {}\n", e.what());
        groonga_errors_ += 1;
        return;
      }
      auto elapsed_us = static_cast<std::uint64_t>(now_ns() - started) / 1000;
      // [[[total], [columns...], row, row, ...]]
      simdjson::dom::array rows;
      std::uint64_t total = 0;
      if (!body || parser.parse(*body).at(0).get(rows) || rows.at(0).at(0).get(total)) {
        if (++groonga_errors_ <= 3)
          fmt::print(stderr, "bench: groonga failed on {}: {}\n", q.q,
                     body ? body->substr(0, 300) : error);
        continue;
      }
      auto& result = groonga_[n % queries_.size()];
      result.hits = rows.size() - 2;
      result.total = total;
      if (n >= queries_.size()) result.latency_us.record(elapsed_us);
    }
  }

  // -- the report ---------------------------------------------------------------------------

  int summarize(report& rep, stats& st, double cpu) {
    auto& o = r_.opts();
    std::map<std::string, histogram> kaiwa_groups, groonga_groups;
    histogram kaiwa_all, groonga_all, kaiwa_by_filter[2], groonga_by_filter[2];
    std::uint64_t with_hits = 0, without_hits = 0, differ = 0;
    if (!o.quiet && c_.rounds > 0)
      fmt::print(
          stderr, "bench: {:>6} | kaiwa {:>5} {:>8} {:>8} | groonga {:>5} {:>9} {:>8} {:>8} | {}\n",
          "room", "hits", "p50 ms", "p99 ms", "hits", "matches", "p50 ms", "p99 ms", "query");
    for (std::size_t i = 0; i < queries_.size(); ++i) {
      auto& q = queries_[i];
      auto& k = kaiwa_[i];
      auto& g = groonga_[i];
      kaiwa_groups[group_name(q)].merge(k.latency_us);
      kaiwa_all.merge(k.latency_us);
      kaiwa_by_filter[q.in_room].merge(k.latency_us);
      (k.hits ? with_hits : without_hits) += 1;
      if (c_.groonga) {
        groonga_groups[group_name(q)].merge(g.latency_us);
        groonga_all.merge(g.latency_us);
        groonga_by_filter[q.in_room].merge(g.latency_us);
        differ += k.hits != g.hits;
      }
      if (!o.quiet && c_.rounds > 0)
        fmt::print(stderr,
                   "bench: {:>6} |       {:>5} {:>8.2f} {:>8.2f} |         {:>5} {:>9} {:>8.2f} "
                   "{:>8.2f} | {}\n",
                   q.in_room ? filter_room : "", k.hits, k.latency_us.quantile(0.5) / 1000.0,
                   k.latency_us.quantile(0.99) / 1000.0, g.hits, g.total,
                   g.latency_us.quantile(0.5) / 1000.0, g.latency_us.quantile(0.99) / 1000.0, q.q);
    }
    if (c_.rounds > 0)
      rep.figure("queries with hits", static_cast<double>(with_hits))
          .figure("queries without hits", static_cast<double>(without_hits));
    if (c_.groonga && c_.rounds > 0)
      rep.figure("hit counts differing from groonga", static_cast<double>(differ))
          .figure("groonga errors", static_cast<double>(groonga_errors_));
    rep.figure("bench cpu %", cpu);
    if (st.acked) rep.latency("load ack", st.ack_us);
    if (c_.rounds > 0) {
      rep.latency("kaiwa search", kaiwa_all)
          .latency("kaiwa search, no room", kaiwa_by_filter[0])
          .latency("kaiwa search, room", kaiwa_by_filter[1]);
      for (auto& [name, h] : kaiwa_groups) rep.latency("kaiwa search " + name, h);
    }
    if (c_.groonga && c_.rounds > 0) {
      rep.latency("groonga search", groonga_all)
          .latency("groonga search, no room", groonga_by_filter[0])
          .latency("groonga search, room", groonga_by_filter[1]);
      for (auto& [name, h] : groonga_groups) rep.latency("groonga search " + name, h);
    }
    rep.errors(st.errors).print(o.json);
    return st.errors.empty() && (with_hits > 0 || c_.rounds == 0) && groonga_errors_ == 0 ? 0 : 1;
  }

  runner& r_;
  search_config c_;
  std::vector<search_query> queries_;
  std::vector<query_result> kaiwa_, groonga_;
  std::vector<loader> loaders_;
  std::vector<std::shared_ptr<connection>> conns_;
  std::shared_ptr<connection> searcher_;
  std::atomic<std::uint64_t> acked_{0}, retries_{0}, answered_{0};
  std::uint64_t total_queries_ = 0;
  static constexpr double max_rate_per_connection = 9'000;
  double per_connection_rate_ = max_rate_per_connection;  // sends/s, set before loading
  std::int64_t load_started_ns_ = 0;
  std::int64_t sent_ns_ = 0;  // the searcher's query in flight (its thread only)
  // Until then the warm-up pass asks again when the projection answers `unavailable` (still
  // catching up or rebuilding).
  std::int64_t patience_until_ns_ = 0;
  std::uint64_t groonga_errors_ = 0;
  std::atomic<bool> searcher_ready_{false}, failed_{false};
};

/// Groonga's `load` command for the corpus, on stdout (`groonga DB < file` runs it).
int print_groonga_load(const corpus_config& c) {
  corpus gen(c);
  corpus_message m;
  std::string out = "load --table Messages\n[\n";
  bool first = true;
  while (gen.next(m)) {
    if (!first) out += ",\n";
    first = false;
    json_writer(out)
        .begin_object()
        .field("room", corpus::room_name(m.room))
        .field("user", corpus::user_name(m.user))
        .field("ts", std::int64_t{m.ts})
        .field("text", m.text)
        .end_object();
    if (out.size() > (1 << 20)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  out += "\n]\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace

int run_search(const run_options& o, const search_config& c) {
  if (c.load == "offline") return run_offline_load(c.corpus, c.data_dir, o.json);
  if (c.load == "groonga") return print_groonga_load(c.corpus);
  runner r(o);
  search_bench s(r, c);
  return s.run();
}

}  // namespace kaiwa::bench
