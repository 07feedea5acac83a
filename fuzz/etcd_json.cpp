// What etcd (or whatever answers in its place) sends the cluster module's etcd client
// (cluster/detail/etcd_json.hpp): any bytes parse or are refused as each kind of answer, and
// base64 decodes only canonical text, which re-encodes to exactly what was read.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/detail/etcd_json.hpp"

using namespace kaiwa::cluster;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string decoded;
  if (detail::base64_decode(in, decoded) && detail::base64_encode(decoded) != in) std::abort();

  if (auto r = detail::parse_range(in)) {
    for (auto& kv : r->kvs)
      if (kv.key.size() + kv.value.size() > size) std::abort();
  }
  (void)detail::parse_put(in);
  (void)detail::parse_delete(in);
  (void)detail::parse_txn(in);
  (void)detail::parse_lease_grant(in);
  if (auto ttl = detail::parse_lease_keepalive(in); ttl && *ttl < 0) std::abort();
  (void)detail::parse_empty(in);
  auto e = detail::parse_error(500, in);
  if (e.code == errc::etcd && (e.etcd_code < 1 || e.etcd_code > 16)) std::abort();
  if (auto m = detail::parse_watch(in)) {
    for (auto& ev : m->events)
      if (ev.kv.key.size() > size) std::abort();
  }
  return 0;
}
