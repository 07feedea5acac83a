#include "apps/admin_commands.hpp"

#include <fmt/format.h>
#include <signal.h>
#include <simdjson.h>
#include <unistd.h>

#include <csignal>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <thread>

#include "core/admin_error.hpp"
#include "core/json.hpp"
#include "core/units.hpp"

namespace kaiwa::app {

namespace fs = std::filesystem;

namespace {

/// Lets a command word an error reply itself (e.g. "room 'x' not found on node H:P"); nullopt
/// keeps the node's message and hint.
using describe_fn = std::function<std::optional<std::string>(const admin_error&)>;

/// One line for a reply that is not the one expected: what went wrong (the node's message, or
/// the command's wording of it) and what to do (the node's hint).
std::string describe_failure(const admin_target& t, const std::string& method,
                             const std::string& target, const admin_response& res,
                             const describe_fn& describe) {
  auto e = parse_admin_error(res.body);
  if (!e) {
    // Not the admin API's shape: an older node, or something else listening there.
    auto body = res.body.substr(0, std::min(res.body.find('\n'), std::size_t{200}));
    return fmt::format("{} {} answered HTTP {} by {} (is this a kaiwa admin listener?): {}", method,
                       target, res.status, t.address(), body);
  }
  if (describe)
    if (auto text = describe(*e)) return *text;
  if (e->code == admin_errc::unauthorized)
    return fmt::format(
        "{} (node {}): pass --admin-token-file FILE (a file holding the token) or set "
        "KAIWA_ADMIN_TOKEN",
        e->message, t.address());
  return fmt::format("{} (node {}){}", e->message, t.address(),
                     e->hint.empty() ? "" : "; " + e->hint);
}

/// Calls the admin API; the body when it answers `expect`, else an error line in `error`.
std::optional<std::string> fetch(const admin_target& t, const std::string& method,
                                 const std::string& target, int expect, std::string& error,
                                 std::chrono::seconds timeout = std::chrono::seconds(60),
                                 const describe_fn& describe = {}) {
  auto res = admin_call(t, method, target, error, timeout);
  if (!res) return std::nullopt;
  if (res->status == expect) return std::move(res->body);
  error = describe_failure(t, method, target, *res, describe);
  return std::nullopt;
}

/// fetch() that prints the error.
std::optional<std::string> call(const admin_target& t, const std::string& method,
                                const std::string& target, int expect,
                                std::chrono::seconds timeout = std::chrono::seconds(60),
                                const describe_fn& describe = {}) {
  std::string error;
  auto body = fetch(t, method, target, expect, error, timeout, describe);
  if (!body) fmt::print(stderr, "kaiwa: {}\n", error);
  return body;
}

/// Why `dir` can't be a backup's or restore's destination ("is a file, not a directory", "is not
/// empty"), or empty when it is missing or an empty directory.
std::string unusable_destination(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return {};
  if (!fs::is_directory(dir, ec)) return "is a file, not a directory";
  return fs::is_empty(dir, ec) ? std::string() : "is not empty";
}

/// Creates `dir` (and its parents) unless it exists; false, after naming it and the OS's
/// reason, when that fails.
bool make_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec) return true;
  fmt::print(stderr, "kaiwa: can't create {}: {}\n", dir.string(), ec.message());
  return false;
}

struct copied {
  std::size_t files = 0;
  std::uint64_t bytes = 0;
};

