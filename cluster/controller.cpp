#include "cluster/controller.hpp"

#include <algorithm>
#include <utility>

namespace kaiwa::cluster {

std::vector<std::string> balanced_nodes(const shard_map& map, const is_up& up) {
  std::vector<std::string> nodes;
  for (auto& m : map.members)
    if (!m.draining && up(m.id)) nodes.push_back(m.id);
  return nodes;
}

std::variant<shard_map, std::string> with_draining(const shard_map& map, const std::string& node) {
  auto next = map;
  auto m =
      std::find_if(next.members.begin(), next.members.end(), [&](auto& x) { return x.id == node; });
  if (m == next.members.end()) return "no member " + node;
  if (next.members.size() < 2)
    return std::string("the only member can't be drained: nowhere to move its shards");
  m->draining = true;
  next.touch();
  return next;
}

std::size_t controller::plan(const shard_map& map, const std::vector<std::string>& nodes,
                             const is_up& up, move_reply reply, std::string drained,
                             std::chrono::milliseconds grace) {
  auto plan = plan_rebalance(map, nodes);
  std::erase_if(plan, [&](auto& mv) { return !up(mv.from); });
  std::erase_if(plan, [&](auto& mv) {
    return moving_.contains(mv.shard) || std::any_of(queue_.begin(), queue_.end(), [&](auto& q) {
             return q.move.shard == mv.shard;
           });
  });
  if (reply || !drained.empty())
    plan_waiters_.push_back({std::move(reply), std::move(drained), grace});
  if (plan.empty()) return 0;  // the waiter is answered when the batch ends
  batch_planned_ = true;
  for (auto& mv : plan) queue_.push_back({std::move(mv), nullptr});
  return plan.size();
}

bool controller::enqueue(const shard_map& map, std::uint32_t shards, shard_t s,
                         const std::string& to, move_reply reply) {
  if (s >= shards) {
    reply("no shard " + std::to_string(s) + " (there are " + std::to_string(shards) + ")");
  } else if (std::none_of(map.members.begin(), map.members.end(),
                          [&](auto& m) { return m.id == to; })) {
    reply("no member " + to);
  } else if (map.owner(s) == to) {
    reply(std::string());
  } else {
    queue_.push_back({{s, map.owner(s), to}, std::move(reply)});
    return true;
  }
  return false;
}

std::vector<controller::started> controller::start(const shard_map& map, const is_up& up,
                                                   clock::time_point now) {
  std::vector<started> out;
  for (std::size_t n = queue_.size(); n > 0 && moving_.size() < concurrent_moves; --n) {
    auto q = std::move(queue_.front());
    queue_.pop_front();
    auto& mv = q.move;
    // An operator's move of a shard already moving, or a try again not due: later.
    if (moving_.contains(mv.shard) || q.due > now) {
      queue_.push_back(std::move(q));
      continue;
    }
    mv.from = map.owner(mv.shard);
    if (mv.from == mv.to) {
      if (q.reply) q.reply(std::string());
      continue;
    }
    bool from_up = up(mv.from);
    if (!from_up || !up(mv.to)) {
      batch_failed_ += 1;
      if (q.reply) q.reply("node " + (from_up ? mv.to : mv.from) + " is down");
      continue;
    }
    if (batch_moves_++ == 0) batch_started_ = now;
    out.push_back({mv});
    moving_.emplace(mv.shard, running_move{std::move(q), now});
  }
  return out;
}

controller::ended controller::finish(shard_t s, const std::string& err, clock::time_point now) {
  auto it = moving_.find(s);
  auto r = std::move(it->second);
  moving_.erase(it);
  auto took = now - r.started;
  if (!err.empty() && r.q.failed_tries + 1 < move_tries) {
    auto delay = clock::duration(move_retry_delay) * (1u << r.q.failed_tries);
    r.q.failed_tries += 1;
    r.q.due = now + delay;
    moves_retried_ += 1;
    auto mv = r.q.move;
    queue_.push_back(std::move(r.q));
    return {std::move(mv), nullptr, took, delay};
  }
  if (err.empty()) {
    moves_done_ += 1;
  } else {
    moves_failed_ += 1;
    batch_failed_ += 1;
  }
  return {std::move(r.q.move), std::move(r.q.reply), took, std::nullopt};
}

controller::batch_summary controller::end_batch(
    clock::time_point now,
    const std::function<void(const std::string&, std::chrono::milliseconds)>& drained) {
  batch_summary out{batch_moves_, batch_failed_, now - batch_started_};
  std::string err =
      batch_failed_ ? std::to_string(batch_failed_) + " moves failed (see the coordinator's log)"
                    : std::string();
  for (auto& w : std::exchange(plan_waiters_, {})) {
    if (!w.drained.empty() && err.empty()) drained(w.drained, w.grace);
    if (w.reply) w.reply(err);
  }
  batch_moves_ = 0;
  batch_failed_ = 0;
  batch_planned_ = false;
  return out;
}

std::vector<shard_t> controller::moving_with(const std::string& node) const {
  std::vector<shard_t> out;
  for (auto& [shard, r] : moving_)
    if (r.q.move.from == node || r.q.move.to == node) out.push_back(shard);
  return out;
}

}  // namespace kaiwa::cluster
