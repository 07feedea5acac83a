#include "cluster/replica_moves.hpp"

#include "cluster/detail/strict_object.hpp"

#include <algorithm>
#include <map>

#include "core/ids.hpp"
#include "core/json.hpp"

namespace kaiwa::cluster {

namespace {

namespace dom = simdjson::dom;

/// A request's value: two node ids or a number and a flag, with room to spare.
constexpr std::size_t max_request_bytes = 1 << 10;
constexpr auto max_grace = std::chrono::hours(1);

/// `a` led by `leader` from the next epoch, `leader` first in the replica list (the preferred
/// leader from now on).
shard_assignment led_by(shard_assignment a, const std::string& leader) {
  a.leader = leader;
  ++a.epoch;
  auto it = std::find(a.replicas.begin(), a.replicas.end(), leader);
  std::rotate(a.replicas.begin(), it, it + 1);
  return a;
}

/// The node of `eligible` that is not a replica of `a` and holds the fewest replicas (ties: by
/// id); nullopt when none is free.
std::optional<std::string> spare(const shard_assignment& a, const node_set& eligible,
                                 const std::map<std::string, std::size_t>& holds) {
  std::optional<std::string> best;
  std::size_t best_n = 0;
  for (auto& n : eligible) {
    if (a.holds(n)) continue;
    auto it = holds.find(n);
    auto count = it == holds.end() ? 0 : it->second;
    if (!best || count < best_n) {
      best = n;
      best_n = count;
    }
  }
  return best;
}

}  // namespace

move_step next_move_step(const shard_assignment& a, const move_request& m, const node_set& live) {
  move_step s;
  if (!live.contains(m.to)) {
    s.what = move_step::kind::abandon;
    s.why = m.to + " is not live";
    return s;
  }
  if (!a.holds(m.to)) {
    if (a.replicas.size() >= max_replicas) {
      s.what = move_step::kind::abandon;
      s.why = "the shard has " + std::to_string(max_replicas) + " replicas already";
      return s;
    }
    s.what = move_step::kind::write;
    s.next = a;
    s.next.replicas.push_back(m.to);
    return s;
  }
  if (!a.in_sync(m.to)) return s;  // wait
  if (a.leader != m.to) {
    s.what = move_step::kind::write;
    s.next = led_by(a, m.to);
    return s;
  }
  if (!m.from.empty() && m.from != m.to && a.holds(m.from)) {
    s.what = move_step::kind::write;
    s.next = a;
    std::erase(s.next.replicas, m.from);
    std::erase(s.next.isr, m.from);
    return s;
  }
  s.what = move_step::kind::done;
  return s;
}

drain_plan plan_drain(const assignments& current, const std::set<std::string>& drained,
                      const node_set& live, std::size_t replication_factor) {
  drain_plan plan;
  if (drained.empty()) return plan;
  node_set eligible;
  for (auto& n : live)
    if (!drained.contains(n)) eligible.insert(n);
  std::map<std::string, std::size_t> leads, holds;
  for (auto& [s, a] : current) {
    ++leads[a.leader];
    for (auto& r : a.replicas) ++holds[r];
  }
  std::set<std::string> busy;  // drained nodes some shard still needs a step for
  for (auto& [s, a] : current) {
    std::vector<std::string> mine;  // drained replicas of this shard
    for (auto& r : a.replicas)
      if (drained.contains(r)) mine.push_back(r);
    if (mine.empty()) continue;
    auto add = [&](const std::string& n) {
      auto b = a;
      b.replicas.push_back(n);
      ++holds[n];
      plan.changes.emplace(s, std::move(b));
    };
    bool needs_step = false;
    if (drained.contains(a.leader)) {
      needs_step = true;
      std::optional<std::string> next;
      for (auto& r : a.replicas) {
        if (!eligible.contains(r) || !a.in_sync(r)) continue;
        if (!next || leads[r] < leads[*next]) next = r;
      }
      if (next) {
        --leads[a.leader];
        ++leads[*next];
        plan.changes.emplace(s, led_by(a, *next));
      } else if (std::none_of(a.replicas.begin(), a.replicas.end(),
                              [&](auto& r) { return eligible.contains(r); }) &&
                 a.replicas.size() < max_replicas) {
        if (auto n = spare(a, eligible, holds)) add(*n);
      }  // else one in E is catching up: wait for it
    } else {
      std::vector<std::string> kept;
      for (auto& r : a.replicas)
        if (eligible.contains(r)) kept.push_back(r);
      if (kept.size() < replication_factor) {
        auto n = a.replicas.size() < max_replicas ? spare(a, eligible, holds) : std::nullopt;
        if (n) {
          needs_step = true;
          add(*n);
        }  // no node free: the drained replicas stay
      } else {
        needs_step = true;
        if (std::all_of(kept.begin(), kept.end(), [&](auto& r) { return a.in_sync(r); })) {
          auto b = a;
          for (auto& d : mine) {
            std::erase(b.replicas, d);
            std::erase(b.isr, d);
          }
          plan.changes.emplace(s, std::move(b));
        }  // else wait for the added ones
      }
    }
    if (needs_step) busy.insert(mine.begin(), mine.end());
  }
  for (auto& d : drained)
    if (!busy.contains(d)) plan.finished.insert(d);
  return plan;
}

std::string encode(const move_request& m) {
  std::string out;
  json_writer w(out);
  w.begin_object().field("to", m.to).field("from", m.from).end_object();
  return out;
}

std::optional<move_request> decode_move(std::string_view json) {
  static constexpr std::array<std::string_view, 2> names{"to", "from"};
  move_request m;
  bool read = detail::read_strict_object(json, max_request_bytes, names, 0b11,
                                         [&](std::size_t i, dom::element v) {
                                           std::string_view s;
                                           if (v.get_string().get(s)) return false;
                                           (i == 0 ? m.to : m.from) = s;
                                           return true;
                                         });
  if (!read || !valid_name(m.to) || (!m.from.empty() && !valid_name(m.from))) return std::nullopt;
  return m;
}

std::string encode(const drain_request& d) {
  std::string out;
  json_writer w(out);
  w.begin_object()
      .field("grace_ms", static_cast<std::int64_t>(d.grace.count()))
      .field("finished", d.finished)
      .end_object();
  return out;
}

std::optional<drain_request> decode_drain(std::string_view json) {
  static constexpr std::array<std::string_view, 2> names{"grace_ms", "finished"};
  drain_request d;
  bool read = detail::read_strict_object(
      json, max_request_bytes, names, 0b11, [&](std::size_t i, dom::element v) {
        if (i == 1) return !v.get_bool().get(d.finished);
        std::int64_t ms = 0;
        if (v.get_int64().get(ms) || ms < 0 ||
            ms > std::chrono::duration_cast<std::chrono::milliseconds>(max_grace).count())
          return false;
        d.grace = std::chrono::milliseconds(ms);
        return true;
      });
  if (!read) return std::nullopt;
  return d;
}

}  // namespace kaiwa::cluster
