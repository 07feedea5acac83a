#include "cluster/admin_view.hpp"

#include "core/json.hpp"

namespace kaiwa::cluster {

std::string members_view(const shard_map& map, const std::string& self, std::uint32_t shards,
                         const controller& moves, const is_up& up,
                         const std::map<std::string, std::string>& loads, const std::string& etcd) {
  std::string out;
  json_writer w(out);
  w.begin_object()
      .field("node", self)
      .field("coordinator", map.coordinator)
      .field("epoch", map.epoch())
      .field("shards", std::uint64_t{shards})
      .field("moving", moves.moving())
      .field("moves_done", moves.moves_done())
      .field("moves_failed", moves.moves_failed())
      .field("moves_retried", moves.moves_retried())
      .field("moves_queued", std::uint64_t{moves.queued()});
  w.key("members").begin_array();
  for (auto& m : map.members) {
    w.begin_object()
        .field("id", m.id)
        .field("address", m.address)
        .field("state", !up(m.id)    ? "down"
                        : m.draining ? "draining"
                                     : "up")
        .field("shards", std::uint64_t{map.count(m.id)});
    if (auto l = loads.find(m.id); l != loads.end()) w.key("load").raw(l->second);
    w.end_object();
  }
  w.end_array();
  if (!etcd.empty()) w.key("etcd").raw(etcd);
  w.end_object();
  return out;
}

std::string shards_view(const shard_map& map, const std::string& self, std::uint32_t shards,
                        const std::function<bool(shard_t)>& releasing,
                        const std::vector<std::optional<shard_assignment>>& assigned) {
  std::string out;
  json_writer w(out);
  w.begin_object()
      .field("epoch", map.epoch())
      .field("coordinator", map.coordinator)
      .field("shards", std::uint64_t{shards});
  w.key("owners").begin_array();
  for (std::uint32_t i = 0; i < map.shards(); ++i) {
    auto s = static_cast<shard_t>(i);
    w.begin_object().field("shard", std::uint64_t{i}).field("owner", map.owner(s));
    if (map.owner(s) == self && releasing(s)) w.field("state", "moving");
    if (i < assigned.size() && assigned[i]) {
      auto& a = *assigned[i];
      w.field("epoch", a.epoch);
      w.key("replicas").begin_array();
      for (auto& r : a.replicas) w.value(r);
      w.end_array().key("isr").begin_array();
      for (auto& r : a.isr) w.value(r);
      w.end_array();
    }
    w.end_object();
  }
  w.end_array().end_object();
  return out;
}

}  // namespace kaiwa::cluster
