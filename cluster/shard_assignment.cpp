#include "cluster/shard_assignment.hpp"

#include "cluster/detail/strict_object.hpp"

#include <algorithm>

#include "core/ids.hpp"
#include "core/json.hpp"

namespace kaiwa::cluster {

namespace {

namespace dom = simdjson::dom;

/// A stored assignment: 7 replicas and 7 in-sync ids of 128 bytes are ~2 KiB of JSON.
constexpr std::size_t max_encoded_bytes = 4 << 10;

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

/// A JSON array of node ids, at most max_replicas.
bool read_ids(dom::element e, std::vector<std::string>& out) {
  dom::array a;
  if (e.get_array().get(a)) return false;
  for (dom::element item : a) {
    std::string_view s;
    if (item.get_string().get(s) || out.size() == max_replicas) return false;
    out.emplace_back(s);
  }
  return true;
}

}  // namespace

bool shard_assignment::in_sync(std::string_view node) const { return contains(isr, node); }

bool shard_assignment::holds(std::string_view node) const { return contains(replicas, node); }

std::optional<std::string> invalid_reason(const shard_assignment& a) {
  if (a.epoch == 0) return "epoch 0";
  if (a.replicas.empty() || a.replicas.size() > max_replicas)
    return "replicas: " + std::to_string(a.replicas.size()) + ", not 1 to " +
           std::to_string(max_replicas);
  for (std::size_t i = 0; i < a.replicas.size(); ++i) {
    if (!valid_name(a.replicas[i])) return "replica '" + a.replicas[i] + "' is not a node id";
    if (std::find(a.replicas.begin(), a.replicas.begin() + i, a.replicas[i]) !=
        a.replicas.begin() + i)
      return "replica " + a.replicas[i] + " listed twice";
  }
  if (a.isr.empty()) return "no replica in sync";
  for (std::size_t i = 0; i < a.isr.size(); ++i) {
    if (!a.holds(a.isr[i])) return "in-sync " + a.isr[i] + " is not a replica";
    if (std::find(a.isr.begin(), a.isr.begin() + i, a.isr[i]) != a.isr.begin() + i)
      return "in-sync " + a.isr[i] + " listed twice";
  }
  if (!a.in_sync(a.leader)) return "leader '" + a.leader + "' is not in sync";
  return std::nullopt;
}

std::string encode(const shard_assignment& a) {
  std::string out;
  json_writer w(out);
  w.begin_object().field("epoch", a.epoch).field("leader", a.leader).key("replicas").begin_array();
  for (auto& r : a.replicas) w.value(r);
  w.end_array().key("isr").begin_array();
  for (auto& r : a.isr) w.value(r);
  w.end_array().end_object();
  return out;
}

std::optional<shard_assignment> decode_assignment(std::string_view json) {
  static constexpr std::array<std::string_view, 4> names{"epoch", "leader", "replicas", "isr"};
  shard_assignment a;
  bool read = detail::read_strict_object(json, max_encoded_bytes, names, 0b1111,
                                         [&](std::size_t i, dom::element v) {
                                           std::string_view s;
                                           switch (i) {
                                             case 0:
                                               return !v.get_uint64().get(a.epoch);
                                             case 1:
                                               if (v.get_string().get(s)) return false;
                                               a.leader = s;
                                               return true;
                                             case 2:
                                               return read_ids(v, a.replicas);
                                             default:
                                               return read_ids(v, a.isr);
                                           }
                                         });
  if (!read || !valid(a)) return std::nullopt;
  return a;
}

}  // namespace kaiwa::cluster
