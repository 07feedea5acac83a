// The admin CLI reads a node's error replies (core/admin_error.hpp): any bytes parse or are
// refused, and what parses is written back to the same error.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/admin_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto e = kaiwa::parse_admin_error(in);
  if (!e) return 0;
  auto again = kaiwa::parse_admin_error(kaiwa::admin_error_json(e->code, e->message, e->hint));
  if (!again || again->code != e->code || again->message != e->message || again->hint != e->hint)
    std::abort();
  return 0;
}
