#pragma once
// Routing between nodes, as one node keeps it: this node's sessions that rooms of other nodes
// know, the rooms elsewhere they joined, their requests not yet answered, and the stand-ins
// ("remote links") for other nodes' sessions in this node's rooms. docs/cluster.md, "Routing".

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/shard.hpp"

namespace kaiwa::cluster {

/// The raw request id a reply answers (as it appears in the reply: a JSON string with its
/// quotes, or a number). Replies start {"op":"...","id":<raw id>,...}; backfill events carry
/// no id and are not answers: nullopt.
inline std::optional<std::string_view> answered_id(std::string_view payload) {
  auto at = payload.find(R"(,"id":)");
  if (at == std::string_view::npos || at > 32) return std::nullopt;
  auto rest = payload.substr(at + 6);
  std::size_t end = 0;
  if (!rest.empty() && rest[0] == '"') {
    for (end = 1; end < rest.size() && rest[end] != '"'; ++end)
      if (rest[end] == '\\') ++end;
    ++end;
  } else {
    end = rest.find_first_of(",}");
  }
  if (end == std::string_view::npos || end > rest.size()) return std::nullopt;
  return rest.substr(0, end);
}

/// The routing tables of one node. `Link` is a session of this node (client_link), held
/// weakly: the gateway owns it. `Proxy` is the stand-in for a session of another node, held
/// here while rooms of this node need it. Owned by the cluster actor; used on its thread only.
template <class Link, class Proxy>
class routes {
 public:
  /// A request to another node that will never be answered (the node went down).
  struct unanswered {
    std::shared_ptr<Link> link;
    std::string request_id;   // raw, as the session sent it
    std::uint32_t count = 0;  // requests with that id still waiting
  };

  /// Links are pruned of sessions that ended once per this many commands routed.
  static constexpr std::uint64_t prune_every = 4096;

  // -- this node's sessions -----------------------------------------------------------------

  /// Rooms elsewhere will address `link` by `id`.
  void remember(std::uint64_t id, const std::shared_ptr<Link>& link) { links_[id] = link; }

  /// The session `id`, while it lives (forgotten once it ended).
  std::shared_ptr<Link> local(std::uint64_t id) {
    auto it = links_.find(id);
    if (it == links_.end()) return nullptr;
    auto link = it->second.lock();
    if (!link) links_.erase(it);
    return link;
  }

  /// One command routed elsewhere: every prune_every, sessions that ended are forgotten.
  void routed() {
    if (++routed_ % prune_every != 0) return;
    std::erase_if(links_, [](auto& kv) { return kv.second.expired(); });
  }

  std::size_t links() const noexcept { return links_.size(); }

  // -- their subscriptions to rooms elsewhere -----------------------------------------------

  void joined(std::uint64_t id, const std::string& room) { subs_[id].insert(room); }
  void left(std::uint64_t id, const std::string& room) {
    auto it = subs_.find(id);
    if (it == subs_.end()) return;
    it->second.erase(room);
    if (it->second.empty()) subs_.erase(it);
  }
  bool subscribed(std::uint64_t id, const std::string& room) const {
    auto it = subs_.find(id);
    return it != subs_.end() && it->second.contains(room);
  }

  /// The subscriptions to rooms for which `gone(room)` holds (their node went down): forgotten,
  /// and returned with their sessions, which must resume with `since`. Sessions that ended are
  /// forgotten with all their subscriptions.
  std::vector<std::pair<std::shared_ptr<Link>, std::string>> lose(
      const std::function<bool(const std::string&)>& gone) {
    std::vector<std::pair<std::shared_ptr<Link>, std::string>> lost;
    for (auto sub = subs_.begin(); sub != subs_.end();) {
      auto link = local(sub->first);
      for (auto room = sub->second.begin(); room != sub->second.end();) {
        if (!gone(*room)) {
          ++room;
          continue;
        }
        if (link) lost.emplace_back(link, *room);
        room = sub->second.erase(room);
      }
      sub = sub->second.empty() || !link ? subs_.erase(sub) : std::next(sub);
    }
    return lost;
  }

  // -- their requests to other nodes --------------------------------------------------------

