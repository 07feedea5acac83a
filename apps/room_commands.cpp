#include "apps/room_commands.hpp"

#include <fmt/format.h>
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <optional>

#include "apps/admin_commands.hpp"
#include "core/units.hpp"

namespace kaiwa::app {

namespace {

/// How long ago an epoch-milliseconds time was ("3 s ago", "4 m 12 s ago"); "-" for none.
std::string ago(std::int64_t ms, std::int64_t now_ms) {
  if (ms <= 0) return "-";
  return format_duration(std::chrono::milliseconds(now_ms - ms)) + " ago";
}

/// `key` of `e`, or `fallback` when it is missing or of another type (the table shows what it
/// can; --json shows the reply as it came).
template <class T>
T get_or(simdjson::dom::element e, std::string_view key, T fallback) {
  T v{};
  return e[key].get(v) ? fallback : v;
}

std::string clip(std::string_view s, std::size_t n) {
  return s.size() <= n ? std::string(s) : std::string(s.substr(0, n - 3)) + "...";
}

/// Pages through `path` (one page, or all with --all), printing each with `print_page`.
template <class PrintPage>
int list(const admin_target& t, const std::string& path, const listing_options& o,
         PrintPage print_page) {
  std::string after = o.after;
  for (bool first = true;; first = false) {
    auto target = fmt::format("{}?limit={}", path, o.limit);
    if (!after.empty()) target += "&after=" + after;
    auto body = admin_request(t, "GET", target, 200);
    if (!body) return 1;
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(*body).get(doc)) {
      fmt::print(stderr, "kaiwa: the node's reply is not JSON\n");
      return 1;
    }
    std::string_view next;
    bool more = !doc["next"].get(next);
    if (o.json)
      fmt::print("{}", *body);
    else
      print_page(doc, first);
    if (!more) return 0;
    if (!o.all) {
      if (!o.json) fmt::print("more: --after {}\n", next);
      return 0;
    }
    after = std::string(next);
  }
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

int rooms_command(const admin_target& t, const listing_options& o) {
  auto now = now_ms();
  return list(t, "/admin/v1/rooms", o, [now](simdjson::dom::element doc, bool first) {
    if (first)
      fmt::print("{:<24} {:>8} {:>8} {:>14} {:<16} {:<10} {}\n", "ROOM", "HEAD", "MEMBERS",
                 "LAST ACTIVITY", "FLAGS", "NODE", "TOPIC");
    simdjson::dom::array rooms;
    if (doc["rooms"].get(rooms)) return;
    for (auto r : rooms) {
      bool priv = get_or(r, "private", false), archived = get_or(r, "archived", false);
      auto flags = priv && archived ? "private,archived"
                   : priv           ? "private"
                   : archived       ? "archived"
                                    : "-";
      fmt::print("{:<24} {:>8} {:>8} {:>14} {:<16} {:<10} {}\n",
                 get_or(r, "room", std::string_view()), get_or(r, "head", std::uint64_t{0}),
                 get_or(r, "members", std::uint64_t{0}),
                 ago(get_or(r, "last_activity_ms", std::int64_t{0}), now), flags,
                 get_or(r, "owner_node", std::string_view()),
                 clip(get_or(r, "topic", std::string_view()), 40));
    }
  });
}

int users_command(const admin_target& t, const listing_options& o) {
  return list(t, "/admin/v1/users", o, [](simdjson::dom::element doc, bool first) {
    if (first) fmt::print("{:<32} {:>8}\n", "USER", "ROOMS");
    simdjson::dom::array users;
    if (doc["users"].get(users)) return;
    for (auto u : users)
      fmt::print("{:<32} {:>8}\n", get_or(u, "user", std::string_view()),
                 get_or(u, "rooms", std::uint64_t{0}));
  });
}

int room_delete_command(const admin_target& t, const std::string& room, bool yes, bool json) {
  if (!yes) {
    if (!isatty(STDIN_FILENO)) {
      fmt::print(stderr,
                 "kaiwa: deleting a room can't be undone: confirm with --yes (stdin is not a "
                 "terminal to ask)\n");
      return 2;
    }
    fmt::print(
        "Delete room '{}' with its whole history, read markers and search entries? Its "
        "subscribers are told. This can't be undone.\nType the room's name to confirm: ",
        room);
    std::fflush(stdout);
    std::string typed;
    if (!std::getline(std::cin, typed) || typed != room) {
      fmt::print(stderr, "kaiwa: not confirmed; room '{}' was not deleted\n", room);
      return 1;
    }
  }
  auto body = admin_request(t, "DELETE", "/admin/v1/rooms/" + room, 200);
  if (!body) return 1;
  if (json)
    fmt::print("{}", *body);
  else
    fmt::print("room '{}' deleted\n", room);
  return 0;
}

int room_archive_command(const admin_target& t, const std::string& room, bool archive, bool json) {
  auto body = admin_request(t, "POST",
                            "/admin/v1/rooms/" + room + (archive ? "/archive" : "/unarchive"), 200);
  if (!body) return 1;
  if (json)
    fmt::print("{}", *body);
  else
    fmt::print("room '{}' {}\n", room, archive ? "archived (read-only)" : "unarchived (writable)");
  return 0;
}

}  // namespace kaiwa::app
