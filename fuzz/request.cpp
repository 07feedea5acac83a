// Client requests: one JSON text frame each (net/detail/request.hpp), parsed with and without
// simdjson's padding as the session does. Checks the invariants a session relies on besides
// not crashing: exactly one of request or error, an accepted id of the shape PROTOCOL.md allows
// (a string of at most 64 chars or an integer), and an echoed id that is a JSON scalar.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "net/detail/request.hpp"

namespace {

/// An id is echoed raw into replies, so it must be a whole JSON string or number; an accepted
/// one a string of at most 64 chars or an integer.
void check_id(std::string_view id, bool accepted) {
  if (id.empty()) return;
  simdjson::dom::parser p;
  auto doc = p.parse(id.data(), id.size());
  // A number beyond double's range (1e400) is JSON that simdjson won't read: echoed, not accepted.
  if (doc.error() == simdjson::NUMBER_ERROR && !accepted) return;
  if (doc.error()) std::abort();
  auto v = doc.value();
  if (v.is_string()) {
    std::size_t chars = 0;
    for (unsigned char c : v.get_string().value()) chars += (c & 0xc0) != 0x80;
    if (accepted && chars > 64) std::abort();
  } else if (!v.is_number() || (accepted && !v.is_int64() && !v.is_uint64())) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kaiwa::net::detail;
  std::string_view in(reinterpret_cast<const char*>(data), size);

  auto plain = parse_request(in, false);
  if (plain.req.has_value() == plain.err.has_value()) std::abort();
  check_id(plain.req ? plain.req->id : plain.err->id, plain.req.has_value());

  std::string padded(in);
  padded.resize(size + simdjson::SIMDJSON_PADDING);
  auto fast = parse_request(std::string_view(padded.data(), size), true);
  if (fast.req.has_value() != plain.req.has_value()) std::abort();
  return 0;
}
