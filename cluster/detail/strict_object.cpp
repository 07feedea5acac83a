#include "cluster/detail/strict_object.hpp"

namespace kaiwa::cluster::detail {

simdjson::dom::parser& strict_object_parser() {
  thread_local simdjson::dom::parser parser(max_strict_object_bytes);
  return parser;
}

}  // namespace kaiwa::cluster::detail
