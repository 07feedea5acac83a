#include "cluster/in_sync_tracker.hpp"

#include <algorithm>

namespace kaiwa::cluster {

in_sync_tracker::in_sync_tracker(std::string self, const std::vector<std::string>& replicas,
                                 std::vector<std::string> isr, offset_t log_end, in_sync_config cfg,
                                 clock::time_point now)
    : self_(std::move(self)), log_end_(log_end), led_from_(log_end), cfg_(cfg) {
  for (auto& r : replicas)
    if (r != self_) followers_[r] = {0, now};
  set_isr(std::move(isr), now);
}

void in_sync_tracker::appended(offset_t end) { log_end_ = std::max(log_end_, end); }

void in_sync_tracker::acked(const std::string& node, offset_t end, clock::time_point now,
                            offset_t sent_end, clock::time_point sent_at) {
  auto it = followers_.find(node);
  if (it == followers_.end()) return;
  auto& f = it->second;
  f.unreachable = false;
  // A follower can't hold more than the leader wrote; a larger claim is clamped, not trusted.
  f.end = std::max(f.end, std::min(end, log_end_));
  if (f.end >= log_end_)
    f.caught_up_at = now;
  else if (f.end >= sent_end)
    f.caught_up_at = std::max(f.caught_up_at, sent_at);
}

offset_t in_sync_tracker::high_watermark() const {
  auto hw = log_end_;
  for (auto* members : {&isr_, &pending_})
    for (auto& node : *members)
      if (node != self_) hw = std::min(hw, end_of(node));
  return hw;
}

void in_sync_tracker::proposing(std::vector<std::string> next) {
  std::erase_if(next, [&](const std::string& n) { return !followers_.contains(n); });
  pending_ = std::move(next);
}

void in_sync_tracker::unreachable(const std::string& follower) {
  auto it = followers_.find(follower);
  if (it == followers_.end()) return;
  it->second.unreachable = true;
  it->second.end = 0;
}

std::vector<std::string> in_sync_tracker::lagging(clock::time_point now) const {
  std::vector<std::string> out;
  for (auto& node : isr_) {
    if (node == self_) continue;
    auto& f = followers_.at(node);
    if (f.unreachable || (f.end < log_end_ && now - f.caught_up_at > cfg_.max_lag))
      out.push_back(node);
  }
  return out;
}

std::vector<std::string> in_sync_tracker::caught_up() const {
  std::vector<std::string> out;
  // Until every isr member has answered, the high watermark counts the silent ones at 0 and is
  // below what earlier epochs acked; all of that is in the log this leader started with.
  auto hw = std::max(high_watermark(), led_from_);
  for (auto& [node, f] : followers_)
    if (!in_isr(node) && !f.unreachable && f.end >= hw) out.push_back(node);
  return out;
}

void in_sync_tracker::set_isr(std::vector<std::string> isr, clock::time_point now) {
  std::erase_if(isr, [&](const std::string& n) { return n != self_ && !followers_.contains(n); });
  if (std::find(isr.begin(), isr.end(), self_) == isr.end()) isr.insert(isr.begin(), self_);
  // A follower (re)joining counts as caught up from now: its lag is measured from its joining.
  for (auto& n : isr)
    if (n != self_ && !in_isr(n)) followers_.at(n).caught_up_at = now;
  isr_ = std::move(isr);
  pending_.clear();
}

offset_t in_sync_tracker::end_of(const std::string& replica) const {
  if (replica == self_) return log_end_;
  auto it = followers_.find(replica);
  return it == followers_.end() ? 0 : it->second.end;
}

bool in_sync_tracker::in_isr(const std::string& node) const {
  return std::find(isr_.begin(), isr_.end(), node) != isr_.end();
}

}  // namespace kaiwa::cluster
