#include "apps/node.hpp"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/json.hpp"

namespace kaiwa::app {

namespace {

std::uint64_t process_rss_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

std::uint64_t process_open_fds() {
  std::error_code ec;
  std::uint64_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

std::uint64_t process_fd_limit() {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

}  // namespace

node::node(node_config cfg) : cfg_(std::move(cfg)) {}

node::~node() { stop(); }

std::optional<std::string> node::start() {
  started_ = std::chrono::steady_clock::now();
  auto j = storage::journal::open(cfg_.journal);
  if (!j) return "can't open the data directory '" + cfg_.journal.dir + "': " + j.err().message;
  journal_ = std::move(j).value();
  rooms_ = std::make_unique<rooms>(cfg_.rooms, *journal_);
  rooms_->start();
  gateway_ = std::make_unique<net::gateway>(
      cfg_.gateway, *rooms_, [this](const std::string& t) { return public_http(t); },
      [this](const std::string& t) { return admin_http(t); });
  if (auto err = gateway_->start()) return err;
  // Rooms recover lazily on activation, so the node is ready as soon as it listens.
  ready_ = true;
  return std::nullopt;
}

void node::stop() {
  if (!gateway_) return;
  ready_ = false;
  gateway_->stop_accepting();
  gateway_->close_sessions();
  gateway_->wait_sessions_closed(cfg_.close_grace);
  rooms_->stop();
  journal_->stop();
  gateway_->stop();
  gateway_.reset();
  rooms_.reset();
  journal_.reset();
}

std::uint16_t node::public_port() const { return gateway_->public_port(); }
std::uint16_t node::admin_port() const { return gateway_->admin_port(); }

std::optional<net::http_reply> node::public_http(const std::string& target) const {
  if (target == "/healthz")
    return net::http_reply{200, "text/plain; charset=utf-8", "ok\n", "no-store"};
  if (target == "/readyz")
    return ready_ ? net::http_reply{200, "text/plain; charset=utf-8", "ready\n", "no-store"}
                  : net::http_reply{503, "text/plain; charset=utf-8", "not ready\n", "no-store"};
  if (target == "/")
    return net::http_reply{200, "text/html; charset=utf-8",
                           "<!doctype html><title>kaiwa</title><p>kaiwa node " +
                               cfg_.gateway.node_id +
                               ": connect a WebSocket client to <code>/ws</code>.",
                           "no-cache"};
  return std::nullopt;
}

std::optional<net::http_reply> node::admin_http(const std::string& target) const {
  if (target == "/healthz" || target == "/readyz") return public_http(target);
  if (target == "/admin/v1/status")
    return net::http_reply{200, "application/json", status_json(), "no-store"};
  if (target == "/metrics")
    return net::http_reply{200, "text/plain; version=0.0.4", metrics_text(), "no-store"};
  return std::nullopt;
}

std::string node::status_json() const {
  auto g = gateway_->stats();
  auto r = rooms_->stats();
  auto uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  std::string out;
  json_writer w(out);
  w.begin_object()
      .field("node", cfg_.gateway.node_id)
      .field("version", cfg_.gateway.version)
      .field("uptime_s", static_cast<std::int64_t>(uptime.count()))
      .field("connections", g.connections)
      .field("rooms_active", r.active)
      .field("durability", cfg_.journal.sync ? "sync" : "async")
      .field("pid", static_cast<std::int64_t>(getpid()))
      .field("rss_bytes", process_rss_bytes())
      .field("open_fds", process_open_fds())
      .field("fd_limit", process_fd_limit())
      .field("ready", ready_.load())
      .end_object();
  out += '\n';
  return out;
}

std::string node::metrics_text() const {
  auto g = gateway_->stats();
  auto r = rooms_->stats();
  auto j = journal_->stats();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, std::uint64_t v) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{} {}\n", name, help, name, type, name, v);
  };
  metric("kaiwa_connections", "gauge", "Open WebSocket sessions.", g.connections);
  metric("kaiwa_connections_opened_total", "counter", "WebSocket sessions opened.", g.opened);
  metric("kaiwa_connections_closed_total", "counter", "WebSocket sessions closed.", g.closed);
  metric("kaiwa_frames_in_total", "counter", "Client frames received.", g.frames_in);
  metric("kaiwa_frames_out_total", "counter", "Frames written to clients.", g.frames_out);
  metric("kaiwa_slow_consumers_total", "counter", "Sessions closed as slow consumers (4009).",
         g.slow_consumers);
  metric("process_resident_memory_bytes", "gauge", "Resident memory.", process_rss_bytes());
  metric("process_open_fds", "gauge", "Open file descriptors.", process_open_fds());
  metric("process_max_fds", "gauge", "Open-files limit.", process_fd_limit());
  metric("kaiwa_rooms_active", "gauge", "Room actors running.", r.active);
  metric("kaiwa_rooms_activated_total", "counter", "Room activations.", r.activated);
  metric("kaiwa_rooms_passivated_total", "counter", "Room passivations.", r.passivated);
  metric("kaiwa_events_appended_total", "counter", "Events made durable.", r.events_appended);
  metric("kaiwa_journal_commits_total", "counter", "Journal group commits (one WAL write each).",
         j.commits);
  metric("kaiwa_journal_write_sets_total", "counter", "Room write sets committed.", j.write_sets);
  out += fmt::format(
      "# HELP kaiwa_journal_write_seconds_total Time spent in journal writes, syncs included.\n"
      "# TYPE kaiwa_journal_write_seconds_total counter\nkaiwa_journal_write_seconds_total "
      "{:.6f}\n",
      static_cast<double>(j.sync_micros) / 1e6);
  return out;
}

}  // namespace kaiwa::app
