#include "apps/node.hpp"

#include <arpa/inet.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <simdjson.h>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <thread>
#include <tuple>
#include <utility>

#include "apps/secrets.hpp"
#include "apps/web_assets.hpp"
#include "core/admin_error.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "core/process.hpp"
#include "core/replies.hpp"
#include "core/token.hpp"
#include "core/units.hpp"
#include "read/room_list.hpp"

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

node::node(node_config cfg) : cfg_(std::move(cfg)) {
  // The pool's one thread, named as the node's own are (it showed as "kaiwa", the process).
  boost::asio::post(admin_work_, [] { name_this_thread("kaiwa-admin"); });
}

node::~node() { stop(); }

std::optional<std::string> node::start() {
  started_ = std::chrono::steady_clock::now();
  // RocksDB writes CURRENT when it creates a database: without it, the data dir is new.
  if (cfg_.rooms.cluster)
    cfg_.rooms.cluster->fresh_data =
        !std::filesystem::exists(std::filesystem::path(cfg_.journal.dir) / "CURRENT");
  auto j = storage::journal::open(cfg_.journal);
  auto pid_file = std::filesystem::path(cfg_.journal.dir) / "kaiwa.pid";
  if (!j && j.err().code == storage::errc::in_use) {
    // The node holding RocksDB's lock wrote its pid once it had it (below).
    std::ifstream in(pid_file);
    long pid = 0;
    auto who = in >> pid && pid > 0 ? "another kaiwa (pid " + std::to_string(pid) + ")"
                                    : std::string("another process");
    return "the data directory '" + cfg_.journal.dir + "' is in use by " + who +
           "; stop it first, or give this node its own --data-dir";
  }
  if (!j) return "can't open the data directory '" + cfg_.journal.dir + "': " + j.err().message;
  journal_ = std::move(j).value();
  // Only for that message: RocksDB's lock, not this file, keeps a second node out.
  std::ofstream(pid_file, std::ios::trunc) << getpid() << "\n";
  if (auto err = resume_deletions(false)) return err;
  cfg_.rooms.delete_room = [this](const room_id& room, std::function<void(bool)> done) {
    delete_room_data(room, std::move(done));
  };
  if (auto& cc = cfg_.rooms.cluster) {
    cc->staging_dir = cfg_.journal.dir + "/cluster-moves";
    cc->cluster_id_file = cfg_.journal.dir + "/etcd-cluster-id";
    cc->load = [this] {
      auto r = rooms_->stats();
      std::string out;
      json_writer(out)
          .begin_object()
          .field("connections", gateway_ ? gateway_->stats().connections : 0)
          .field("rooms_active", r.active)
          .field("events_appended", r.events_appended)
          .end_object();
      return out;
    };
    // Its shards are gone: now its clients go too, to reconnect to the other members.
    cc->drained = [this](std::chrono::milliseconds grace) { drain(grace); };
  }
  read::read_side_hooks hooks;
  hooks.owned_shards = [this] { return rooms_->owned_shards(); };
  hooks.push_local = [this](const read::notice& n) { gateway_->push_to_user(n.user, n.json); };
  if (auto& cc = cfg_.rooms.cluster) {
    hooks.ask_members = [this](std::string request, std::chrono::milliseconds timeout,
                               std::function<void(std::vector<std::string>, bool)> done) {
      rooms_->ask_members(std::move(request), timeout, std::move(done));
    };
    hooks.broadcast = [this](const read::notice& n) { rooms_->broadcast_notice(n.user, n.json); };
    cc->answer_query = [this](std::string request, std::function<void(std::string)> reply) {
      read_->answer_member(request, std::move(reply));
    };
    cc->on_notice = [this](const user_id& user, const std::string& json) {
      gateway_->push_to_user(user, json);
    };
    cc->ingested = [this](shard_t s) { read_->shard_ingested(s); };
  }
  // Everything is made before anything starts: the hooks above reach across (the cluster actor
  // calls the read side, the read side the gateway), and the projector must be registered with
  // the journal before the first commit.
  rooms_ = std::make_unique<rooms>(cfg_.rooms, *journal_);
  read_ = std::make_unique<read::read_side>(*journal_, cfg_.read, std::move(hooks));
  gateway_ = std::make_unique<net::gateway>(
      cfg_.gateway, *rooms_, *read_,
      [this](const net::http_request& r, net::http_respond respond) {
        return public_http(r, std::move(respond));
      },
      [this](const net::http_request& r, net::http_respond respond) {
        return admin_http(r, std::move(respond));
      });
  if (auto err = rooms_->start()) return err;
  if (auto err = gateway_->start()) return err;
  read_->start();
  if (auto err = resume_deletions(true)) return err;
  trimmer_ = named_thread("kaiwa-trim", [this] { trim_memory(); });
  // Rooms recover lazily on activation, so the node is ready as soon as it listens.
  ready_ = true;
  return std::nullopt;
}

