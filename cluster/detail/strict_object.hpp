#pragma once
// Strict decoding of the small JSON objects the cluster keeps in etcd (a member's record, a
// shard's assignment, move and drain requests, the cluster marker). Anything in those keys that
// is not exactly what this version writes (another version's, hand-written, truncated) is
// treated by the callers as absent, never half-read: the value is bounded before it is parsed,
// must be one JSON object, holds only known fields, each at most once, and every required one.
// Internal to cluster/ (it brings simdjson's header).

#include <simdjson.h>

#include <array>
#include <cstddef>
#include <string_view>

namespace kaiwa::cluster::detail {

/// The parser these objects are read with: one a thread, reused (its buffers grow to the
/// biggest object read, at most max_strict_object_bytes).
simdjson::dom::parser& strict_object_parser();
inline constexpr std::size_t max_strict_object_bytes = 4 << 10;

/// Calls `on_field(i, value)` for each field of the object `json`, `i` the field's index in
/// `names`, in the document's order; `value` is valid during the call only. False when `json`
/// is longer than `max_bytes` (at most max_strict_object_bytes), is not one JSON object, has a
/// field not in `names` or one twice, lacks a field whose bit is set in `required` (bit i for
/// names[i]), or when `on_field` returns false (a value of the wrong type or out of range).
template <std::size_t N, class OnField>
bool read_strict_object(std::string_view json, std::size_t max_bytes,
                        const std::array<std::string_view, N>& names, unsigned required,
                        OnField&& on_field) {
  static_assert(N <= 32, "a bit a field");
  if (json.size() > max_bytes || json.size() > max_strict_object_bytes) return false;
  simdjson::dom::element doc;
  simdjson::dom::object o;
  if (strict_object_parser().parse(json.data(), json.size(), true).get(doc) ||
      doc.get_object().get(o))
    return false;
  unsigned seen = 0;
  for (auto [key, value] : o) {
    std::size_t i = 0;
    while (i < N && names[i] != key) ++i;
    if (i == N || (seen & (1u << i))) return false;
    seen |= 1u << i;
    if (!on_field(i, value)) return false;
  }
  return (seen & required) == required;
}

}  // namespace kaiwa::cluster::detail
