#pragma once
// Durations and sizes as people write them on a command line or in a config file: one parser
// for each, strict (docs/operations.md, "Durations and sizes").
//
// A duration is a number, optionally with a decimal fraction, and a unit: ms, s, m, h, d or w
// ("90s", "1.5h", "2w"); a bare number is seconds. A size is a number and B, KiB, MiB or GiB
// (a bare number is bytes). Anything else is refused: no sign, no exponent, no spaces, no other
// unit ("24x"), nothing past the unit, and nothing that overflows.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa {

/// `text` as a duration (truncated to milliseconds); nullopt if it is not one, or beyond
/// 100 years.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// `text` as a size in bytes; nullopt if it is not one, or beyond 2^62 bytes.
std::optional<std::uint64_t> parse_size(std::string_view text);

// -- for people reading tables (the CLI; --json keeps the raw numbers) ------------------------

/// "512 B", "1.5 KiB", "45.2 MiB", "3.0 GiB", "2.0 TiB": one decimal from KiB on.
std::string format_size(std::uint64_t bytes);

/// The two largest units: "250 ms", "42 s", "4 m 12 s", "3 h 5 m", "2 d 3 h"; a negative
/// duration reads as 0.
std::string format_duration(std::chrono::milliseconds d);

}  // namespace kaiwa
