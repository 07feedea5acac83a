#pragma once
// Membership as one node sees it: which other members it is connected to, at which address,
// and which addresses it dials again. docs/cluster.md, "Membership".

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cluster/shard_map.hpp"

namespace kaiwa::cluster {

/// Whether a member is up (this node always is).
using is_up = std::function<bool(const std::string&)>;

/// Whether a lost or refused `address` is dialled again: only members (the map's) and the
/// addresses this node was told to join.
bool should_redial(const std::string& address, const std::vector<std::string>& join,
                   const shard_map& map);

/// Whether a hello's node id and cluster address can be taken in: both end up in the shard
/// map's text form, which has no room for spaces or newlines.
bool valid_hello(std::string_view id, std::string_view address);

/// The coordinator's map once `id` (reached at `address`) is a member: added, or its address
/// updated; one that comes back after a drain (restarted after maintenance) takes shards again,
/// except the coordinator itself (`self`). nullopt when nothing changes.
std::optional<shard_map> admitted(const shard_map& map, const std::string& id,
                                  const std::string& address, const std::string& self);

/// The other members this node knows, by node id: the address it reached each at, the
/// connection to its cluster actor while it is up, and the lane that groups its sessions in
/// this node's rooms; plus the addresses whose dials keep failing (logged once per run).
///
/// `Handle` is a connection (caf::actor in the node): default-constructed means none, it tests
/// as bool and compares with ==. `Source` names a connection in a down notice (caf::actor_addr),
/// hashable. Owned by the cluster actor; used on its thread only.
template <class Handle, class Source>
class members {
 public:
  /// The member `id` went down: where it was, so that it can be dialled again.
  struct lost {
    std::string id;
    std::string address;
  };

  explicit members(std::string self) : self_(std::move(self)) {}

  /// `id` is up at `address` through `handle` (named `source` in down notices). False when
  /// nothing changed: it is this node, the handle is null, or it is the connection already
  /// known (a member answers a hello and says hello itself).
  bool up(const std::string& id, const std::string& address, Handle handle, Source source) {
    if (id == self_ || !handle) return false;
    auto& p = peers_[id];
    if (p.handle == handle) return false;
    p.address = address;
    p.handle = std::move(handle);
    p.source = source;
    by_source_[std::move(source)] = id;
    return true;
  }

  /// The connection `source` ended. The member that is down because of it; nullopt when it
  /// was no member's, or an older connection of a member that has a newer one up.
  std::optional<lost> down(const Source& source) {
    auto it = by_source_.find(source);
    if (it == by_source_.end()) return std::nullopt;
    auto id = std::move(it->second);
    by_source_.erase(it);
    auto& p = peers_[id];
    if (p.handle && !(p.source == source)) return std::nullopt;
    p.handle = Handle{};
    return lost{std::move(id), p.address};
  }

  /// The connection to `id`'s cluster actor: null while it is down, or unknown.
  Handle handle(const std::string& id) const {
    auto p = peers_.find(id);
    return p == peers_.end() ? Handle{} : p->second.handle;
  }

  /// The member whose current connection is `source`; nullopt for any other (so a message is
  /// attributed by the connection it came on, not by what it says).
  std::optional<std::string> id_of(const Source& source) const {
    auto it = by_source_.find(source);
    if (it == by_source_.end()) return std::nullopt;
    auto p = peers_.find(it->second);
    if (p == peers_.end() || !p->second.handle || !(p->second.source == source))
      return std::nullopt;
    return it->second;
  }

  /// Whether a member reached at `address` is up (no need to dial it).
  bool connected_to(const std::string& address) const {
    return std::any_of(peers_.begin(), peers_.end(),
                       [&](auto& kv) { return kv.second.address == address && kv.second.handle; });
  }

  /// Members up, this node included.
  std::size_t up_count() const {
    return 1 + static_cast<std::size_t>(std::count_if(
                   peers_.begin(), peers_.end(), [](auto& kv) { return bool(kv.second.handle); }));
  }

  /// Groups `id`'s sessions in this node's rooms (client_link::lane): the same for the node's
  /// lifetime, across its reconnections.
  const void* lane(const std::string& id) { return peers_[id].lane.get(); }

  /// Calls `f(id, handle)` for each member that is up.
  template <class F>
  void each_up(F&& f) const {
    for (auto& [id, p] : peers_)
      if (p.handle) f(id, p.handle);
  }

  /// Calls `f(id, handle)` for each node up that `map` doesn't name: one that joined through
  /// this node while this node had no map yet (it answered that hello with none), and that
  /// learns the members and the coordinator only from the map this node passes on.
  template <class F>
  void each_joining(const shard_map& map, F&& f) const {
    for (auto& [id, p] : peers_)
      if (p.handle &&
          std::none_of(map.members.begin(), map.members.end(), [&](auto& m) { return m.id == id; }))
        f(id, p.handle);
  }

  /// A dial of `address` failed: true for the first failure of a run (the one to log).
  bool dial_failed(const std::string& address) { return failing_.insert(address).second; }
  /// A dial of `address` reached its cluster actor: the run of failures ended.
  void dial_succeeded(const std::string& address) { failing_.erase(address); }

 private:
  struct peer {
    std::string address;
    Handle handle;  // null while down
    Source source;  // handle's name in down notices
    std::shared_ptr<char> lane = std::make_shared<char>();
  };

  std::string self_;
  std::map<std::string, peer> peers_;                  // by node id; never erased (lanes stay)
  std::unordered_map<Source, std::string> by_source_;  // connections being watched
  std::set<std::string> failing_;                      // addresses whose last dial failed
};

}  // namespace kaiwa::cluster
