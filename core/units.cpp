#include "core/units.hpp"

#include <fmt/format.h>

#include <array>
#include <utility>

namespace kaiwa {

namespace {

// Scaled integers, never floating point: "1.5h" is 15 tenths of an hour, exactly.
struct number {
  std::uint64_t digits = 0;  // the number without its decimal point
  std::uint64_t scale = 1;   // 10^(digits after the point)
};

// The leading number of `text` (removed from it); nullopt when there is none, or it has more
// than 18 digits (which could overflow before the unit is applied).
std::optional<number> take_number(std::string_view& text) {
  number n;
  std::size_t i = 0, count = 0;
  bool point = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c == '.' && !point && count > 0) {
      point = true;
      continue;
    }
    if (c < '0' || c > '9') break;
    if (++count > 18) return std::nullopt;
    n.digits = n.digits * 10 + static_cast<std::uint64_t>(c - '0');
    if (point) n.scale *= 10;
  }
  if (count == 0 || text[i - 1] == '.') return std::nullopt;  // "", ".", "5."
  text.remove_prefix(i);
  return n;
}

/// n * unit / scale, or nullopt past `limit`. The product fits 128 bits (n < 10^18 and
/// unit < 2^40), so nothing overflows before the check.
std::optional<std::uint64_t> apply(number n, std::uint64_t unit, std::uint64_t limit) {
  auto v = static_cast<unsigned __int128>(n.digits) * unit / n.scale;
  if (v > limit) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto n = take_number(text);
  if (!n) return std::nullopt;
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 7> units{{
      {"", 1000},
      {"ms", 1},
      {"s", 1000},
      {"m", 60'000},
      {"h", 3'600'000},
      {"d", 86'400'000},
      {"w", 604'800'000},
  }};
  constexpr std::uint64_t max_ms = 100ull * 366 * 86'400'000;
  for (auto& [name, ms] : units)
    if (text == name) {
      auto v = apply(*n, ms, max_ms);
      if (!v) return std::nullopt;
      return std::chrono::milliseconds(static_cast<std::int64_t>(*v));
    }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  auto n = take_number(text);
  if (!n) return std::nullopt;
  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 5> units{{
      {"", 1},
      {"B", 1},
      {"KiB", 1ull << 10},
      {"MiB", 1ull << 20},
      {"GiB", 1ull << 30},
  }};
  for (auto& [name, bytes] : units)
    if (text == name) return apply(*n, bytes, 1ull << 62);
  return std::nullopt;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  constexpr std::array<std::string_view, 4> units{"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024;
  std::size_t u = 0;
  // 1023.96 KiB would print as "1024.0 KiB": move up a unit before rounding reaches 1024.
  while (v >= 1023.95 && u + 1 < units.size()) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = std::max<std::int64_t>(d.count(), 0);
  if (ms < 1000) return fmt::format("{} ms", ms);
  auto s = ms / 1000;
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} m {} s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{} h {} m", s / 3600, s % 3600 / 60);
  return fmt::format("{} d {} h", s / 86400, s % 86400 / 3600);
}

}  // namespace kaiwa
