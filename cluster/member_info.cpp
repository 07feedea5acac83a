#include "cluster/member_info.hpp"

#include "cluster/detail/strict_object.hpp"

#include <algorithm>

#include "cluster/cluster_marker.hpp"
#include "core/address.hpp"
#include "core/ids.hpp"
#include "core/json.hpp"

namespace kaiwa::cluster {

namespace {

namespace dom = simdjson::dom;

/// A member key's value: an id (128 chars at most) and two addresses of max_address_bytes,
/// none escaped in JSON, fit with room to spare.
constexpr std::size_t max_member_bytes = 1 << 10;
constexpr std::size_t max_address_bytes = 255;

/// host:port, printable ASCII other than a quote or a backslash: an address encodes as itself,
/// so what a node writes always fits what every node reads back.
bool valid_address(std::string_view s) {
  return s.size() <= max_address_bytes &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return c > ' ' && c < 0x7f && c != '"' && c != '\\'; }) &&
         parse_host_port(s).has_value();
}

}  // namespace

std::optional<std::string> invalid_reason(const member_info& m) {
  if (!valid_name(m.id)) return "the id is not a node id";
  if (!valid_address(m.cluster_address))
    return "the cluster address is not host:port (printable, at most 255 bytes)";
  if (!m.public_address.empty() && !valid_address(m.public_address))
    return "the public address is not host:port (printable, at most 255 bytes)";
  if (!m.cluster.empty() && !valid_cluster_id(m.cluster)) return "the cluster is not a cluster id";
  return std::nullopt;
}

std::string encode(const member_info& m) {
  std::string out;
  json_writer w(out);
  w.begin_object()
      .field("id", m.id)
      .field("cluster_address", m.cluster_address)
      .field("public_address", m.public_address);
  if (!m.cluster.empty()) w.field("cluster", m.cluster);
  w.end_object();
  return out;
}

std::optional<member_info> decode_member(std::string_view json) {
  static constexpr std::array<std::string_view, 4> names{"id", "cluster_address", "public_address",
                                                         "cluster"};
  member_info m;
  std::array<std::string*, 4> into{&m.id, &m.cluster_address, &m.public_address, &m.cluster};
  // `cluster` is optional: members of a version before the cluster marker have none.
  bool read = detail::read_strict_object(json, max_member_bytes, names, 0b0111,
                                         [&](std::size_t i, dom::element v) {
                                           std::string_view s;
                                           if (v.get_string().get(s)) return false;
                                           *into[i] = s;
                                           return true;
                                         });
  if (!read || !valid(m)) return std::nullopt;
  return m;
}

}  // namespace kaiwa::cluster