/// Copies every file of `from` into `to` (created), printing progress unless `quiet`.
std::optional<copied> copy_dir(const fs::path& from, const fs::path& to, const char* what,
                               bool quiet) {
  std::error_code ec;
  std::vector<fs::directory_entry> files;
  std::uint64_t total = 0;
  for (auto& e : fs::directory_iterator(from, ec))
    if (e.is_regular_file()) {
      files.push_back(e);
      total += e.file_size();
    }
  if (ec) {
    fmt::print(stderr, "kaiwa: can't read {}: {}\n", from.string(), ec.message());
    return std::nullopt;
  }
  if (!make_dir(to)) return std::nullopt;
  std::uint64_t done = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    auto dest = to / files[i].path().filename();
    fs::copy_file(files[i].path(), dest, ec);
    if (ec) {
      fmt::print(stderr, "kaiwa: can't write {}: {}\n", dest.string(), ec.message());
      return std::nullopt;
    }
    done += files[i].file_size();
    if (!quiet)
      fmt::print("{}: {}/{} files, {} of {}\n", what, i + 1, files.size(), format_size(done),
                 format_size(total));
  }
  return copied{files.size(), done};
}

void print_copied(const std::string& dir, const copied& c) {
  std::string out;
  json_writer(out)
      .begin_object()
      .field("dir", dir)
      .field("files", std::uint64_t{c.files})
      .field("bytes", c.bytes)
      .end_object();
  fmt::print("{}\n", out);
}

}  // namespace

namespace {

/// `body` parsed; nullopt, after saying so, when it is not JSON.
std::optional<simdjson::dom::element> parse_reply(simdjson::dom::parser& p,
                                                  const std::string& body) {
  simdjson::dom::element e;
  if (!p.parse(body).get(e)) return e;
  fmt::print(stderr, "kaiwa: the node's reply is not JSON\n");
  return std::nullopt;
}

/// A field's value for a table: sizes (`*_bytes`) and durations (`*_s`) in human units, a
/// time in epoch milliseconds (`last_activity_ms`) as how long ago, arrays joined by commas.
std::string table_value(std::string_view key, simdjson::dom::element value) {
  std::uint64_t n = 0;
  if (!value.get(n)) {
    if (key.ends_with("_bytes")) return format_size(n);
    if (key.ends_with("_s")) return format_duration(std::chrono::seconds(n));
    if (key == "last_activity_ms") {
      auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch());
      return format_duration(now - std::chrono::milliseconds(n)) + " ago";
    }
  }
  if (value.is_string()) return std::string(std::string_view(value));
  if (!value.is_array()) return simdjson::minify(value);
  std::string text;
  for (auto v : value.get_array())
    text += (text.empty() ? "" : ", ") +
            (v.is_string() ? std::string(std::string_view(v)) : simdjson::minify(v));
  return text;
}

/// Prints an admin reply: as it came with --json, else as a table of its fields.
int show(const std::optional<std::string>& body, bool json) {
  if (!body) return 1;
  if (json) {
    fmt::print("{}", *body);
    return 0;
  }
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *body);
  if (!parsed) return 1;
  simdjson::dom::object fields;
  if (parsed->get(fields)) {
    fmt::print(stderr, "kaiwa: the node's reply is not a JSON object\n");
    return 1;
  }
  for (auto [key, value] : fields) fmt::print("{:<17} {}\n", key, table_value(key, value));
  return 0;
}

}  // namespace

std::optional<std::string> admin_request(const admin_target& t, const std::string& method,
                                         const std::string& target, int expect) {
  return call(t, method, target, expect);
}

int status_command(const admin_target& t, bool json) {
  return show(call(t, "GET", "/admin/v1/status", 200), json);
}

int room_command(const admin_target& t, const std::string& room, bool json) {
  auto body =
      call(t, "GET", "/admin/v1/rooms/" + room, 200, std::chrono::seconds(60),
           [&](const admin_error& e) -> std::optional<std::string> {
             if (e.code != admin_errc::not_found) return std::nullopt;
             return fmt::format("room '{}' not found on node {} (no such room)", room, t.address());
           });
  if (!body || json) return show(body, json);
  // The table says first where the room lives: its shard, and the node serving it.
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *body);
  if (!parsed) return 1;
  std::uint64_t shard = 0;
  std::string_view node;
  if (!(*parsed)["shard"].get(shard) && !(*parsed)["node"].get(node))
    fmt::print("room '{}' is in shard {}, served by node {}\n", room, shard, node);
  return show(body, false);
}