  /// `link` (by `id`) sent request `request_id` to `node`, the leader of the room's `shard`.
  /// Held until it is answered: for a session that closes meanwhile, and for the admin API's
  /// one-request links, which nothing else holds. The same id again after it was abandoned (a
  /// client resending after its `timeout`) waits afresh.
  void expect(std::uint64_t id, std::string_view request_id, const std::string& node, shard_t shard,
              std::shared_ptr<Link> link) {
    auto& a = awaiting_[key(id, request_id)];
    if (a.abandoned) a = {};
    a.node = node;
    a.shard = shard;
    a.link = std::move(link);
    a.count += 1;
  }

  /// A reply to session `id` came back: the request it answers is no longer waiting. False when
  /// the session must not get it: its request was abandoned, already answered `timeout`, and a
  /// request gets one answer (PROTOCOL.md: never both an error and a success).
  bool answered(std::uint64_t id, std::string_view payload) {
    if (awaiting_.empty()) return true;
    auto request = answered_id(payload);
    if (!request) return true;
    auto it = awaiting_.find(key(id, *request));
    if (it == awaiting_.end()) return true;
    bool deliver = !it->second.abandoned;
    if (--it->second.count == 0) awaiting_.erase(it);
    return deliver;
  }

  /// The requests `node` never answered (it went down): forgotten, and returned so that each
  /// gets an answer (the abandoned ones have had theirs).
  std::vector<unanswered> unanswered_by(const std::string& node) {
    std::vector<unanswered> out;
    std::erase_if(awaiting_, [&](auto& kv) {
      auto& [k, a] = kv;
      if (a.node != node) return false;
      if (!a.abandoned) out.push_back({std::move(a.link), k.substr(k.find(' ') + 1), a.count});
      return true;
    });
    return out;
  }

  /// The requests sent to a node that no longer leads their shard (`moved(shard, node)`): a
  /// leader paused or cut off keeps its connections, so no `down` answers them, and its
  /// clients would wait until the node is declared down (seconds after the shard serves
  /// again elsewhere). Returned so that each gets an answer now; kept, abandoned, until the
  /// old leader's late answer comes (it is dropped) or the node goes down.
  std::vector<unanswered> abandon(const std::function<bool(shard_t, const std::string&)>& moved) {
    std::vector<unanswered> out;
    for (auto& [k, a] : awaiting_) {
      if (a.abandoned || !moved(a.shard, a.node)) continue;
      a.abandoned = true;
      out.push_back({a.link, k.substr(k.find(' ') + 1), a.count});
    }
    return out;
  }

  std::size_t awaiting() const noexcept { return awaiting_.size(); }

  // -- stand-ins for other nodes' sessions --------------------------------------------------

  /// The stand-in for session `id` of `node`: null when there is none yet (the caller makes
  /// one in place).
  std::shared_ptr<Proxy>& proxy(const std::string& node, std::uint64_t id) {
    return proxies_[{node, id}];
  }
  /// No room of this node needs the stand-in for session `id` of `node` any more.
  void drop_proxy(const std::string& node, std::uint64_t id) { proxies_.erase({node, id}); }
  /// The stand-ins for `node`'s sessions (it went down): forgotten, and returned so that
  /// their rooms drop them.
  std::vector<std::shared_ptr<Proxy>> take_proxies(const std::string& node) {
    std::vector<std::shared_ptr<Proxy>> out;
    auto it = proxies_.lower_bound({node, 0});
    while (it != proxies_.end() && it->first.first == node) {
      out.push_back(std::move(it->second));
      it = proxies_.erase(it);
    }
    return out;
  }
  std::size_t proxies() const noexcept { return proxies_.size(); }

 private:
  static std::string key(std::uint64_t id, std::string_view request_id) {
    auto k = std::to_string(id);
    k += ' ';
    k += request_id;
    return k;
  }

  struct waiting {
    std::string node;
    shard_t shard = 0;
    std::shared_ptr<Link> link;
    std::uint32_t count = 0;
    bool abandoned = false;  // answered `timeout` already (abandon)
  };

  std::unordered_map<std::uint64_t, std::weak_ptr<Link>> links_;  // by link id
  std::uint64_t routed_ = 0;
  std::unordered_map<std::uint64_t, std::set<std::string>> subs_;  // link id -> rooms elsewhere
  std::unordered_map<std::string, waiting> awaiting_;              // by "link id" SP raw request id
  std::map<std::pair<std::string, std::uint64_t>, std::shared_ptr<Proxy>> proxies_;
};

}  // namespace kaiwa::cluster
