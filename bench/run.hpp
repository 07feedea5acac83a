#pragma once
// What every bench scenario shares: options, worker threads with their io_contexts, the
// statistics each thread keeps and their merge, the sequence checker, the progress line and
// the final report (text or --json). Internal to bench/.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench/connection.hpp"
#include "bench/histogram.hpp"
#include "bench/scenarios.hpp"
#include "core/process.hpp"

namespace kaiwa::bench {

using clock_type = std::chrono::steady_clock;

std::int64_t now_ns();

/// Finds `"key":` in one of the server's compact JSON objects and reads the integer after it;
/// -1 when absent. The server's encoding is fixed, so a scan beats a parse on the hot path.
std::int64_t json_int(std::string_view json, std::string_view key);
/// The string value of `"key":"..."` (no unescaping); empty when absent.
std::string_view json_str(std::string_view json, std::string_view key);

/// A progress line for runner::wait, which asks for one a second: how much `counter` grew since
/// the last line, as "<what> N/s".
std::function<std::string()> per_second(std::string what,
                                        const std::atomic<std::uint64_t>& counter);

/// Statistics one worker thread keeps; merged at the end.
struct stats {
  histogram ack_us, delivery_us, request_us;
  std::uint64_t sent = 0, acked = 0, delivered = 0, requests = 0, reconnects = 0, retries = 0;
  std::uint64_t violations = 0;
  std::map<std::string, std::uint64_t> errors;  // by error or close code

  void merge(const stats& o);
};

/// Checks one subscription's events: seq strictly increasing by one, no duplicates.
class seq_checker {
 public:
  /// Returns false (and describes it in `problem`) when `seq` breaks the order.
  bool observe(std::int64_t seq, std::string& problem);
  std::int64_t last() const noexcept { return last_; }
  void reset_to(std::int64_t last) noexcept { last_ = last; }

 private:
  std::int64_t last_ = -1;
};

/// A one-shot HTTP/1.1 GET on loopback (5 s at most); the body of a 200 answer, else nullopt.
std::optional<std::string> http_get(const endpoint& server, const std::string& target);

/// Server figures from its admin API.
struct server_status {
  std::uint64_t rss_bytes = 0;
  std::uint64_t open_fds = 0;
  std::uint64_t fd_limit = 0;
  std::uint64_t connections = 0;
};
std::optional<server_status> fetch_status(const endpoint& admin);

class runner {
 public:
  explicit runner(const run_options& opts);
  ~runner();

  const run_options& opts() const noexcept { return opts_; }
  std::size_t threads() const noexcept { return iocs_.size(); }
  boost::asio::io_context& ioc(std::size_t t) { return *iocs_[t]; }
  stats& thread_stats(std::size_t t) { return stats_[t]; }

  /// Runs `fn` on worker thread `t`.
  void post(std::size_t t, std::function<void()> fn);
  /// Source address for connection `i`: 127.0.0.1 for the first 60,000, then .2, .3, ...
  std::string local_addr(std::size_t i) const;
  /// Makes connection `i` on thread i % threads, stores it in `slot`, then starts it there.
  /// Its events can come before the caller's next statement: stored before the start is posted,
  /// `slot` is what they find. Called on the thread that owns `slot` (main, or thread i's own).
  void connect(std::size_t i, std::string user, connection_events& events,
               std::shared_ptr<connection>& slot);

  /// Records a violation from any worker thread; prints the first few.
  void violation(std::size_t thread, const std::string& what);
  void error(std::size_t thread, std::string_view code);
  /// Records a connection the server ended: "close CODE", or "disconnected" without a code.
  void closed(std::size_t thread, std::uint16_t code);

  /// Waits until `done()` or `limit`, printing `line()` once a second (on one schedule for the
  /// whole run, so that short phases still report; an empty line is not printed). True if done.
  bool wait(const std::function<bool()>& done, std::chrono::duration<double> limit,
            const std::function<std::string()>& line);

  /// Stops the workers and merges their statistics.
  stats finish();
  /// Says why the run can't go on, stops the workers and returns the exit code for it (1).
  int give_up(std::string_view why);

  /// The bench process's CPU use since construction, in % of one core.
  double cpu_percent() const;

 private:
  run_options opts_;
  std::unique_ptr<boost::asio::ssl::context> tls_;  // with opts_.tls: the connections' context
  std::vector<std::unique_ptr<boost::asio::io_context>> iocs_;
  std::vector<std::thread> workers_;
  std::vector<stats> stats_;
  std::atomic<std::uint64_t> printed_violations_{0};
  clock_type::time_point started_;
  clock_type::time_point next_line_;  // when wait() prints its next progress line
  double cpu_at_start_ = 0;
};

/// The final report: named figures and latency histograms, printed as text or JSON.
class report {
 public:
  explicit report(std::string scenario) : scenario_(std::move(scenario)) {}
  report& param(const std::string& k, const std::string& v);
  report& figure(const std::string& k, double v, const std::string& unit = "");
  report& latency(const std::string& k, const histogram& h);
  report& errors(const std::map<std::string, std::uint64_t>& e);
  void print(bool json) const;

 private:
  std::string scenario_;
  std::vector<std::pair<std::string, std::string>> params_;
  std::vector<std::tuple<std::string, double, std::string>> figures_;
  std::vector<std::pair<std::string, histogram>> latencies_;
  std::map<std::string, std::uint64_t> errors_;
};

}  // namespace kaiwa::bench