namespace {

/// SIGINT or SIGTERM arrived while `kaiwa top` runs: it restores the terminal and exits.
volatile std::sig_atomic_t top_interrupted = 0;

/// Sleeps `d`, waking early when interrupted; false if interrupted.
bool sleep_unless_interrupted(std::chrono::milliseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (!top_interrupted && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  return !top_interrupted;
}

/// The full-screen mode of `kaiwa top` on a terminal, like top(1): the alternate screen, the
/// cursor hidden, each frame drawn over the last from the top-left corner. Restored by the
/// destructor, which runs on every exit of top_command, Ctrl-C included (the handler only sets
/// a flag the loop watches).
class full_screen {
 public:
  explicit full_screen(bool on) : on_(on) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { top_interrupted = 1; };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
    if (on_) write("\x1b[?1049h\x1b[?25l");
  }
  ~full_screen() {
    if (on_) write("\x1b[?25h\x1b[?1049l");
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  full_screen(const full_screen&) = delete;
  full_screen& operator=(const full_screen&) = delete;

  /// Shows `lines`: over the last frame on a terminal, else after it with a blank line between.
  void frame(const std::vector<std::string>& lines) {
    std::string out = on_ ? "\x1b[H" : (first_ ? "" : "\n");
    for (auto& l : lines) out += l + (on_ ? "\x1b[K\n" : "\n");
    if (on_) out += "\x1b[J";  // the rest of the screen: what a longer last frame left
    write(out);
    first_ = false;
  }

 private:
  static void write(std::string_view s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  }
  bool on_;
  bool first_ = true;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

using metrics = std::map<std::string, double, std::less<>>;

/// The samples of a Prometheus text page (comments and unparsable lines skipped).
metrics parse_metrics(const std::string& body) {
  metrics m;
  std::istringstream in(body);
  std::string line;
  while (std::getline(in, line)) {
    auto sp = line.rfind(' ');
    if (line.empty() || line[0] == '#' || sp == std::string::npos) continue;
    char* end = nullptr;
    double v = std::strtod(line.c_str() + sp + 1, &end);
    if (end != line.c_str() + sp + 1) m[line.substr(0, sp)] = v;
  }
  return m;
}

}  // namespace

int top_command(const admin_target& t, int iterations, bool json) {
  using clock = std::chrono::steady_clock;
  // A refresh must not hang on a node that stopped answering: it retries instead.
  constexpr std::chrono::seconds call_timeout{3};
  constexpr std::chrono::seconds period{1};
  top_interrupted = 0;
  full_screen screen(!json && isatty(STDOUT_FILENO));
  std::optional<metrics> prev;
  clock::time_point prev_at;
  auto header = [&] {
    auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&now, &tm);
    return fmt::format("kaiwa top  node {}  {:02}:{:02}:{:02} UTC  every {} s  (Ctrl-C quits)",
                       t.address(), tm.tm_hour, tm.tm_min, tm.tm_sec, period.count());
  };
  // A refresh is a frame shown: figures, or that the node is unreachable. The first sample
  // (and the first after an outage) is not one: rates need two.
  bool last_ok = false, first = true;
  for (int shown = 0; iterations == 0 || shown < iterations;) {
    if (!std::exchange(first, false) && !sleep_unless_interrupted(period)) break;
    std::string error;
    auto body = fetch(t, "GET", "/metrics", 200, error, call_timeout);
    auto now = clock::now();
    last_ok = body.has_value();
    if (!body) {
      ++shown;
      // The node went away (restarting, a network blip): say so and keep trying.
      prev.reset();
      if (json)
        fmt::print(stderr, "kaiwa: node unreachable, retrying: {}\n", error);
      else
        screen.frame({header(), "", "node unreachable, retrying\u2026", "last error: " + error});
      std::fflush(stderr);
      continue;
    }
    auto cur = parse_metrics(*body);
    if (!prev) {
      prev = std::move(cur);
      prev_at = now;
      continue;
    }
    ++shown;
    double dt = std::chrono::duration<double>(now - prev_at).count();
    auto value = [&](const char* k) {
      auto it = cur.find(k);
      return it == cur.end() ? 0.0 : it->second;
    };
    auto rate = [&](const char* k) {
      auto before = prev->find(k);
      return before == prev->end() ? 0.0 : std::max(0.0, (value(k) - before->second) / dt);
    };
    std::vector<std::pair<std::string, std::uint64_t>> hottest;
    std::string hot_error;
    if (auto hot = fetch(t, "GET", "/admin/v1/hot-rooms", 200, hot_error, call_timeout)) {
      simdjson::dom::parser p;
      simdjson::dom::array rooms;
      if (!p.parse(*hot)["rooms"].get(rooms))
        for (auto r : rooms) {
          std::string_view room;
          std::uint64_t n = 0;
          if (!r["room"].get(room) && !r["events_per_s"].get(n)) hottest.emplace_back(room, n);
        }
    }
    auto u = [](double v) { return static_cast<std::uint64_t>(v); };
    if (json) {
      std::string out;
      json_writer w(out);
      w.begin_object()
          .field("connections", u(value("kaiwa_connections")))
          .field("frames_in_per_s", u(rate("kaiwa_frames_in_total")))
          .field("frames_out_per_s", u(rate("kaiwa_frames_out_total")))
          .field("events_per_s", u(rate("kaiwa_events_appended_total")))
          .field("rooms_active", u(value("kaiwa_rooms_active")))
          .field("commits_per_s", u(rate("kaiwa_journal_commits_total")))
          .field("rss_bytes", u(value("process_resident_memory_bytes")));
      w.key("hottest").begin_array();
      for (auto& [room, n] : hottest)
        w.begin_object().field("room", room).field("events_per_s", n).end_object();
      w.end_array().end_object();
      fmt::print("{}\n", out);
      std::fflush(stdout);
    } else {
      std::vector<std::string> lines{
          header(),
          "",
          fmt::format("{:>11} {:>12} {:>13} {:>9} {:>13} {:>10} {:>11}", "CONNECTIONS",
                      "FRAMES IN/S", "FRAMES OUT/S", "EVENTS/S", "ROOMS ACTIVE", "COMMITS/S",
                      "RSS"),
          fmt::format("{:>11} {:>12} {:>13} {:>9} {:>13} {:>10} {:>11}",
                      u(value("kaiwa_connections")), u(rate("kaiwa_frames_in_total")),
                      u(rate("kaiwa_frames_out_total")), u(rate("kaiwa_events_appended_total")),
                      u(value("kaiwa_rooms_active")), u(rate("kaiwa_journal_commits_total")),
                      format_size(u(value("process_resident_memory_bytes")))),
          "",
          fmt::format("{:<40} {:>9}", "HOTTEST ROOMS (last second)", "EVENTS/S")};
      for (auto& [room, n] : hottest) lines.push_back(fmt::format("{:<40} {:>9}", room, n));
      if (hottest.empty()) lines.push_back(hot_error.empty() ? "(none)" : hot_error);
      screen.frame(lines);
    }
    prev = std::move(cur);
    prev_at = now;
  }
  return last_ok || top_interrupted ? 0 : 1;
}

// Moving every shard of a node takes a while: as long as the cluster needs, within an hour.
constexpr std::chrono::seconds cluster_change_timeout{3600};

int drain_command(const admin_target& t, const std::string& node, std::chrono::milliseconds grace,
                  bool json) {
  auto target = fmt::format("/admin/v1/drain?grace={}ms", grace.count());
  if (!node.empty()) target += "&node=" + node;
  auto body = call(t, "POST", target, 202, cluster_change_timeout);
  if (!body) return 1;
  if (json) {
    fmt::print("{}", *body);
    return 0;
  }
  simdjson::dom::parser p;
  auto reply = parse_reply(p, *body);
  if (!reply) return 1;
  if (bool((*reply)["shards_moved"]))
    fmt::print("{}: its shards moved to the other members; ", std::string_view((*reply)["node"]));
  fmt::print("new connections are refused; sessions close with 4010 in {}\n",
             format_duration(grace));
  return 0;
}

int cluster_command(const admin_target& t, bool json) {
  auto body = call(t, "GET", "/admin/v1/cluster", 200);
  if (!body || json) return show(body, true);
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *body);
  if (!parsed) return 1;
  auto c = *parsed;
  fmt::print(
      "coordinator {}  epoch {}  shards {}  moves done {}, failed {}, retried {}, queued {}{}\n",
      std::string_view(c["coordinator"]), std::uint64_t(c["epoch"]), std::uint64_t(c["shards"]),
      std::uint64_t(c["moves_done"]), std::uint64_t(c["moves_failed"]),
      std::uint64_t(c["moves_retried"]), std::uint64_t(c["moves_queued"]),
      bool(c["moving"]) ? "  (a move is under way)" : "");
  // Replicated shards: the controller elected in etcd, and this node's lease.
  simdjson::dom::object etcd;
  if (!c["etcd"].get(etcd)) {
    std::string_view controller;
    std::int64_t term = 0, left = 0;
    if (etcd["controller"].get(controller)) controller = "(none)";
    if (etcd["term"].get(term)) term = 0;
    if (etcd["lease_ttl_ms_left"].get(left)) left = 0;
    fmt::print("controller {}  term {}  this node's lease: {} ms left\n", controller, term, left);
    // etcd's data lost (docs/cluster.md "When etcd's data is lost"): said before anything else.
    bool lost = false;
    std::string_view problem;
    if (!etcd["metadata_lost"].get(lost) && lost && !etcd["metadata_problem"].get(problem))
      fmt::print(
          "METADATA LOST: {}\n  nothing fails over; restore etcd from its latest snapshot "
          "(docs/operations.md, \"etcd's data lost\")\n",
          problem);
    simdjson::dom::array held;
    if (!etcd["shards_held"].get(held) && held.size() > 0) {
      std::string list;
      for (auto s : held) list += (list.empty() ? "" : ",") + std::to_string(std::uint64_t(s));
      fmt::print("shards held since etcd's restore (no failover): {}\n", list);
    }
  }
  fmt::print("{:<16} {:<22} {:<9} {:>6} {:>11} {:>12} {:>14}\n", "NODE", "ADDRESS", "STATE",
             "SHARDS", "CONNECTIONS", "ROOMS ACTIVE", "EVENTS");
  for (auto m : c["members"].get_array()) {
    auto load = [&](const char* key) {
      std::uint64_t v = 0;
      return m["load"][key].get(v) ? std::string("-") : std::to_string(v);
    };
    fmt::print("{:<16} {:<22} {:<9} {:>6} {:>11} {:>12} {:>14}\n", std::string_view(m["id"]),
               std::string_view(m["address"]), std::string_view(m["state"]),
               std::uint64_t(m["shards"]), load("connections"), load("rooms_active"),
               load("events_appended"));
  }
  return 0;
}