void node::stop() {
  if (!gateway_) return;
  ready_ = false;
  {
    std::lock_guard lock(stop_mtx_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (trimmer_.joinable()) trimmer_.join();
  admin_work_.join();  // a drain or checkpoint under way finishes first
  gateway_->stop_accepting();
  gateway_->close_sessions();
  gateway_->wait_sessions_closed(cfg_.close_grace);
  // Room actors first (dispatch answers `unavailable` from here on), then the gateway's
  // threads, which serve admin reads of the journal (status, metrics) until they stop: only
  // then may the journal close its database.
  rooms_->stop();
  gateway_->stop();
  // Its query threads and projector read the journal; nothing calls into it any more.
  read_->stop();
  journal_->stop();
  gateway_.reset();
  read_.reset();
  rooms_.reset();
  journal_.reset();
  std::error_code ignored;
  std::filesystem::remove(std::filesystem::path(cfg_.journal.dir) / "kaiwa.pid", ignored);
}

// Room actors, sessions and their buffers are freed on many threads, into glibc's per-thread
// arenas, which give memory back to the OS only from the top of each heap: after a burst of
// rooms or connections (abuse, a reconnect storm) the freed memory stayed resident (measured:
// 22 MB at start, 141 MB after 5,000 rooms with a connection each had come and gone, 83 MB
// after a malloc_trim, of which 32 MB memtables). So after churn, and at most every 10 s, the
// heap is trimmed; malloc_trim holds each arena's lock while it walks it, which is why not on
// every passivation.
void node::trim_memory() {
  constexpr auto period = std::chrono::seconds(10);
  constexpr std::uint64_t churn = 1000;  // rooms passivated plus connections closed since the last
  auto count = [this] { return rooms_->stats().passivated + gateway_->stats().closed; };
  auto last = count();
  std::unique_lock lock(stop_mtx_);
  while (!stop_cv_.wait_for(lock, period, [this] { return stopping_; })) {
    auto now = count();
    if (now - last < churn) continue;
    last = now;
    lock.unlock();
    auto before = process_rss_bytes();
    malloc_trim(0);
    log(log_level::info, "memory_trimmed",
        {{"rss_before", before}, {"rss_after", process_rss_bytes()}});
    lock.lock();
  }
}

void node::reload() {
  if (cfg_.gateway.tls_cert.empty()) {
    log(log_level::info, "tls_reload_skipped", {{"reason", "no TLS certificate is configured"}});
  } else if (auto err = gateway_->reload_tls()) {
    log(log_level::error, "tls_reload_failed",
        {{"error", *err}, {"kept", "the previous certificate"}});
  } else {
    log(log_level::info, "tls_reloaded", {{"cert", cfg_.gateway.tls_cert}});
  }
  if (cfg_.secret_file.empty()) return;
  std::string error;
  auto keys = load_token_keys(cfg_.secret_file, error);
  if (!keys) {
    log(log_level::error, "token_keys_reload_failed",
        {{"error", error}, {"kept", "the previous keys"}});
    return;
  }
  std::string kids;
  for (auto& k : *keys) kids += (kids.empty() ? "" : ",") + k.kid;
  log(log_level::info, "token_keys_reloaded", {{"kids", kids}});
  gateway_->set_token_keys(std::move(*keys));
}

std::uint16_t node::public_port() const { return gateway_->public_port(); }
std::uint16_t node::admin_port() const { return gateway_->admin_port(); }
std::uint16_t node::cluster_port() const { return rooms_->cluster_port(); }

namespace {

net::http_reply text(int status, std::string body) {
  return {status, "text/plain; charset=utf-8", std::move(body), "no-store", "", ""};
}

net::http_reply json_reply(int status, std::string body) {
  return {status, "application/json", std::move(body) + "\n", "no-store", "", ""};
}

/// Every admin failure goes out through here, in the one shape (core/admin_error.hpp).
net::http_reply json_error(admin_errc code, std::string_view message, std::string_view hint = {}) {
  return json_reply(http_status(code), admin_error_json(code, message, hint));
}

net::http_reply wrong_method(std::string_view method, const std::string& path) {
  auto reply = json_error(admin_errc::method_not_allowed,
                          fmt::format("{} takes {}, not other methods", path, method),
                          "GET / lists the admin endpoints and their methods");
  reply.allow = method;
  return reply;
}

/// The value of `key` in the target's query string ("/path?a=1&b=2"), empty when absent.
std::string query_param(const std::string& target, std::string_view key) {
  auto q = target.find('?');
  if (q == std::string::npos) return {};
  std::string_view rest(target);
  rest.remove_prefix(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto pair = rest.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == key)
      return eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return {};
}

std::string path_of(const std::string& target) { return target.substr(0, target.find('?')); }

/// Whether the admin API answers a request with this Host header. A web page can make the
/// operator's browser reach the admin listener only under a DNS name it controls (DNS
/// rebinding), so names must be listed; IP literals and `localhost` can't be rebound. No Host
/// at all is no browser (browsers always send one).
bool admin_host_allowed(std::string_view host, const std::vector<std::string>& allowed) {
  if (host.empty()) return true;
  std::string name;
  if (host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    name = std::string(host.substr(1, close - 1));
    in6_addr v6{};
    return inet_pton(AF_INET6, name.c_str(), &v6) == 1;
  }
  name = std::string(host.substr(0, host.rfind(':')));
  for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  in_addr v4{};
  if (name == "localhost" || inet_pton(AF_INET, name.c_str(), &v4) == 1) return true;
  return std::find(allowed.begin(), allowed.end(), name) != allowed.end();
}

/// The admin API is for the CLI, scripts and scrapers, never for web pages: a request a page
/// could make the operator's browser send (a foreign Host, any Origin, a state change without
/// the Kaiwa-Admin header, which no page can add without a CORS preflight that is never
/// granted) is refused before anything else. The reply says why; nullopt lets it through.
std::optional<std::string> browser_request_refusal(const net::http_request& r,
                                                   const std::vector<std::string>& hosts) {
  if (!admin_host_allowed(r.host, hosts))
    return "the admin API answers only to IP addresses, localhost and the names in "
           "--admin-hosts; not to Host '" +
           r.host + "'";
  if (!r.origin.empty())
    return std::string("the admin API refuses requests from web pages (Origin)");
  if (r.method != "GET" && r.method != "HEAD" && r.kaiwa_admin.empty())
    return std::string("a state-changing admin request needs the header 'Kaiwa-Admin: 1'");
  return std::nullopt;
}

/// 202 for a drain: which node, whether its shards moved away first (a cluster member), and when
/// its sessions close.
net::http_reply drain_accepted(const std::string& node, bool shards_moved,
                               std::chrono::milliseconds grace) {
  std::string body;
  json_writer(body)
      .begin_object()
      .field("draining", true)
      .field("node", node)
      .field("shards_moved", shards_moved)
      .field("grace_ms", static_cast<std::int64_t>(grace.count()))
      .end_object();
  return json_reply(202, std::move(body));
}

/// Responds now and tells the gateway the path was handled.
bool answer(const net::http_respond& respond, net::http_reply reply) {
  respond(std::move(reply));
  return true;
}

/// A room's reply to an admin command as the admin API's answer: the reply's fields without the
/// protocol's `op` and `id` (plus `node`, the node answering, when the room didn't say: a node
/// outside a cluster), or a protocol error in the admin error shape.
net::http_reply admin_room_reply(std::string_view payload, const std::string& node_id) {
  simdjson::dom::parser p;
  simdjson::dom::object reply;
  std::string_view op;
  if (p.parse(payload.data(), payload.size()).get(reply) || reply["op"].get(op))
    return json_error(admin_errc::internal, "the room's reply is not a JSON object");
  if (op == "error") {
    std::string_view code, message;
    if (reply["code"].get(code)) code = "internal";
    if (reply["message"].get(message)) message = "the room failed";
    auto c = code == "not_found"     ? admin_errc::not_found
             : code == "unavailable" ? admin_errc::unavailable
             : code == "timeout"     ? admin_errc::timeout
             : code == "bad_request" ? admin_errc::bad_request
             : code == "archived"    ? admin_errc::conflict
                                     : admin_errc::internal;
    return json_error(c, message);
  }
  std::string body;
  json_writer w(body);
  w.begin_object();
  bool has_node = false;
  for (auto [key, value] : reply) {
    if (key == "op" || key == "id") continue;
    has_node = has_node || key == "node";
    w.key(key).raw(simdjson::minify(value));
  }
  if (!has_node) w.field("node", node_id);
  w.end_object();
  return json_reply(200, std::move(body));
}

/// The admin API's stand-in for a client connection: a room's reply to an admin command
/// becomes the HTTP response. Rooms may call it from any thread; it answers once.
class admin_link : public client_link {
 public:
  admin_link(net::http_respond respond, std::string node_id)
      : respond_(std::move(respond)), node_id_(std::move(node_id)) {}

  void post(std::function<void()> fn) override { fn(); }
  const void* lane() const noexcept override { return this; }
  void push(const frame_ptr&) override {}
  void subscription_ended(const room_id&, std::string_view) override {}
  void subscription_lost(const room_id&) override {}
  void reply(const frame_ptr& f) override {
    std::lock_guard lock(mtx_);
    if (!respond_) return;
    std::exchange(respond_, nullptr)(admin_room_reply(f->payload(), node_id_));
  }

 private:
  std::mutex mtx_;
  net::http_respond respond_;
  const std::string node_id_;
};

}  // namespace

bool node::public_http(const net::http_request& r, const net::http_respond& respond) const {
  auto path = path_of(r.target);
  if (r.method != "GET" && r.method != "HEAD") {
    auto reply = text(405, "method not allowed\n");
    reply.allow = "GET, HEAD";
    return answer(respond, std::move(reply));
  }
  if (path == "/healthz") return answer(respond, text(200, "ok\n"));
  if (path == "/readyz")
    return answer(respond, ready_ && rooms_->ready() && journal_->writable()
                               ? text(200, "ready\n")
                               : text(503, "not ready\n"));
  if (auto* asset = find_web_asset(path)) {
    // Revalidated on every use (no-cache) and answered 304 while unchanged: an upgraded node
    // never serves a stale client, and an unchanged one costs a round trip, no bytes.
    if (r.if_none_match == asset->etag)
      return answer(respond, {304, std::string(asset->content_type), "", "no-cache",
                              std::string(asset->etag), ""});
    return answer(respond, {200, std::string(asset->content_type),
                            r.method == "HEAD" ? "" : std::string(asset->body), "no-cache",
                            std::string(asset->etag), ""});
  }
  return false;
}

bool node::admin_http(const net::http_request& r, const net::http_respond& respond) {
  auto path = path_of(r.target);
  if (path == "/healthz" || path == "/readyz") return public_http(r, respond);
  if (auto refusal = browser_request_refusal(r, cfg_.admin_hosts))
    return answer(respond, json_error(admin_errc::forbidden, *refusal));
  if (!cfg_.admin_token.empty() && !secrets_equal(r.authorization, "Bearer " + cfg_.admin_token))
    return answer(respond,
                  json_error(admin_errc::unauthorized,
                             r.authorization.empty() ? "this node's admin API needs an admin token"
                                                     : "the admin token is not this node's",
                             "kaiwa: --admin-token-file FILE or KAIWA_ADMIN_TOKEN; HTTP: "
                             "'Authorization: Bearer <admin token>'"));
  // A known path asked with another method is a 405 that names the right one; only paths
  // no endpoint has are 404.
  for (auto get_only : {"/", "/admin/v1/status", "/metrics", "/admin/v1/hot-rooms"})
    if (path == get_only && r.method != "GET") return answer(respond, wrong_method("GET", path));
  if (path == "/")
    // The start-up banner prints this listener's URL: what a newcomer opens first.
    return answer(respond, text(200, R"(kaiwa admin API (docs/operations.md, "Admin API")
GET  /admin/v1/status                     the node: connections, rooms, journal, cluster
GET  /admin/v1/rooms?limit=N&after=C      the rooms this node holds, paged
GET  /admin/v1/users?limit=N&after=U      the users seen in them, paged
GET  /admin/v1/rooms/{room}               one room: head, owner, members, subscribers
DELETE /admin/v1/rooms/{room}             delete the room, its history and read models
POST /admin/v1/rooms/{room}/archive       make the room read-only (and .../unarchive)
POST /admin/v1/snapshot/{room}            write the room's snapshot now
GET  /admin/v1/hot-rooms                  the busiest rooms of the last second
POST /admin/v1/checkpoint                 a consistent copy of the data dir (backup)
POST /admin/v1/drain?grace=30s[&node=N]   move shards away, close sessions with 4010
GET  /admin/v1/cluster                    members, coordinator, moves
GET  /admin/v1/shards                     the shard map
POST /admin/v1/move?shard=S&to=N          move one shard
POST /admin/v1/cluster/remove?node=N      re-create a gone member's replicas (with etcd)
GET  /admin/v1/projections                read models: state, lag, progress
POST /admin/v1/projections/{name}/rebuild rebuild a read model from the log
GET  /metrics                             Prometheus metrics
GET  /healthz, /readyz                    liveness, readiness
POST requests need the header Kaiwa-Admin: 1; with an admin token, every request needs
Authorization: Bearer <token>. The kaiwa CLI does both (kaiwa status, kaiwa top, ...).
)"));
  if (path == "/admin/v1/status") return answer(respond, json_reply(200, status_json()));
  if (path == "/metrics")
    return answer(respond, {200, "text/plain; version=0.0.4", metrics_text(), "no-store", "", ""});
  if (path == "/admin/v1/cluster" || path == "/admin/v1/shards") {
    if (r.method != "GET") return answer(respond, wrong_method("GET", path));
    cluster_request q;
    q.what = path == "/admin/v1/cluster" ? cluster_request::kind::members
                                         : cluster_request::kind::shards;
    return cluster_call(std::move(q), respond, 200);
  }
  if (path == "/admin/v1/move") {
    if (r.method != "POST") return answer(respond, wrong_method("POST", path));
    cluster_request q;
    q.what = cluster_request::kind::move;
    q.node = query_param(r.target, "to");
    auto shard = query_param(r.target, "shard");
    char* end = nullptr;
    auto n = std::strtoul(shard.c_str(), &end, 10);
    if (shard.empty() || *end || n >= journal_->shards())
      return answer(respond,
                    json_error(admin_errc::bad_request, "'shard' must be 0 to " +
                                                            std::to_string(journal_->shards() - 1) +
                                                            ", not '" + shard + "'"));
    if (!valid_name(q.node))
      return answer(respond, json_error(admin_errc::bad_request, "'to' must name a member"));
    q.shard = static_cast<shard_t>(n);
    return cluster_call(std::move(q), respond, 200);
  }
  if (path == "/admin/v1/cluster/remove") {
    // With etcd: a member that is gone for good has its replicas re-created elsewhere.
    if (r.method != "POST") return answer(respond, wrong_method("POST", path));
    cluster_request q;
    q.what = cluster_request::kind::remove;
    q.node = query_param(r.target, "node");
    if (!valid_name(q.node))
      return answer(respond, json_error(admin_errc::bad_request, "'node' must name a member"));
    return cluster_call(std::move(q), respond, 200);
  }
  if (path == "/admin/v1/drain") {
    if (r.method != "POST") return answer(respond, wrong_method("POST", path));
    auto grace_s = query_param(r.target, "grace");
    auto grace =
        grace_s.empty() ? std::optional(std::chrono::milliseconds(0)) : parse_duration(grace_s);
    if (!grace || *grace > std::chrono::hours(1))
      return answer(respond, json_error(admin_errc::bad_request,
                                        "'grace' must be a duration of 0 to 1h (e.g. 30s), not '" +
                                            grace_s + "'"));
    auto grace_ms = *grace;
    if (cfg_.rooms.cluster) {
      // The node's shards move to the other members first; the coordinator then tells the
      // node, which drains its sessions (cfg.drained).
      cluster_request q;
      q.what = cluster_request::kind::drain;
      q.node = query_param(r.target, "node");
      if (q.node.empty()) q.node = cfg_.gateway.node_id;
      if (!valid_name(q.node))
        return answer(respond, json_error(admin_errc::bad_request, "'node' must name a member"));
      q.grace = grace_ms;
      auto node = q.node;
      rooms_->cluster_admin(std::move(q), [respond, node, grace_ms](int status, std::string body) {
        respond(status == 200 ? drain_accepted(node, true, grace_ms)
                              : json_reply(status, std::move(body)));
      });
      return true;
    }
    if (!query_param(r.target, "node").empty())
      return answer(respond,
                    json_error(admin_errc::bad_request, "this node is not a cluster member",
                               "drain it without naming a node"));
    drain(grace_ms);
    return answer(respond, drain_accepted(cfg_.gateway.node_id, false, grace_ms));
  }
  if (path == "/admin/v1/rooms" || path == "/admin/v1/users") {
    if (r.method != "GET") return answer(respond, wrong_method("GET", path));
    return answer(respond, path == "/admin/v1/rooms" ? rooms_json(r) : users_json(r));
  }
  // A room's commands, run by its actor wherever it lives: /admin/v1/rooms/{room} (GET, DELETE),
  // /admin/v1/rooms/{room}/archive and /unarchive (POST), /admin/v1/snapshot/{room} (POST).
  for (std::string_view prefix : {"/admin/v1/rooms/", "/admin/v1/snapshot/"}) {
    std::string_view p(path);
    if (!p.starts_with(prefix)) continue;
    p.remove_prefix(prefix.size());
    // Names have no '/': what follows the first one is the action.
    auto slash = p.find('/');
    auto room = std::string(p.substr(0, slash));
    auto action = slash == std::string_view::npos ? std::string_view() : p.substr(slash);
    bool rooms_path = prefix == "/admin/v1/rooms/";
    std::optional<room_op> op;
    std::string_view allowed = "POST";
    if (!rooms_path && action.empty()) {
      if (r.method == "POST") op = room_op::snapshot;
    } else if (rooms_path && action.empty()) {
      allowed = "GET or DELETE";
      if (r.method == "GET") op = room_op::info;
      if (r.method == "DELETE") op = room_op::destroy;
    } else if (rooms_path && (action == "/archive" || action == "/unarchive")) {
      if (r.method == "POST") op = action == "/archive" ? room_op::archive : room_op::unarchive;
    } else {
      break;  // no such endpoint
    }
    if (!op) return answer(respond, wrong_method(allowed, path));
    if (!valid_name(room))
      return answer(respond,
                    json_error(admin_errc::bad_request, "'" + room + "' is not a room name",
                               "a room name is 1 to 128 chars of [A-Za-z0-9_.:@-]"));
    command c;
    c.op = *op;
    c.room = room_id{room};
    c.user = user_id{"admin"};
    c.id = R"("admin")";  // a request id, so that a room on another node is answered for
    c.link = std::make_shared<admin_link>(respond, cfg_.gateway.node_id);
    rooms_->dispatch(std::move(c));
    return true;
  }
  if (path == "/admin/v1/hot-rooms") {
    std::string body;
    json_writer w(body);
    w.begin_object().key("rooms").begin_array();
    for (auto& h : journal_->hot_rooms(20))
      w.begin_object().field("room", h.room).field("events_per_s", h.events).end_object();
    w.end_array().end_object();
    return answer(respond, json_reply(200, std::move(body)));
  }
  if (path == "/admin/v1/projections") {
    if (r.method != "GET") return answer(respond, wrong_method("GET", path));
    return answer(respond, projections_json());
  }
  if (std::string_view p(path);
      p.starts_with("/admin/v1/projections/") && p.ends_with("/rebuild")) {
    if (r.method != "POST") return answer(respond, wrong_method("POST", path));
    // The projector's thread drops the family and rebuilds; this only asks it to.
    return answer(respond, rebuild(p.substr(22, p.size() - 22 - 8)));
  }
  if (path == "/admin/v1/checkpoint") {
    if (r.method != "POST") return answer(respond, wrong_method("POST", path));
    // RocksDB flushes and links files: slow enough to keep off the I/O lane.
    boost::asio::post(admin_work_, [this, respond] { respond(checkpoint()); });
    return true;
  }
  return answer(respond, json_error(admin_errc::not_found, "no admin endpoint " + path,
                                    "GET / lists the admin endpoints"));
}

bool node::cluster_call(cluster_request q, const net::http_respond& respond, int ok_status) {
  rooms_->cluster_admin(std::move(q), [respond, ok_status](int status, std::string body) {
    respond(json_reply(status == 200 ? ok_status : status, std::move(body)));
  });
  return true;
}

void node::drain(std::chrono::milliseconds grace) {
  if (draining_.exchange(true)) return;
  ready_ = false;
  gateway_->refuse_sessions();
  boost::asio::post(admin_work_, [this, grace] {
    // The grace period lets load balancers see /readyz fail before clients are moved; a stop
    // cuts it short.
    std::unique_lock lock(stop_mtx_);
    stop_cv_.wait_for(lock, grace, [this] { return stopping_; });
    gateway_->close_sessions();
  });
}

net::http_reply node::checkpoint() {
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto dir = std::filesystem::absolute(cfg_.journal.dir).lexically_normal().string();
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  dir += ".checkpoint-" + std::to_string(now);
  auto info = journal_->checkpoint(dir);
  if (!info) return json_error(admin_errc::internal, "checkpoint failed: " + info.err().message);
  std::string body;
  json_writer(body)
      .begin_object()
      .field("dir", dir)
      .field("files", info->files)
      .field("bytes", info->bytes)
      .end_object();
  return json_reply(200, std::move(body));
}

net::http_reply node::projections_json() const {
  std::string body;
  json_writer w(body);
  w.begin_object().field("enabled", read_->projections_enabled());
  w.key("projections").begin_array();
  for (auto& p : read_->stats())
    w.begin_object()
        .field("name", p.name)
        .field("state", read::to_string(p.state))
        .key("progress")
        .raw(fmt::format("{:.4f}", p.progress))
        .field("rooms_done", p.rooms_done)
        .field("rooms_total", p.rooms_total)
        .field("events_done", p.events_done)
        .field("events_total", p.events_total)
        .field("pending", p.pending)
        .key("lag_seconds")
        .raw(fmt::format("{:.3f}", p.lag_seconds))
        .field("applied", p.applied)
        .end_object();
  w.end_array().end_object();
  return json_reply(200, std::move(body));
}

net::http_reply node::rebuild(std::string_view name) {
  if (!read_->projections_enabled())
    return json_error(admin_errc::conflict,
                      "the read models are off on this node (--projections=off)");
  auto known = false;
  for (auto& p : read_->stats()) known = known || p.name == name;
  if (!known) {
    std::string names;
    for (auto& p : read_->stats()) names += (names.empty() ? "" : ", ") + p.name;
    return json_error(admin_errc::not_found, "no projection '" + std::string(name) + "'",
                      "the projections are " + names);
  };
  if (auto err = read_->rebuild(name)) return json_error(admin_errc::conflict, *err);
  std::string body;
  json_writer(body).begin_object().field("rebuilding", name).end_object();
  return json_reply(202, std::move(body));
}

// -- rooms and users -------------------------------------------------------------------------

namespace {

constexpr std::size_t default_list_limit = 100;
constexpr std::size_t max_list_limit = 1000;

/// `limit` of a listing: 1 to max_list_limit, default_list_limit when absent; nullopt when bad.
std::optional<std::size_t> list_limit(const std::string& target) {
  auto v = query_param(target, "limit");
  if (v.empty()) return default_list_limit;
  std::size_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc{} || end != v.data() + v.size() || n < 1 || n > max_list_limit)
    return std::nullopt;
  return n;
}

std::string iso_time(millis_t ms) {
  using namespace std::chrono;
  auto t = system_clock::time_point(milliseconds(ms));
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(system_clock::to_time_t(t)),
                     ms % 1000);
}

/// Why a listing can't be answered from the rooms projection now, nullopt when it can.
std::optional<std::string> rooms_model_unavailable(const read::read_side& read) {
  if (!read.projections_enabled())
    return "listings come from the read models, which are off on this node (--projections)";
  for (auto& p : read.stats())
    if (p.name == "rooms" && p.state != read::projection_state::live)
      return fmt::format("the rooms projection is {} ({:.0f}%): retry in a moment",
                         read::to_string(p.state), p.progress * 100);
  return std::nullopt;
}

}  // namespace

net::http_reply node::rooms_json(const net::http_request& r) const {
  auto limit = list_limit(r.target);
  if (!limit) return json_error(admin_errc::bad_request, "'limit' must be a number from 1 to 1000");
  // The cursor is `shard:room`, the last room of the previous page (rooms are listed in shard,
  // then name, order). Opaque to callers; checked like any input.
  std::optional<std::pair<shard_t, std::string>> after;
  if (auto a = query_param(r.target, "after"); !a.empty()) {
    auto colon = a.find(':');
    unsigned shard = 0;
    auto digits = std::string_view(a).substr(0, colon);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), shard);
    auto room = colon == std::string::npos ? std::string() : a.substr(colon + 1);
    if (colon == std::string::npos || ec != std::errc{} || end != digits.data() + digits.size() ||
        !valid_name(room) || shard != shard_of(room, journal_->shards()))
      return json_error(admin_errc::bad_request, "'after' is not a cursor of this listing",
                        "pass the 'next' of the previous page as it came");
    after.emplace(static_cast<shard_t>(shard), std::move(room));
  }
  if (auto why = rooms_model_unavailable(*read_)) return json_error(admin_errc::unavailable, *why);
  auto rows = read_->room_list_model().list_rooms(rooms_->owned_shards(), after, *limit + 1);
  if (!rows) return json_error(admin_errc::internal, "can't list the rooms: " + rows.err().message);
  bool more = rows->size() > *limit;
  if (more) rows->pop_back();
  std::string body;
  json_writer w(body);
  w.begin_object().field("node", cfg_.gateway.node_id).key("rooms").begin_array();
  for (auto& row : *rows) {
    // Archived is the room's own state (its meta record), not the read model's.
    bool archived = false;
    if (auto m = journal_->room_meta(room_id{row.room}); m && *m) {
      simdjson::dom::parser parser;
      bool a = false;
      if (!parser.parse(**m)["archived"].get(a)) archived = a;
    }
    w.begin_object()
        .field("room", row.room)
        .field("head", row.head)
        .field("last_activity_ms", row.ts)
        .field("last_activity", iso_time(row.ts))
        .field("members", row.members)
        .field("private", row.is_private)
        .field("archived", archived)
        .field("topic", row.topic)
        .field("owner", row.owner)
        .field("owner_node", cfg_.gateway.node_id)
        .field("shard", std::uint64_t{row.shard})
        .end_object();
  }
  w.end_array();
  if (more)
    w.field("next", fmt::format("{}:{}", rows->back().shard, rows->back().room));
  else
    w.key("next").raw("null");
  w.end_object();
  return json_reply(200, std::move(body));
}

