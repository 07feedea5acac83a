#include "core/log.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "core/json.hpp"

namespace kaiwa {

namespace {

std::atomic<log_level> min_level{log_level::info};
std::atomic<log_format> format{log_format::text};
std::mutex out_mtx;

constexpr std::string_view level_names[] = {"debug", "info", "warn", "error"};

std::string timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z", fmt::gmtime(system_clock::to_time_t(now)), ms);
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v)
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  return false;
}

}  // namespace

log_field::log_field(std::string_view k, double v)
    : key(k), value(fmt::format("{:.3f}", v)), is_string(false) {}

void configure_logging(log_level min, log_format f) noexcept {
  min_level = min;
  format = f;
}

bool log_enabled(log_level level) noexcept {
  return level >= min_level.load(std::memory_order_relaxed);
}

void log(log_level level, std::string_view event, std::initializer_list<log_field> fields) {
  if (!log_enabled(level)) return;
  std::string line;
  if (format.load(std::memory_order_relaxed) == log_format::json) {
    json_writer w(line);
    w.begin_object()
        .field("ts", timestamp())
        .field("level", level_names[static_cast<int>(level)])
        .field("event", event);
    for (auto& f : fields) {
      if (f.is_string)
        w.field(f.key, f.value);
      else
        w.key(f.key).raw(f.value);
    }
    w.end_object();
  } else {
    line = fmt::format("{} {:<5} {}", timestamp(), level_names[static_cast<int>(level)], event);
    for (auto& f : fields) {
      line += fmt::format(" {}=", f.key);
      if (f.is_string && needs_quotes(f.value))
        append_json_string(line, f.value);
      else
        line += f.value;
    }
  }
  line += '\n';
  std::lock_guard lock(out_mtx);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

bool parse_log_level(std::string_view s, log_level& out) noexcept {
  for (std::size_t i = 0; i < std::size(level_names); ++i)
    if (level_names[i] == s) {
      out = static_cast<log_level>(i);
      return true;
    }
  return false;
}

bool parse_log_format(std::string_view s, log_format& out) noexcept {
  if (s == "text")
    out = log_format::text;
  else if (s == "json")
    out = log_format::json;
  else
    return false;
  return true;
}

}  // namespace kaiwa