int shards_command(const admin_target& t, bool json) {
  auto body = call(t, "GET", "/admin/v1/shards", 200);
  if (!body || json) return show(body, true);
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *body);
  if (!parsed) return 1;
  auto m = *parsed;
  fmt::print("epoch {}  coordinator {}  shards {}\n", std::uint64_t(m["epoch"]),
             std::string_view(m["coordinator"]), std::uint64_t(m["shards"]));
  // Runs of consecutive shards with one owner, one line each.
  std::string owner;
  std::uint64_t first = 0, last = 0;
  bool any = false;
  auto flush = [&] {
    if (any) fmt::print("{:>5}-{:<5} {}\n", first, last, owner.empty() ? "(none)" : owner);
  };
  for (auto s : m["owners"].get_array()) {
    auto o = std::string(std::string_view(s["owner"]));
    std::uint64_t n = s["shard"];
    std::string_view state;
    if (!s["state"].get(state)) o += " (" + std::string(state) + ")";
    // Replicated: a shard whose in-sync set is short says so (it acks on fewer disks).
    simdjson::dom::array replicas, isr;
    if (!s["replicas"].get(replicas) && !s["isr"].get(isr) && isr.size() < replicas.size())
      o += fmt::format(" (in sync {}/{})", isr.size(), replicas.size());
    if (any && o == owner && n == last + 1) {
      last = n;
      continue;
    }
    flush();
    owner = o;
    first = last = n;
    any = true;
  }
  flush();
  return 0;
}

