#pragma once
// Structured logs: one line per event, as text (`ts level event key=value ...`) or JSON. For
// events that matter to an operator (a connection opened or closed, a slow journal write, a
// slow room activation), never for per-message work. Thread-safe; lines go to stderr.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace kaiwa {

enum class log_level : std::uint8_t { debug, info, warn, error };
enum class log_format : std::uint8_t { text, json };

/// Sets the threshold and the format for the whole process. Default: info, text.
void configure_logging(log_level min, log_format format) noexcept;
bool log_enabled(log_level level) noexcept;

/// One key and its value, already rendered; strings are quoted in the output as needed.
struct log_field {
  log_field(std::string_view k, std::string_view v) : key(k), value(v), is_string(true) {}
  log_field(std::string_view k, const char* v) : key(k), value(v), is_string(true) {}
  log_field(std::string_view k, const std::string& v) : key(k), value(v), is_string(true) {}
  template <class Int,
            class = std::enable_if_t<std::is_integral_v<Int> && !std::is_same_v<Int, bool>>>
  log_field(std::string_view k, Int v) : key(k), value(std::to_string(v)), is_string(false) {}
  log_field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), is_string(false) {}
  log_field(std::string_view k, double v);

  std::string_view key;
  std::string value;
  bool is_string;
};

void log(log_level level, std::string_view event, std::initializer_list<log_field> fields = {});

/// Parses "debug", "info", "warn", "error" / "text", "json"; false if unknown.
bool parse_log_level(std::string_view s, log_level& out) noexcept;
bool parse_log_format(std::string_view s, log_format& out) noexcept;

}  // namespace kaiwa
