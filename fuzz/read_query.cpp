// A read query as another cluster member sends it (read/query.hpp): whatever arrives must
// decode or be refused, never allocate what a length declares, and a query that decodes must
// survive re-encoding unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "read/query.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto q = kaiwa::read::decode_query(in);
  if (q && kaiwa::read::encode_query(*q) != in) std::abort();
  return 0;
}
