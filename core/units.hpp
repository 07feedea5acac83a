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
#include <string_view>

namespace kaiwa {

/// `text` as a duration (truncated to milliseconds); nullopt if it is not one, or beyond
/// 100 years.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// `text` as a size in bytes; nullopt if it is not one, or beyond 2^62 bytes.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace kaiwa
