#include "cluster/gather.hpp"

#include <utility>

namespace kaiwa::cluster {

query_targets targets(const shard_map& map, const std::string& self, const is_up& up) {
  query_targets out;
  for (auto& m : map.members) {
    if (m.id == self || map.count(m.id) == 0) continue;
    if (up(m.id))
      out.ask.push_back(m.id);
    else
      out.partial = true;
  }
  return out;
}

std::optional<std::uint64_t> gathers::open(const std::vector<std::string>& ask, bool partial,
                                           pages_done done) {
  auto id = next_++;
  gather g;
  g.done = std::move(done);
  g.waiting.insert(ask.begin(), ask.end());
  g.partial = partial;
  auto it = open_.emplace(id, std::move(g)).first;
  if (it->second.waiting.empty()) {
    finish(it);
    return std::nullopt;
  }
  return id;
}

void gathers::answer(std::uint64_t id, const std::string& node, std::string page) {
  auto it = open_.find(id);
  if (it == open_.end()) return;  // too late: the reply went out partial
  auto& g = it->second;
  if (g.waiting.erase(node) == 0) return;  // not asked, or answered already
  if (page.empty())
    g.partial = true;
  else
    g.pages.push_back(std::move(page));
  if (g.waiting.empty()) finish(it);
}

void gathers::timed_out(std::uint64_t id) {
  auto it = open_.find(id);
  if (it != open_.end()) finish(it);
}

void gathers::finish(std::map<std::uint64_t, gather>::iterator it) {
  auto g = std::move(it->second);
  open_.erase(it);
  if (!g.waiting.empty()) g.partial = true;
  g.done(std::move(g.pages), g.partial);
}

}  // namespace kaiwa::cluster
