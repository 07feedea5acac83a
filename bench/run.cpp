#include "bench/run.hpp"

#include <fmt/format.h>
#include <simdjson.h>
#include <sys/resource.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <charconv>
#include <cstdio>

namespace kaiwa::bench {

namespace asio = boost::asio;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
      .count();
}

std::int64_t json_int(std::string_view json, std::string_view key) {
  auto at = json.find(key);
  if (at == std::string_view::npos) return -1;
  std::int64_t v = -1;
  auto* start = json.data() + at + key.size();
  if (*start == '"') ++start;  // "text":"<number>:..." carries a send timestamp
  std::from_chars(start, json.data() + json.size(), v);
  return v;
}

std::string_view json_str(std::string_view json, std::string_view key) {
  auto at = json.find(key);
  if (at == std::string_view::npos) return {};
  auto start = at + key.size();
  if (start >= json.size() || json[start] != '"') return {};
  auto end = json.find('"', start + 1);
  if (end == std::string_view::npos) return {};
  return json.substr(start + 1, end - start - 1);
}

std::function<std::string()> per_second(std::string what,
                                        const std::atomic<std::uint64_t>& counter) {
  return [what = std::move(what), &counter, last = std::uint64_t{0}]() mutable {
    auto now = counter.load(std::memory_order_relaxed);
    auto line = fmt::format("{} {}/s", what, now - last);
    last = now;
    return line;
  };
}

void stats::merge(const stats& o) {
  ack_us.merge(o.ack_us);
  delivery_us.merge(o.delivery_us);
  request_us.merge(o.request_us);
  sent += o.sent;
  acked += o.acked;
  delivered += o.delivered;
  requests += o.requests;
  reconnects += o.reconnects;
  retries += o.retries;
  violations += o.violations;
  for (auto& [k, v] : o.errors) errors[k] += v;
}

bool seq_checker::observe(std::int64_t seq, std::string& problem) {
  if (last_ >= 0 && seq != last_ + 1) {
    problem = seq <= last_ ? fmt::format("seq {} after {} (duplicate or reordered)", seq, last_)
                           : fmt::format("seq {} after {} (gap)", seq, last_);
    last_ = std::max(last_, seq);
    return false;
  }
  last_ = seq;
  return true;
}

