#include "cluster/leader_epochs.hpp"

#include <algorithm>

namespace kaiwa::cluster {

std::optional<leader_epochs> leader_epochs::from(std::vector<entry> entries) {
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].start == 0) return std::nullopt;
    if (i > 0 &&
        (entries[i].epoch <= entries[i - 1].epoch || entries[i].start <= entries[i - 1].start))
      return std::nullopt;
  }
  leader_epochs h;
  h.entries_ = std::move(entries);
  return h;
}

bool leader_epochs::record(epoch_t epoch, offset_t offset) {
  if (offset == 0) return false;
  if (!entries_.empty()) {
    auto& last = entries_.back();
    if (epoch == last.epoch) return offset >= last.start;
    if (epoch < last.epoch || offset <= last.start) return false;
  }
  entries_.push_back({epoch, offset});
  return true;
}

std::optional<offset_t> leader_epochs::last_of(epoch_t epoch, offset_t log_end) const {
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [&](const entry& e) { return e.epoch == epoch; });
  if (it == entries_.end() || it->start > log_end) return std::nullopt;
  auto next = std::next(it);
  return next == entries_.end() ? log_end : std::min(log_end, next->start - 1);
}

void leader_epochs::truncate_to(offset_t log_end) {
  std::erase_if(entries_, [&](const entry& e) { return e.start > log_end; });
}

std::optional<offset_t> divergence(const leader_epochs& follower, offset_t follower_end,
                                   const leader_epochs& leader, offset_t leader_end) {
  if (follower_end == 0) return offset_t{0};
  auto& f = follower.entries();
  for (auto it = f.rbegin(); it != f.rend(); ++it) {
    auto in_leader = leader.last_of(it->epoch, leader_end);
    if (!in_leader) continue;
    auto in_follower = follower.last_of(it->epoch, follower_end);
    if (!in_follower) continue;
    return std::min(*in_follower, *in_leader);
  }
  // No epoch in common: nothing is shared if the leader's history reaches offset 1 (an empty
  // leader history covers nothing: its log is empty).
  auto& l = leader.entries();
  if (leader_end == 0 || (!l.empty() && l.front().start == 1)) return offset_t{0};
  return std::nullopt;
}

}  // namespace kaiwa::cluster
