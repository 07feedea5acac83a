// Durations and sizes as a command line or a config file gives them (core/units.hpp): any
// bytes parse or are refused, what parses is within the documented bounds and reads for people.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/units.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto d = kaiwa::parse_duration(in)) {
    if (d->count() < 0 || d->count() > 100LL * 366 * 86'400'000) std::abort();
    if (kaiwa::format_duration(*d).empty()) std::abort();
  }
  if (auto s = kaiwa::parse_size(in)) {
    if (*s > (std::uint64_t{1} << 62)) std::abort();
    if (kaiwa::format_size(*s).empty()) std::abort();
  }
  return 0;
}
