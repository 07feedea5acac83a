#include "apps/admin_commands.hpp"

#include "core/json.hpp"

#include <fmt/format.h>
#include <simdjson.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

namespace kaiwa::app {

namespace fs = std::filesystem;

namespace {

/// Calls the admin API and checks the status; prints the error and returns nullopt on failure.
std::optional<std::string> call(const admin_target& t, const std::string& method,
                                const std::string& target, int expect,
                                std::chrono::seconds timeout = std::chrono::seconds(60)) {
  std::string error;
  auto res = admin_call(t, method, target, error, timeout);
  if (!res) {
    fmt::print(stderr, "kaiwa: {}\n", error);
    return std::nullopt;
  }
  if (res->status != expect) {
    simdjson::dom::parser p;
    std::string_view message;
    auto doc = p.parse(res->body);
    if (doc.error() || doc["error"].get(message)) message = res->body;
    fmt::print(stderr, "kaiwa: the node answered {} to {} {}: {}\n", res->status, method, target,
               message);
    return std::nullopt;
  }
  return res->body;
}

bool empty_or_missing(const std::string& dir) {
  std::error_code ec;
  return !fs::exists(dir, ec) || (fs::is_directory(dir, ec) && fs::is_empty(dir, ec));
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
  fs::create_directories(to, ec);
  std::uint64_t done = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    fs::copy_file(files[i].path(), to / files[i].path().filename(), ec);
    if (ec) {
      fmt::print(stderr, "kaiwa: can't copy {}: {}\n", files[i].path().string(), ec.message());
      return std::nullopt;
    }
    done += files[i].file_size();
    if (!quiet)
      fmt::print("{}: {}/{} files, {:.1f}/{:.1f} MiB\n", what, i + 1, files.size(),
                 done / 1048576.0, total / 1048576.0);
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

/// Prints an admin reply: as it came with --json, else as a table of its fields (arrays joined
/// by commas; the protocol's "op" and "id" left out).
int show(const std::optional<std::string>& body, bool json) {
  if (!body) return 1;
  if (json) {
    fmt::print("{}", *body);
    return 0;
  }
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *body);
  if (!parsed) return 1;
  for (auto [key, value] : parsed->get_object()) {
    if (key == "op" || key == "id") continue;
    std::string text;
    if (value.is_string()) {
      text = std::string(std::string_view(value));
    } else if (value.is_array()) {
      for (auto v : value.get_array())
        text += (text.empty() ? "" : ", ") +
                (v.is_string() ? std::string(std::string_view(v)) : simdjson::minify(v));
    } else {
      text = simdjson::minify(value);
    }
    fmt::print("{:<17} {}\n", key, text);
  }
  return 0;
}

}  // namespace

int status_command(const admin_target& t, bool json) {
  return show(call(t, "GET", "/admin/v1/status", 200), json);
}

int room_command(const admin_target& t, const std::string& room, bool json) {
  return show(call(t, "GET", "/admin/v1/rooms/" + room, 200), json);
}

int top_command(const admin_target& t, int iterations, bool json) {
  auto sample = [&]() -> std::optional<std::map<std::string, double>> {
    auto body = call(t, "GET", "/metrics", 200);
    if (!body) return std::nullopt;
    std::map<std::string, double> m;
    std::istringstream in(*body);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      auto sp = line.rfind(' ');
      m[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
    }
    return m;
  };
  auto prev = sample();
  if (!prev) return 1;
  auto prev_at = std::chrono::steady_clock::now();
  if (!json)
    fmt::print("{:>8} {:>12} {:>12} {:>12} {:>10} {:>12} {:>10}\n", "conns", "frames in/s",
               "frames out/s", "events/s", "rooms", "commits/s", "rss MiB");
  for (int i = 0; iterations == 0 || i < iterations; ++i) {
    std::this_thread::sleep_for(std::chrono::seconds(1));  // the refresh period
    auto cur = sample();
    if (!cur) return 1;
    auto now = std::chrono::steady_clock::now();
    double dt = std::chrono::duration<double>(now - prev_at).count();
    auto rate = [&](const char* k) { return ((*cur)[k] - (*prev)[k]) / dt; };
    std::vector<std::pair<std::string, std::uint64_t>> hottest;
    if (auto hot = call(t, "GET", "/admin/v1/hot-rooms", 200)) {
      simdjson::dom::parser p;
      simdjson::dom::array rooms;
      if (!p.parse(*hot)["rooms"].get(rooms))
        for (auto r : rooms)
          hottest.emplace_back(std::string_view(r["room"]), std::uint64_t(r["events_per_s"]));
    }
    if (json) {
      std::string out;
      json_writer w(out);
      w.begin_object()
          .field("connections", static_cast<std::uint64_t>((*cur)["kaiwa_connections"]))
          .field("frames_in_per_s", static_cast<std::uint64_t>(rate("kaiwa_frames_in_total")))
          .field("frames_out_per_s", static_cast<std::uint64_t>(rate("kaiwa_frames_out_total")))
          .field("events_per_s", static_cast<std::uint64_t>(rate("kaiwa_events_appended_total")))
          .field("rooms_active", static_cast<std::uint64_t>((*cur)["kaiwa_rooms_active"]))
          .field("commits_per_s", static_cast<std::uint64_t>(rate("kaiwa_journal_commits_total")))
          .field("rss_bytes", static_cast<std::uint64_t>((*cur)["process_resident_memory_bytes"]));
      w.key("hottest").begin_array();
      for (auto& [room, n] : hottest)
        w.begin_object().field("room", room).field("events_per_s", n).end_object();
      w.end_array().end_object();
      fmt::print("{}\n", out);
    } else {
      fmt::print("{:>8.0f} {:>12.0f} {:>12.0f} {:>12.0f} {:>10.0f} {:>12.0f} {:>10.1f}\n",
                 (*cur)["kaiwa_connections"], rate("kaiwa_frames_in_total"),
                 rate("kaiwa_frames_out_total"), rate("kaiwa_events_appended_total"),
                 (*cur)["kaiwa_rooms_active"], rate("kaiwa_journal_commits_total"),
                 (*cur)["process_resident_memory_bytes"] / 1048576.0);
      std::string line;
      for (auto& [room, n] : hottest) {
        if (line.size() > 100) break;
        line += fmt::format(" {} {}/s", room, n);
      }
      if (!line.empty()) fmt::print("  hottest:{}\n", line);
    }
    std::fflush(stdout);
    prev = std::move(cur);
    prev_at = now;
  }
  return 0;
}

// Moving every shard of a node takes a while: as long as the cluster needs, within an hour.
constexpr std::chrono::seconds cluster_change_timeout{3600};

int drain_command(const admin_target& t, const std::string& node, double grace_s, bool json) {
  auto target = fmt::format("/admin/v1/drain?grace={}", grace_s);
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
  fmt::print("new connections are refused; sessions close with 4010 in {} s\n", grace_s);
  return 0;
}

int cluster_command(const admin_target& t, bool json) {
  auto body = call(t, "GET", "/admin/v1/cluster", 200);
  if (!body || json) return show(body, true);
  simdjson::dom::parser p;
  auto parsed = parse_reply(p, *body);
  if (!parsed) return 1;
  auto c = *parsed;
  fmt::print("coordinator {}  epoch {}  shards {}  moves done {}, failed {}, queued {}{}\n",
             std::string_view(c["coordinator"]), std::uint64_t(c["epoch"]),
             std::uint64_t(c["shards"]), std::uint64_t(c["moves_done"]),
             std::uint64_t(c["moves_failed"]), std::uint64_t(c["moves_queued"]),
             bool(c["moving"]) ? "  (a move is under way)" : "");
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
  auto body = call(t, "POST", fmt::format("/admin/v1/move?shard={}&to={}", shard, node), 200,
                   cluster_change_timeout);
  if (!body) return 1;
  if (json)
    fmt::print("{}", *body);
  else
    fmt::print("shard {} moved to {}\n", shard, node);
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
  fmt::print("{:<10} {:<12} {:>9} {:>15} {:>10} {:>9} {:>14}\n", "PROJECTION", "STATE", "PROGRESS",
             "ROOMS", "PENDING", "LAG S", "APPLIED");
  for (auto e : (*parsed)["projections"].get_array())
    fmt::print(
        "{:<10} {:<12} {:>8.1f}% {:>15} {:>10} {:>9.3f} {:>14}\n", std::string_view(e["name"]),
        std::string_view(e["state"]), double(e["progress"]) * 100,
        fmt::format("{}/{}", std::uint64_t(e["rooms_done"]), std::uint64_t(e["rooms_total"])),
        std::uint64_t(e["pending"]), double(e["lag_seconds"]), std::uint64_t(e["applied"]));
  return 0;
}

int rebuild_command(const admin_target& t, const std::string& name) {
  std::string error;
  auto res = admin_call(t, "POST", "/admin/v1/projections/" + name + "/rebuild", error,
                        std::chrono::seconds(60));
  if (!res) {
    fmt::print(stderr, "kaiwa: {}\n", error);
    return 1;
  }
  if (res->status != 202) {
    simdjson::dom::parser p;
    std::string_view message;
    auto doc = p.parse(res->body);
    if (doc.error() || doc["error"].get(message)) message = res->body;
    fmt::print(stderr, "kaiwa: {}\n", message);
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
  if (!empty_or_missing(dir)) {
    fmt::print(stderr, "kaiwa: {} is not empty; back up into a new directory\n", dir);
    return 1;
  }
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
  if (!empty_or_missing(data_dir)) {
    fmt::print(stderr, "kaiwa: {} is not empty; restore only into an empty data directory\n",
               data_dir);
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
