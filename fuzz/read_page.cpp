// A page of read-model results as another cluster member sends it (read/page.hpp): whatever
// arrives must decode or be refused, never allocate what a count declares, and a page that
// decodes must survive re-encoding unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "read/page.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto p = kaiwa::read::decode_page(in);
  if (p && kaiwa::read::encode_page(*p) != in) std::abort();
  auto c = kaiwa::read::decode_cursor(in);
  if (c && kaiwa::read::encode_cursor(*c) != in) std::abort();
  return 0;
}