int move_command(const admin_target& t, unsigned shard, const std::string& node, bool json) {
  // A shard already on `node` is no move: said, and a success (the shard is where it was
  // asked to be), so that scripts can ask for a placement without checking it first.
  auto done = [&](bool moved) {
    if (json)
      fmt::print(R"({{"shard":{},"node":"{}","moved":{}}})"
                 "\n",
                 shard, node, moved);
    else if (moved)
      fmt::print("shard {} moved to {}\n", shard, node);
    else
      fmt::print("shard {} is already on {}: nothing to move\n", shard, node);
    return 0;
  };
  auto map = call(t, "GET", "/admin/v1/shards", 200);
  if (!map) return 1;
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *map);
  if (!parsed) return 1;
  simdjson::dom::array owners;
  if (!(*parsed)["owners"].get(owners))
    for (auto s : owners) {
      std::uint64_t n = 0;
      std::string_view owner, state;
      if (s["shard"].get(n) || n != shard || s["owner"].get(owner)) continue;
      if (owner == node && s["state"].get(state)) return done(false);
    }
  auto body = call(t, "POST", fmt::format("/admin/v1/move?shard={}&to={}", shard, node), 200,
                   cluster_change_timeout);
  if (!body) return 1;
  return done(true);
}

int remove_command(const admin_target& t, const std::string& node, bool json) {
  auto body = call(t, "POST", fmt::format("/admin/v1/cluster/remove?node={}", node), 200,
                   cluster_change_timeout);
  if (!body) return 1;
  if (json)
    fmt::print(R"({{"node":"{}","removed":true}})"
               "\n",
               node);
  else
    fmt::print("{} removed: its replicas are re-created on the other members and catch up\n", node);
  return 0;
}

