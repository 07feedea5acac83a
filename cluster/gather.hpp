#pragma once
// Read queries across members (docs/read-side.md): a query some read needs answered by every
// other member, and the pages gathered until the last answers or the query's timeout passes.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cluster/members.hpp"
#include "cluster/shard_map.hpp"

namespace kaiwa::cluster {

/// Called once with the pages gathered; `partial` when a member that holds shards did not
/// answer (down, too late, or it could not).
using pages_done = std::function<void(std::vector<std::string>, bool partial)>;

/// Whom a query asks: every other member that holds shards and is up (one without shards has
/// nothing). `partial` when one that holds shards is down: its shards can't answer.
struct query_targets {
  std::vector<std::string> ask;
  bool partial = false;
};
query_targets targets(const shard_map& map, const std::string& self, const is_up& up);

/// The queries waiting for members' pages. Owned by the cluster actor (which sends the
/// questions and times them out); used on its thread only.
class gathers {
 public:
  /// A query asked of `ask`, partial already or not. Returns its id, which the questions and
  /// the timeout carry; with nobody to ask it ends at once (`done` is called) and returns
  /// nullopt.
  std::optional<std::uint64_t> open(const std::vector<std::string>& ask, bool partial,
                                    pages_done done);
  /// `node`'s page for query `id`; empty when it couldn't answer (its projection is
  /// rebuilding, say). Ignored when the query ended, or `node` was not asked or answered already.
  void answer(std::uint64_t id, const std::string& node, std::string page);
  /// The timeout of query `id` passed: it ends partial with the pages it has.
  void timed_out(std::uint64_t id);

  std::size_t waiting() const noexcept { return open_.size(); }

 private:
  struct gather {
    pages_done done;
    std::set<std::string> waiting;  // members asked and not answered
    std::vector<std::string> pages;
    bool partial = false;
  };
  void finish(std::map<std::uint64_t, gather>::iterator it);

  std::map<std::uint64_t, gather> open_;  // each for at most its timeout
  std::uint64_t next_ = 0;
};

}  // namespace kaiwa::cluster
