#include "cluster/shard_map.hpp"

#include <algorithm>
#include <charconv>
#include <map>

namespace kaiwa::cluster {

shard_map::shard_map(std::uint32_t shards, const std::string& owner)
    : coordinator(owner), epoch_(1), owners_(shards, owner) {}

void shard_map::assign(shard_t s, const std::string& node) {
  owners_.at(s) = node;
  ++epoch_;
}

std::uint32_t shard_map::count(std::string_view node) const {
  return static_cast<std::uint32_t>(std::count(owners_.begin(), owners_.end(), node));
}

// Lines: "kaiwa-shard-map 1", "epoch E", "coordinator ID", "member ID ADDRESS DRAINING" per
// member, then "owners N" and one line of N owners separated by spaces, runs compressed as
// "ID*COUNT".
std::string shard_map::encode() const {
  std::string out =
      "kaiwa-shard-map 1\nepoch " + std::to_string(epoch_) + "\ncoordinator " + coordinator + "\n";
  for (auto& m : members)
    out += "member " + m.id + " " + m.address + " " + (m.draining ? "1" : "0") + "\n";
  out += "owners " + std::to_string(owners_.size()) + "\n";
  for (std::size_t i = 0; i < owners_.size();) {
    auto j = i;
    while (j < owners_.size() && owners_[j] == owners_[i]) ++j;
    if (i > 0) out += ' ';
    out += (owners_[i].empty() ? "-" : owners_[i]) + "*" + std::to_string(j - i);
    i = j;
  }
  out += '\n';
  return out;
}

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    auto p = s.find(sep);
    if (p != 0) out.push_back(s.substr(0, p));
    if (p == std::string_view::npos) break;
    s.remove_prefix(p + 1);
  }
  return out;
}

std::optional<std::uint64_t> number(std::string_view s) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<shard_map> shard_map::decode(std::string_view text) {
  auto lines = split(text, '\n');
  if (lines.size() < 5 || lines[0] != "kaiwa-shard-map 1") return std::nullopt;
  shard_map m;
  std::optional<std::uint64_t> shards;
  bool has_epoch = false;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    auto words = split(lines[i], ' ');
    if (words.empty()) return std::nullopt;
    if (words[0] == "epoch" && words.size() == 2) {
      auto e = number(words[1]);
      if (!e) return std::nullopt;
      m.epoch_ = *e;
      has_epoch = true;
    } else if (words[0] == "coordinator" && words.size() == 2) {
      m.coordinator = std::string(words[1]);
    } else if (words[0] == "member" && words.size() == 4) {
      m.members.push_back({std::string(words[1]), std::string(words[2]), words[3] == "1"});
    } else if (words[0] == "owners" && words.size() == 2 && i + 1 < lines.size() && !shards) {
      shards = number(words[1]);
      if (!shards || *shards == 0 || *shards > max_shards) return std::nullopt;
      for (auto run : split(lines[++i], ' ')) {
        auto star = run.rfind('*');
        if (star == std::string_view::npos) return std::nullopt;
        auto n = number(run.substr(star + 1));
        auto owner = run.substr(0, star);
        // A run may not exceed the shards still unassigned (and no sum may wrap around).
        if (!n || *n > *shards - m.owners_.size()) return std::nullopt;
        m.owners_.insert(m.owners_.end(), *n, owner == "-" ? std::string() : std::string(owner));
      }
    } else {
      return std::nullopt;
    }
  }
  // What encode() writes back must decode again: a map without a coordinator would not.
  if (!shards || m.owners_.size() != *shards || !has_epoch || m.coordinator.empty())
    return std::nullopt;
  return m;
}

std::vector<shard_move> plan_rebalance(const shard_map& map,
                                       const std::vector<std::string>& nodes) {
  std::vector<shard_move> moves;
  if (nodes.empty()) return moves;
  auto sorted = nodes;
  std::sort(sorted.begin(), sorted.end());
  auto n = sorted.size();
  auto base = map.shards() / n, extra = map.shards() % n;
  // Targets: the first `extra` nodes (by current count, most first, so fewer moves) get one more.
  std::vector<std::pair<std::string, std::uint32_t>> by_count;
  for (auto& id : sorted) by_count.emplace_back(id, map.count(id));
  std::stable_sort(by_count.begin(), by_count.end(),
                   [](auto& a, auto& b) { return a.second > b.second; });
  std::map<std::string, std::int64_t> room_left;  // how many more shards a node should get
  for (std::size_t i = 0; i < n; ++i)
    room_left[by_count[i].first] =
        static_cast<std::int64_t>(base + (i < extra ? 1 : 0)) - by_count[i].second;
  // Shards to give away: those of nodes outside `nodes`, then the excess of over-full nodes.
  std::map<std::string, std::int64_t> excess;
  for (auto& [id, left] : room_left)
    if (left < 0) excess[id] = -left;
  std::vector<std::pair<shard_t, std::string>> givers;
  for (std::uint32_t s = 0; s < map.shards(); ++s) {
    auto& owner = map.owner(static_cast<shard_t>(s));
    if (!room_left.contains(owner)) {
      givers.emplace_back(static_cast<shard_t>(s), owner);
    } else if (auto e = excess.find(owner); e != excess.end() && e->second > 0) {
      e->second -= 1;
      givers.emplace_back(static_cast<shard_t>(s), owner);
    }
  }
  auto taker = room_left.begin();
  for (auto& [s, from] : givers) {
    while (taker != room_left.end() && taker->second <= 0) ++taker;
    if (taker == room_left.end()) break;
    moves.push_back({s, from, taker->first});
    taker->second -= 1;
  }
  return moves;
}

}  // namespace kaiwa::cluster