int projections_command(const admin_target& t, bool json) {
  auto body = call(t, "GET", "/admin/v1/projections", 200);
  if (!body || json) return show(body, true);
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *body);
  if (!parsed) return 1;
  if (!bool((*parsed)["enabled"])) {
    fmt::print("the read models are off on this node (--projections=off)\n");
    return 0;
  }
  fmt::print("{:<10} {:<12} {:>9} {:>15} {:>10} {:>10} {:>14}\n", "PROJECTION", "STATE", "PROGRESS",
             "ROOMS", "PENDING", "LAG", "APPLIED");
  for (auto e : (*parsed)["projections"].get_array()) {
    auto lag =
        std::chrono::milliseconds(static_cast<std::int64_t>(double(e["lag_seconds"]) * 1000));
    fmt::print(
        "{:<10} {:<12} {:>8.1f}% {:>15} {:>10} {:>10} {:>14}\n", std::string_view(e["name"]),
        std::string_view(e["state"]), double(e["progress"]) * 100,
        fmt::format("{}/{}", std::uint64_t(e["rooms_done"]), std::uint64_t(e["rooms_total"])),
        std::uint64_t(e["pending"]), format_duration(lag), std::uint64_t(e["applied"]));
  }
  return 0;
}

int rebuild_command(const admin_target& t, const std::string& name) {
  std::string error;
  auto target = "/admin/v1/projections/" + name + "/rebuild";
  auto res = admin_call(t, "POST", target, error, std::chrono::seconds(60));
  if (!res) {
    fmt::print(stderr, "kaiwa: {}\n", error);
    return 1;
  }
  if (res->status != 202) {
    fmt::print(stderr, "kaiwa: {}\n", describe_failure(t, "POST", target, *res, {}));
    return res->status == 404 || res->status == 409 ? 2 : 1;
  }
  // Polled: the admin API has no push. Twice a second is plenty for a progress line.
  while (true) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto body = call(t, "GET", "/admin/v1/projections", 200);
    if (!body) return 1;
    simdjson::dom::parser p;
    auto parsed = parse_reply(p, *body);
    if (!parsed) return 1;
    bool found = false;
    for (auto e : (*parsed)["projections"].get_array()) {
      if (std::string_view(e["name"]) != name) continue;
      found = true;
      auto state = std::string_view(e["state"]);
      std::uint64_t done = e["rooms_done"], total = e["rooms_total"];
      if (state == "live") {
        fmt::print("{}: rebuilt, {} rooms, {} events\n", name, total,
                   std::uint64_t(e["events_total"]));
        return 0;
      }
      fmt::print("{}: {} {:.1f}% ({}/{} rooms, {}/{} events)\n", name, state,
                 double(e["progress"]) * 100, done, total, std::uint64_t(e["events_done"]),
                 std::uint64_t(e["events_total"]));
      std::fflush(stdout);
    }
    if (!found) {
      fmt::print(stderr, "kaiwa: the node no longer lists projection {}\n", name);
      return 1;
    }
  }
}