std::optional<std::string> http_get(const endpoint& server, const std::string& target) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  try {
    asio::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.expires_after(std::chrono::seconds(5));
    stream.connect(asio::ip::tcp::endpoint(asio::ip::make_address(server.host), server.port));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, server.host);
    http::write(stream, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    if (res.result() != http::status::ok) return std::nullopt;
    return std::move(res.body());
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::optional<server_status> fetch_status(const endpoint& admin) {
  auto body = http_get(admin, "/admin/v1/status");
  if (!body) return std::nullopt;
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  if (p.parse(*body).get(doc)) return std::nullopt;
  server_status s;
  if (doc["rss_bytes"].get(s.rss_bytes) || doc["open_fds"].get(s.open_fds) ||
      doc["fd_limit"].get(s.fd_limit) || doc["connections"].get(s.connections))
    return std::nullopt;
  return s;
}

static double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

runner::runner(const run_options& opts)
    : opts_(opts),
      started_(clock_type::now()),
      next_line_(started_ + std::chrono::seconds(1)),
      cpu_at_start_(cpu_seconds()) {
  if (opts.tls) {
    // Loopback only, against the node's own certificate: encrypted, not authenticated.
    tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
    tls_->set_verify_mode(asio::ssl::verify_none);
  }
  auto n = std::max<std::size_t>(1, opts.threads);
  for (std::size_t i = 0; i < n; ++i) iocs_.push_back(std::make_unique<asio::io_context>(1));
  stats_.resize(n);
  for (auto& ioc : iocs_) {
    workers_.emplace_back([&ioc = *ioc] {
      auto guard = asio::make_work_guard(ioc);
      ioc.run();
    });
  }
}

runner::~runner() {
  for (auto& ioc : iocs_) ioc->stop();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
}

void runner::post(std::size_t t, std::function<void()> fn) { asio::post(*iocs_[t], std::move(fn)); }

std::string runner::local_addr(std::size_t i) const {
  // One source address has ~60,000 ephemeral ports toward one server port.
  auto block = i / 60'000;
  return block == 0 ? std::string() : fmt::format("127.0.0.{}", 1 + block);
}

void runner::connect(std::size_t i, std::string user, connection_events& events,
                     std::shared_ptr<connection>& slot) {
  auto t = i % threads();
  slot = std::make_shared<connection>(*iocs_[t], opts_.servers[i % opts_.servers.size()],
                                      local_addr(i), std::move(user), events, i, tls_.get());
  post(t, [c = slot] { c->start(); });
}

void runner::violation(std::size_t thread, const std::string& what) {
  stats_[thread].violations += 1;
  if (printed_violations_++ < 20) fmt::print(stderr, "bench: VIOLATION {}\n", what);
}

void runner::error(std::size_t thread, std::string_view code) {
  stats_[thread].errors[std::string(code)] += 1;
}

void runner::closed(std::size_t thread, std::uint16_t code) {
  error(thread, code ? fmt::format("close {}", code) : std::string("disconnected"));
}

bool runner::wait(const std::function<bool()>& done, std::chrono::duration<double> limit,
                  const std::function<std::string()>& line) {
  auto start = clock_type::now();
  while (!done()) {
    auto now = clock_type::now();
    if (now - start >= limit) return false;
    if (now >= next_line_) {
      if (auto text = opts_.quiet ? std::string() : line(); !text.empty())
        fmt::print(stderr, "bench: {:6.1f}s {}\n",
                   std::chrono::duration<double>(now - started_).count(), text);
      while (next_line_ <= now) next_line_ += std::chrono::seconds(1);
    }
    // Polls the workers' atomic counters; the 10 ms only paces this report loop.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

stats runner::finish() {
  // Statistics are read on their own threads, after everything queued before has run.
  for (auto& ioc : iocs_) ioc->stop();
  for (auto& w : workers_) w.join();
  workers_.clear();
  stats total;
  for (auto& s : stats_) total.merge(s);
  return total;
}

int runner::give_up(std::string_view why) {
  fmt::print(stderr, "bench: {}\n", why);
  finish();
  return 1;
}

double runner::cpu_percent() const {
  auto wall = std::chrono::duration<double>(clock_type::now() - started_).count();
  return wall > 0 ? 100 * (cpu_seconds() - cpu_at_start_) / wall : 0;
}

report& report::param(const std::string& k, const std::string& v) {
  params_.emplace_back(k, v);
  return *this;
}

report& report::figure(const std::string& k, double v, const std::string& unit) {
  figures_.emplace_back(k, v, unit);
  return *this;
}

report& report::latency(const std::string& k, const histogram& h) {
  latencies_.emplace_back(k, h);
  return *this;
}

report& report::errors(const std::map<std::string, std::uint64_t>& e) {
  errors_ = e;
  return *this;
}

void report::print(bool json) const {
  static constexpr std::pair<const char*, double> qs[] = {
      {"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p99.9", 0.999}};
  if (json) {
    std::string out = fmt::format(R"({{"scenario":"{}","params":{{)", scenario_);
    for (std::size_t i = 0; i < params_.size(); ++i)
      out += fmt::format(R"({}"{}":"{}")", i ? "," : "", params_[i].first, params_[i].second);
    out += "},\"figures\":{";
    for (std::size_t i = 0; i < figures_.size(); ++i)
      out += fmt::format(R"({}"{}":{:.3f})", i ? "," : "", std::get<0>(figures_[i]),
                         std::get<1>(figures_[i]));
    out += "},\"latency_ms\":{";
    for (std::size_t i = 0; i < latencies_.size(); ++i) {
      auto& h = latencies_[i].second;
      out += fmt::format(R"({}"{}":{{"count":{})", i ? "," : "", latencies_[i].first, h.count());
      for (auto [name, q] : qs) out += fmt::format(R"(,"{}":{:.3f})", name, h.quantile(q) / 1000.0);
      out += fmt::format(R"(,"max":{:.3f}}})", h.max() / 1000.0);
    }
    out += "},\"errors\":{";
    bool first = true;
    for (auto& [k, v] : errors_) {
      out += fmt::format(R"({}"{}":{})", first ? "" : ",", k, v);
      first = false;
    }
    out += "}}";
    fmt::print("{}\n", out);
    return;
  }
  std::string p;
  for (auto& [k, v] : params_) p += fmt::format(" {}={}", k, v);
  fmt::print("scenario {}:{}\n", scenario_, p);
  for (auto& [k, v, unit] : figures_) fmt::print("  {:<28} {:>14.1f} {}\n", k, v, unit);
  for (auto& [k, h] : latencies_) {
    fmt::print("  {:<28} n={}", k + " (ms)", h.count());
    for (auto [name, q] : qs) fmt::print(" {} {:.2f}", name, h.quantile(q) / 1000.0);
    fmt::print(" max {:.2f}\n", h.max() / 1000.0);
  }
  if (errors_.empty()) {
    fmt::print("  errors                       none\n");
  } else {
    fmt::print("  errors                      ");
    for (auto& [k, v] : errors_) fmt::print(" {}={}", k, v);
    fmt::print("\n");
  }
}

}  // namespace kaiwa::bench