net::http_reply node::users_json(const net::http_request& r) const {
  auto limit = list_limit(r.target);
  if (!limit) return json_error(admin_errc::bad_request, "'limit' must be a number from 1 to 1000");
  std::optional<std::string> after;
  if (auto a = query_param(r.target, "after"); !a.empty()) {
    if (!valid_name(a))
      return json_error(admin_errc::bad_request, "'after' is not a user name",
                        "pass the 'next' of the previous page as it came");
    after = std::move(a);
  }
  if (auto why = rooms_model_unavailable(*read_)) return json_error(admin_errc::unavailable, *why);
  auto rows = read_->room_list_model().list_users(rooms_->owned_shards(), after, *limit);
  if (!rows) return json_error(admin_errc::internal, "can't list the users: " + rows.err().message);
  bool more = rows->size() > *limit;
  if (more) rows->resize(*limit);
  std::string body;
  json_writer w(body);
  w.begin_object().field("node", cfg_.gateway.node_id).key("users").begin_array();
  for (auto& row : *rows)
    w.begin_object().field("user", row.user).field("rooms", row.rooms).end_object();
  w.end_array();
  if (more)
    w.field("next", rows->back().user);
  else
    w.key("next").raw("null");
  w.end_object();
  return json_reply(200, std::move(body));
}