int backup_command(const admin_target& t, const std::string& dir, bool json) {
  if (auto why = unusable_destination(dir); !why.empty()) {
    fmt::print(stderr, "kaiwa: {} {}; back up into a new directory\n", dir, why);
    return 1;
  }
  // Made before the node is asked for a checkpoint: a destination that can't be written is
  // found out without the node doing any work.
  if (!make_dir(dir)) return 1;
  auto body = call(t, "POST", "/admin/v1/checkpoint", 200);
  if (!body) return 1;
  simdjson::dom::parser p;
  std::string_view staged;
  if (p.parse(*body)["dir"].get(staged)) {
    fmt::print(stderr, "kaiwa: unexpected checkpoint reply: {}\n", *body);
    return 1;
  }
  std::string staging(staged);
  if (!json) fmt::print("checkpoint: {}\n", staging);
  auto done = copy_dir(staging, dir, "backup", json);
  std::error_code ec;
  fs::remove_all(staging, ec);
  if (!done) return 1;
  if (json)
    print_copied(dir, *done);
  else
    fmt::print("backup: done, {}\n", dir);
  return 0;
}

int restore_command(const std::string& backup_dir, const std::string& data_dir, bool json) {
  std::error_code ec;
  if (!fs::exists(fs::path(backup_dir) / "CURRENT", ec)) {
    fmt::print(stderr, "kaiwa: {} is not a kaiwa backup (no CURRENT file)\n", backup_dir);
    return 1;
  }
  if (auto why = unusable_destination(data_dir); !why.empty()) {
    fmt::print(stderr, "kaiwa: {} {}; restore only into a new or empty data directory\n", data_dir,
               why);
    return 1;
  }
  auto done = copy_dir(backup_dir, data_dir, "restore", json);
  if (!done) return 1;
  if (json)
    print_copied(data_dir, *done);
  else
    fmt::print("restore: done; start a node with --data-dir {}\n", data_dir);
  return 0;
}

}  // namespace kaiwa::app
