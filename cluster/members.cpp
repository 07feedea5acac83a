#include "cluster/members.hpp"

#include "core/address.hpp"
#include "core/ids.hpp"

namespace kaiwa::cluster {

bool should_redial(const std::string& address, const std::vector<std::string>& join,
                   const shard_map& map) {
  return std::find(join.begin(), join.end(), address) != join.end() ||
         std::any_of(map.members.begin(), map.members.end(),
                     [&](auto& m) { return m.address == address; });
}

bool valid_hello(std::string_view id, std::string_view address) {
  auto hp = parse_host_port(address);
  return valid_name(id) && hp && hp->host.find_first_of(" \n") == std::string::npos;
}

std::optional<shard_map> admitted(const shard_map& map, const std::string& id,
                                  const std::string& address, const std::string& self) {
  auto m =
      std::find_if(map.members.begin(), map.members.end(), [&](auto& x) { return x.id == id; });
  if (m != map.members.end() && m->address == address && (!m->draining || id == self))
    return std::nullopt;
  auto next = map;
  if (m != map.members.end()) {
    auto& mine = next.members[static_cast<std::size_t>(m - map.members.begin())];
    mine.address = address;
    mine.draining = false;
  } else {
    next.members.push_back({id, address, false});
  }
  next.touch();
  return next;
}

}  // namespace kaiwa::cluster