void node::delete_room_data(const room_id& room, std::function<void(bool ok)> done) {
  auto failed = [&](const storage::error& e) {
    log(log_level::error, "room_delete_failed", {{"room", room.str()}, {"error", e.message}});
    done(false);
  };
  if (auto st = journal_->mark_deleting(room); !st.ok()) return failed(st.err());
  if (auto st = journal_->delete_room_log(room); !st.ok()) return failed(st.err());
  read_->forget_room(room, [this, room, done = std::move(done)](bool ok) {
    if (ok)
      if (auto st = journal_->unmark_deleting(room); !st.ok()) {
        log(log_level::error, "room_delete_failed",
            {{"room", room.str()}, {"error", st.err().message}});
        ok = false;
      }
    done(ok);
  });
}

std::optional<std::string> node::resume_deletions(bool read_models) {
  auto marked = journal_->rooms_being_deleted();
  if (!marked) return "can't read the rooms being deleted: " + marked.err().message;
  for (auto& room : *marked) {
    if (!read_models) {
      log(log_level::warn, "room_delete_resumed", {{"room", room.str()}});
      if (auto st = journal_->delete_room_log(room); !st.ok())
        return "can't finish deleting room " + room.str() + ": " + st.err().message;
      continue;
    }
    // Its read models go on the projector's thread; the mark stays until they are gone.
    read_->forget_room(room, [this, room](bool ok) {
      if (ok && journal_->unmark_deleting(room).ok())
        log(log_level::info, "room_deleted", {{"room", room.str()}, {"resumed", true}});
    });
  }
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
      .field("rooms_on_disk", journal_->disk().rooms)
      .field("journal_bytes", journal_->disk().bytes)
      .field("durability", cfg_.journal.sync ? "sync" : "async")
      .field("pid", static_cast<std::int64_t>(getpid()))
      .field("rss_bytes", process_rss_bytes())
      .field("open_fds", process_open_fds())
      .field("fd_limit", process_fd_limit())
      .field("ready", ready_.load() && rooms_->ready() && journal_->writable())
      .field("journal_writable", journal_->writable())
      .field("draining", draining_.load())
      .field("data_dir", cfg_.journal.dir);
  if (cfg_.rooms.cluster)
    w.field("cluster_port", std::uint64_t{rooms_->cluster_port()})
        .field("shards_owned", r.shards_owned)
        .field("members_up", r.members_up)
        .field("map_epoch", r.map_epoch);
  if (cfg_.rooms.cluster && !cfg_.rooms.cluster->etcd.empty())
    w.field("metadata_lost", r.metadata_lost != 0);
  w.end_object();
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
  metric("kaiwa_room_commands_queued", "gauge",
         "Commands dispatched to rooms and not yet taken up: the room layer's mailbox backlog.",
         r.commands_queued);
  metric("kaiwa_room_commands_queued_high_water", "gauge",
         "The most commands ever queued to rooms at once (mailbox depth high-water mark).",
         r.commands_queued_high_water);
  metric("kaiwa_room_backlog_refused_total", "counter",
         "Commands answered unavailable because their room had --room-backlog commands queued.",
         r.backlog_refused);
  metric("kaiwa_room_creations_refused_total", "counter",
         "Room creations answered rate_limited (--room-creations-per-minute).",
         r.creations_refused);
  metric("kaiwa_rooms_on_disk", "gauge", "Rooms stored on this node (its shards' rooms).",
         journal_->disk().rooms);
  metric("kaiwa_journal_bytes", "gauge", "Database size: SST files plus memtables.",
         journal_->disk().bytes);
  metric("kaiwa_fanout_deliveries_total", "counter",
         "Event frames handed to subscribers' sessions.", r.deliveries);
  metric("kaiwa_journal_commits_total", "counter", "Journal group commits (one WAL write each).",
         j.commits);
  if (cfg_.rooms.cluster) {
    metric("kaiwa_cluster_shards_owned", "gauge", "Shards this node serves.", r.shards_owned);
    metric("kaiwa_cluster_members_up", "gauge",
           "Members this node is connected to, itself included.", r.members_up);
    metric("kaiwa_cluster_map_epoch", "gauge", "Epoch of this node's shard map.", r.map_epoch);
    metric("kaiwa_cluster_shards_handed_over_total", "counter",
           "Shards this node handed to another (moves out).", r.shards_handed_over);
    metric("kaiwa_cluster_shards_taken_over_total", "counter",
           "Shards this node took over from another (moves in).", r.shards_taken_over);
    if (!cfg_.rooms.cluster->etcd.empty()) {
      metric("kaiwa_cluster_shards_under_replicated", "gauge",
             "Shards led here whose in-sync replicas are fewer than their replicas (alert).",
             r.shards_under_replicated);
      metric("kaiwa_cluster_metadata_lost", "gauge",
             "1 while etcd's data doesn't describe this node's cluster (wiped, restarted empty, "
             "another cluster's): the controller moves no shard (page; docs/operations.md).",
             r.metadata_lost);
      metric("kaiwa_cluster_shards_held", "gauge",
             "Shards the controller leaves alone since etcd was restored from a backup older "
             "than their assignment (alert).",
             r.shards_held);
      metric("kaiwa_cluster_shards_under_min_insync", "gauge",
             "Shards led here with fewer in-sync replicas than --min-insync: they take no "
             "writes (page).",
             r.shards_under_min_insync);
      metric("kaiwa_replication_log_entries", "gauge",
             "Entries of the shards' replicated logs held here (bounded by "
             "--log-retention-entries per shard).",
             r.replicated_log_entries);
      metric("kaiwa_replication_log_bytes", "gauge",
             "Bytes of the shards' replicated logs held here, RocksDB's estimate (bounded by "
             "--log-retention-mib per shard).",
             r.replicated_log_bytes);
      metric("kaiwa_replication_entries_trimmed_total", "counter",
             "Replicated log entries deleted by retention.", r.replicated_entries_trimmed);
      metric("kaiwa_replication_followers_behind_log_start", "gauge",
             "Followers of shards led here whose next entry retention trimmed: they can't catch "
             "up from the log and stay out of the isr (alert).",
             r.followers_behind_log_start);
      metric("kaiwa_replication_snapshots_sent_total", "counter",
             "Shard snapshots followers behind the log's start installed from this node.",
             r.snapshots_sent);
      metric("kaiwa_replication_snapshots_installed_total", "counter",
             "Shard snapshots this node installed from a leader.", r.snapshots_installed);
      metric("kaiwa_replication_snapshots_failed_total", "counter",
             "Shard snapshot exports, transfers given up, or ingests that failed.",
             r.snapshots_failed);
    }
    metric("kaiwa_cluster_remote_commands_sent_total", "counter",
           "Commands of this node's sessions routed to the node owning the room.",
           r.remote_commands_sent);
    metric("kaiwa_cluster_remote_commands_received_total", "counter",
           "Commands of other nodes' sessions served here.", r.remote_commands_received);
  }
  metric("kaiwa_journal_write_sets_total", "counter", "Room write sets committed.", j.write_sets);
  gateway_->render_metrics(out);
  journal_->render_metrics(out);
  read_->render_metrics(out);
  out +=
      "# HELP kaiwa_errors_total Error replies sent to clients, by code.\n# TYPE "
      "kaiwa_errors_total counter\n";
  for (auto code : {errc::bad_request, errc::unauthorized, errc::forbidden, errc::not_found,
                    errc::room_exists, errc::too_large, errc::rate_limited, errc::unavailable,
                    errc::timeout, errc::archived, errc::internal})
    out +=
        fmt::format("kaiwa_errors_total{{code=\"{}\"}} {}\n", to_string(code), errors_sent(code));
  return out;
}

}  // namespace kaiwa::app
