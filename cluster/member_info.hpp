#pragma once
// A cluster member as its key in etcd holds it (`<prefix>members/<node>`, written by the node's
// metadata_agent under its lease): who it is and where its listeners are.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa::cluster {

struct member_info {
  std::string id;
  std::string cluster_address;  // host:port of its cluster listener (CAF)
  std::string public_address;   // host:port of its WebSocket/HTTP listener (informational)
  std::int64_t lease = 0;       // the lease its key lives under
  // Its key's mod revision: when the node last registered (at start, or under a new lease).
  std::int64_t registered = 0;
  // The cluster id (cluster_marker.hpp) its data dir records: empty while it has none. A
  // controller places nothing while a live member names a cluster whose marker etcd lacks.
  std::string cluster;
};

/// Why `m` can't be a member key's value: the id not a node id (core/ids.hpp valid_name), the
/// cluster address not host:port, the public one neither that nor empty, or an address over 255
/// bytes or with a byte JSON would escape (a control, a quote, a backslash, non-ASCII), or the
/// cluster neither empty nor a cluster id.
/// nullopt when it can.
std::optional<std::string> invalid_reason(const member_info& m);
inline bool valid(const member_info& m) { return !invalid_reason(m); }

/// The value of a member key: {"id","cluster_address","public_address"}, and "cluster" when the
/// node has one. `m` must be valid.
std::string encode(const member_info& m);
/// Strict: those three fields and an optional "cluster", each once, strings, valid as above, at
/// most 1 KiB; nullopt for anything else. `lease` and `registered` are left 0.
std::optional<member_info> decode_member(std::string_view json);

}  // namespace kaiwa::cluster
