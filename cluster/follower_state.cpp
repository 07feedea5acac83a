#include "cluster/follower_state.hpp"

#include <algorithm>

namespace kaiwa::cluster {

follower_state::follower_state(offset_t log_end, offset_t applied, leader_epochs history,
                               epoch_t followed)
    : log_end_(log_end),
      applied_(std::min(applied, log_end)),
      history_(std::move(history)),
      followed_(std::max(followed, history_.latest())) {}

append_decision follower_state::decide(const append_request& req) const {
  using kind = append_decision::kind;
  append_decision d;
  if (req.epoch < followed_) {
    d.what = kind::stale;
    d.epoch = followed_;
    return d;
  }
  // A newer leader: entries past what was applied (hence acked) may not be in its log. With
  // none such, there is nothing to reconcile.
  if (req.epoch > followed_ && log_end_ > applied_) {
    d.what = kind::reconcile;
    return d;
  }
  epoch_t last = 0;
  for (auto e : req.entries) {
    if (e == 0 || e > req.epoch || e < last) {
      d.what = kind::invalid;
      return d;
    }
    last = e;
  }
  if (req.first == 0) {
    d.what = kind::invalid;
    return d;
  }
  if (req.first > log_end_ + 1) {
    d.what = kind::behind;
    d.log_end = log_end_;
    return d;
  }
  d.skip = static_cast<std::size_t>(
      std::min<offset_t>(log_end_ + 1 - req.first, static_cast<offset_t>(req.entries.size())));
  d.count = req.entries.size() - d.skip;
  // What is appended continues the log: no entry of an epoch older than its last.
  if (d.count > 0 && req.entries[d.skip] < history_.latest()) {
    d = {};
    d.what = kind::invalid;
    return d;
  }
  auto end = log_end_ + d.count;
  auto to = std::min(req.high_watermark, end);
  d.apply_to = to > applied_ ? to : 0;
  return d;
}

void follower_state::appended(const append_request& req, std::size_t skip, std::size_t count) {
  auto at = req.first + skip;
  for (std::size_t i = 0; i < count; ++i) history_.record(req.entries[skip + i], at + i);
  log_end_ = std::max<offset_t>(log_end_, at + count - 1);
  followed_ = std::max(followed_, req.epoch);
}

void follower_state::applied(offset_t offset) {
  applied_ = std::max(applied_, std::min(offset, log_end_));
}

void follower_state::reconciled(offset_t keep_through, epoch_t epoch) {
  log_end_ = std::max(applied_, std::min(log_end_, keep_through));
  history_.truncate_to(log_end_);
  followed_ = std::max(followed_, epoch);
}

}  // namespace kaiwa::cluster
