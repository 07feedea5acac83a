#include "cluster/shard_replica.hpp"

#include <algorithm>

#include "cluster/replication_wire.hpp"
#include "core/log.hpp"

namespace kaiwa::cluster {

namespace {

/// Entries one append carries at most (and one apply): a follower far behind catches up in
/// batches of this many, one in flight at a time.
constexpr std::size_t batch_entries = 256;
/// A batch unanswered this long is sent again: its connection broke, or it was dropped.
constexpr auto resend_after = std::chrono::milliseconds(250);

using answer_kind = append_answer::kind;

}  // namespace

shard_replica::shard_replica(shard_t shard, std::string self, replica_store& store, send_fn send,
                             offset_t log_end, offset_t applied, leader_epochs history,
                             epoch_t followed, in_sync_config cfg)
    : shard_(shard),
      self_(std::move(self)),
      store_(store),
      send_(std::move(send)),
      cfg_(cfg),
      log_end_(log_end),
      appending_(log_end),
      applied_(std::min(applied, log_end)),
      history_(std::move(history)),
      followed_(std::max(followed, history_.latest())) {}

offset_t shard_replica::high_watermark() const {
  if (!tracker_) return applied_;
  auto hw = std::min(tracker_->high_watermark(), log_end_);
  // With fewer than min_insync in sync, this leader's own writes are neither acked nor applied
  // (an ack means that many disks), but the log it leads from is still committed once the isr
  // holds it: earlier leaders may have acked all of it (the follower learns that only from the
  // next append, which a dead leader never sends), and until it is applied the shard is not
  // served (led_from), so a sole surviving replica would serve none of its acked events.
  if (!tracker_->writable()) hw = std::min(hw, led_from_);
  return std::max(applied_, hw);
}

// -- leader -----------------------------------------------------------------------------------

void shard_replica::lead(const shard_assignment& a, clock::time_point now) {
  replicas_ = a.replicas;
  if (leading() && a.epoch == epoch_) return reassigned(a, now);
  if (leading()) step_down(replicate_error::deposed);
  now_ = now;
  role_ = role::leader;
  storage_failed_ = false;
  epoch_ = a.epoch;
  followed_ = std::max(followed_, a.epoch);
  leader_ = self_;
  follower_.reset();
  reconciling_ = false;
  needs_snapshot_ = false;
  led_from_ = appending_;
  tracker_ = std::make_unique<in_sync_tracker>(self_, a.replicas, a.isr, log_end_, cfg_, now);
  peers_.clear();
  for (auto& r : a.replicas)
    if (r != self_) peers_[r] = {log_end_ + 1, false, {}, 0};
  // Each follower answers the first (empty) append with where its log ends, or reconciles.
  for (auto& [node, p] : peers_) send_to(node);
  advance();
}

void shard_replica::reassigned(const shard_assignment& a, clock::time_point now) {
  now_ = now;
  std::vector<std::string> followers;
  for (auto& r : a.replicas)
    if (r != self_) followers.push_back(r);
  auto same_peers = followers.size() == peers_.size() &&
                    std::all_of(followers.begin(), followers.end(),
                                [&](const std::string& r) { return peers_.contains(r); });
  if (same_peers && a.isr == tracker_->isr()) return;
  // The controller changed the replicas or the isr at this epoch (a removed member replaced):
  // the assignment's isr is what etcd holds. Followers that stay keep what they acked.
  auto next = std::make_unique<in_sync_tracker>(self_, a.replicas, a.isr, log_end_, cfg_, now);
  for (auto& r : followers) next->acked(r, tracker_->end_of(r), now);
  tracker_ = std::move(next);
  std::erase_if(peers_, [&](const auto& p) {
    return std::find(followers.begin(), followers.end(), p.first) == followers.end();
  });
  for (auto& r : followers)
    if (!peers_.contains(r)) {
      peers_[r] = {log_end_ + 1, false, {}, 0};
      send_to(r);
    }
  advance();
}

void shard_replica::replicate(std::string payload, acked_fn acked) {
  if (!leading()) return acked(replicate_error::not_leader);
  if (damaged_) return acked(replicate_error::storage);
  if (!tracker_->writable()) return acked(replicate_error::not_enough_in_sync);
  auto offset = ++appending_;
  history_.record(epoch_, offset);
  bool starts = history_.entries().back().start == offset;
  waiting_.emplace_back(offset, std::move(acked));
  ++appends_in_flight_;
  store_.append({{offset, epoch_, std::move(payload), starts}}, [this, offset](bool ok) {
    if (landed(offset, ok)) progress();
  });
}

bool shard_replica::landed(offset_t last, bool ok) {
  --appends_in_flight_;
  // Appends complete in the order they were made: the log is durable up to `last`, unless one
  // before failed (then what comes after it is not the log: a hole before it).
  if (!ok) damaged_ = true;
  if (!damaged_) {
    log_end_ = std::max(log_end_, last);
    if (follower_)
      follower_ = std::make_unique<follower_state>(log_end_, applied_, history_, followed_);
    return true;
  }
  if (leading()) step_down(replicate_error::storage);
  repair();
  return false;
}

void shard_replica::repair() {
  // Once nothing is in flight, every append made has reached the store, so cutting the log
  // back to what landed in order leaves nothing after it for a restart to take as the log.
  if (!damaged_ || appends_in_flight_ > 0 || !store_.truncate(log_end_)) return;
  damaged_ = false;
  appending_ = log_end_;
  history_.truncate_to(log_end_);
  if (follower_)
    follower_ = std::make_unique<follower_state>(log_end_, applied_, history_, followed_);
}

void shard_replica::progress() {
  if (!leading()) return;
  tracker_->appended(log_end_);
  for (auto& [node, p] : peers_) send_to(node);
  advance();
}

void shard_replica::send_to(const std::string& node) {
  auto& p = peers_.at(node);
  if (p.in_flight || p.before_start) return;
  append_message m{shard_, epoch_, p.next, high_watermark(), {}};
  if (p.next <= log_end_) {
    auto entries = store_.read(p.next - 1, batch_entries);
    if (!entries) return;  // tried again at the next tick
    if (entries->empty() || entries->front().offset != p.next) {
      // Retention trimmed what it needs next (it was out of the isr, or new).
      log(log_level::warn, "replica_behind_log_start",
          {{"shard", std::to_string(shard_)},
           {"follower", node},
           {"next", std::to_string(p.next)}});
      p.before_start = true;
      return;
    }
    for (auto& e : *entries) {
      if (e.offset > log_end_) break;
      m.entries.push_back({e.epoch, std::move(e.payload)});
    }
  }
  p.in_flight = true;
  p.sent = now_;
  p.sent_end = log_end_;
  send_(node, encode(m));
}

void shard_replica::advance() {
  if (applying_) return;
  auto to = high_watermark();
  if (to <= applied_) return;
  auto entries = store_.read(
      applied_, static_cast<std::size_t>(std::min<offset_t>(to - applied_, batch_entries)));
  if (!entries || entries->empty()) return;
  auto last = entries->back().offset;
  applying_ = true;
  store_.apply(std::move(*entries), [this, last](bool ok) {
    applying_ = false;
    if (!ok) {
      // A leader can't ack on a disk that fails; one that has become a follower since goes on
      // following (its next append's apply tries again).
      if (leading()) step_down(replicate_error::storage);
      return;
    }
    applied_ = std::max(applied_, last);
    if (follower_) follower_->applied(applied_);
    // Acked: every in-sync replica holds these, and they are applied here.
    while (!waiting_.empty() && waiting_.front().first <= applied_) {
      auto done = std::move(waiting_.front().second);
      waiting_.pop_front();
      done(std::nullopt);
    }
    advance();
  });
}

offset_t shard_replica::trim_limit() const {
  auto limit = applied_;
  if (leading())
    for (auto& n : tracker_->isr())
      if (n != self_) limit = std::min(limit, tracker_->end_of(n) + 1);
  return limit;
}

void shard_replica::snapshot_installed(const std::string& node) {
  auto it = peers_.find(node);
  if (!leading() || it == peers_.end()) return;
  it->second = {log_end_ + 1, false, {}, 0};
  send_to(node);
}

std::vector<std::string> shard_replica::behind_log_start() const {
  std::vector<std::string> out;
  for (auto& [node, p] : peers_)
    if (p.before_start) out.push_back(node);
  return out;
}

void shard_replica::peer_unreachable(const std::string& node) {
  if (role_ == role::leader && tracker_) tracker_->unreachable(node);
}

void shard_replica::step_down(replicate_error why) {
  if (leading()) {
    log(log_level::warn, "shard_leader_stepped_down",
        {{"shard", std::to_string(shard_)}, {"epoch", std::to_string(epoch_)}});
    storage_failed_ = why == replicate_error::storage;
  }
  role_ = role::none;
  tracker_.reset();
  peers_.clear();
  proposing_ = false;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& [offset, done] : waiting) done(why);
}

std::optional<std::vector<std::string>> shard_replica::tick(clock::time_point now) {
  now_ = now;
  if (!leading()) return std::nullopt;
  for (auto& [node, p] : peers_) {
    if (p.in_flight && now - p.sent >= resend_after) p.in_flight = false;
    send_to(node);
  }
  if (proposing_) return std::nullopt;
  auto out = tracker_->lagging(now);
  auto in = tracker_->caught_up();
  if (out.empty() && in.empty()) return std::nullopt;
  std::vector<std::string> next;
  for (auto& n : tracker_->isr())
    if (std::find(out.begin(), out.end(), n) == out.end()) next.push_back(n);
  next.insert(next.end(), in.begin(), in.end());
  tracker_->proposing(next);
  proposing_ = true;
  return next;
}

void shard_replica::isr_written(std::vector<std::string> isr, clock::time_point now) {
  if (!leading()) return;
  tracker_->set_isr(std::move(isr), now);
  proposing_ = false;
  advance();
}

void shard_replica::isr_failed() {
  if (!leading()) return;
  tracker_->proposal_failed();
  proposing_ = false;
}

void shard_replica::on_answer(const std::string& from, std::string_view bytes,
                              clock::time_point now) {
  auto a = decode_answer(bytes);
  if (!a || a->shard != shard_ || !leading()) return;
  auto it = peers_.find(from);
  if (it == peers_.end()) return;
  if (a->what == answer_kind::stale && a->epoch > epoch_)
    return step_down(replicate_error::deposed);
  if (a->epoch != epoch_) return;  // an answer to an earlier epoch's append
  auto& p = it->second;
  p.in_flight = false;
  switch (a->what) {
    case answer_kind::appended:
      tracker_->acked(from, a->log_end, now, p.sent_end, p.sent);
      p.next = std::min(a->log_end, log_end_) + 1;
      advance();
      if (p.next <= log_end_) send_to(from);
      break;
    case answer_kind::behind:
      p.next = std::min(a->log_end, log_end_) + 1;
      send_to(from);
      break;
    case answer_kind::reconcile:  // it asks for the history, then says where its log ends
      p.in_flight = true;
      break;
    case answer_kind::invalid:
      log(log_level::warn, "replication_refused",
          {{"shard", std::to_string(shard_)}, {"follower", from}});
      break;
    case answer_kind::stale:
      break;
  }
}

void shard_replica::on_history_request(const std::string& from, std::string_view bytes) {
  auto r = decode_history_request(bytes);
  if (!r || r->shard != shard_ || !leading() || !peers_.contains(from)) return;
  send_(from, encode(history_message{shard_, epoch_, log_end_, history_.entries()}));
}

// -- follower ---------------------------------------------------------------------------------

void shard_replica::follow(const shard_assignment& a) {
  replicas_ = a.replicas;
  if (leading()) step_down(replicate_error::deposed);
  if (role_ == role::follower && a.epoch == epoch_ && a.leader == leader_) return;
  role_ = role::follower;
  epoch_ = a.epoch;
  leader_ = a.leader;
  reconciling_ = false;
  needs_snapshot_ = false;
  follower_ = std::make_unique<follower_state>(log_end_, applied_, history_, followed_);
}

void shard_replica::answer(const std::string& to, std::uint8_t kind, offset_t log_end) {
  send_(to, encode(append_answer{shard_, static_cast<answer_kind>(kind), epoch_, log_end}));
}

void shard_replica::on_append(const std::string& from, std::string_view bytes) {
  auto m = decode_append(bytes);
  if (!m || m->shard != shard_) return;
  // Only a replica of the shard (as the latest assignment here says) leads it: anyone else on
  // the cluster port could otherwise raise this replica's epoch past every real leader's
  // (refusing them as stale for good), have forged entries appended and applied, or depose the
  // leader. A new leader is a replica before it leads (a move adds it first), so a follower
  // whose watch lags refuses its appends only until the assignment arrives; the leader resends.
  if (std::find(replicas_.begin(), replicas_.end(), from) == replicas_.end()) return;
  if (leading()) {
    // Another node leads a newer epoch: this one was deposed (the assignment's watch will say
    // whom to follow). An older one's append is answered as stale.
    if (m->epoch > epoch_) return step_down(replicate_error::deposed);
    send_(from, encode(append_answer{shard_, answer_kind::stale, epoch_, log_end_}));
    return;
  }
  if (role_ != role::follower) return;
  // Decided only against a log whose every append has landed: one still in flight could land
  // after a shorter one decided now and leave its tail past the log's end, on disk (where a
  // restart would take it for the log), or under a truncation. The leader resends.
  repair();
  if (appends_in_flight_ > 0 || damaged_) return;
  if (m->epoch > epoch_) {  // a newer leader, before the assignment reached this node
    epoch_ = m->epoch;
    leader_ = from;
    reconciling_ = false;  // with the newer leader, if there is anything to reconcile
    needs_snapshot_ = false;
  } else if (m->epoch == epoch_ && from != leader_) {
    return;  // one epoch has one leader: not this sender
  }
  if (reconciling_) {
    // The history request or its reply may have been lost with a broken connection: the
    // leader's resent append (every 250 ms while unanswered) asks for it again.
    if (m->epoch == epoch_ && !needs_snapshot_) {
      answer(from, static_cast<std::uint8_t>(answer_kind::reconcile), log_end_);
      send_(from, encode(history_request{shard_, m->epoch}));
    }
    return;
  }
  append_request req{m->epoch, m->first, {}, m->high_watermark};
  for (auto& e : m->entries) req.entries.push_back(e.epoch);
  auto d = follower_->decide(req);
  using kind = append_decision::kind;
  switch (d.what) {
    case kind::stale:
      send_(from, encode(append_answer{shard_, answer_kind::stale, d.epoch, log_end_}));
      return;
    case kind::behind:
      return answer(from, static_cast<std::uint8_t>(answer_kind::behind), d.log_end);
    case kind::invalid:
      return answer(from, static_cast<std::uint8_t>(answer_kind::invalid), log_end_);
    case kind::reconcile:
      reconciling_ = true;
      answer(from, static_cast<std::uint8_t>(answer_kind::reconcile), log_end_);
      send_(from, encode(history_request{shard_, m->epoch}));
      return;
    case kind::append:
      break;
  }
  auto finish = [this, from, d, epoch = epoch_]() {
    if (role_ != role::follower || epoch_ != epoch || leader_ != from) return;
    answer(from, static_cast<std::uint8_t>(answer_kind::appended), log_end_);
    if (d.apply_to > applied_ && !applying_) {
      auto to = std::min(d.apply_to, log_end_);
      auto entries = store_.read(applied_, static_cast<std::size_t>(to - applied_));
      if (!entries || entries->empty()) return;
      auto last = entries->back().offset;
      applying_ = true;
      store_.apply(std::move(*entries), [this, last](bool ok) {
        applying_ = false;
        if (!ok) return;  // the node's storage failed: the next append's apply tries again
        applied_ = std::max(applied_, last);
        if (follower_) follower_->applied(applied_);
      });
    }
  };
  // Recorded as made, so that a lead() before they land continues after them.
  follower_->appended(req, d.skip, d.count);
  history_ = follower_->history();
  followed_ = follower_->followed();
  if (d.count == 0) return finish();
  std::vector<log_entry> entries;
  for (std::size_t i = 0; i < d.count; ++i) {
    auto& e = m->entries[d.skip + i];
    auto offset = m->first + d.skip + i;
    auto& h = history_.entries();
    bool starts = std::any_of(h.rbegin(), h.rend(), [&](auto& x) { return x.start == offset; });
    entries.push_back({offset, e.epoch, std::move(e.payload), starts});
  }
  auto last = entries.back().offset;
  appending_ = last;
  ++appends_in_flight_;
  store_.append(std::move(entries), [this, finish, last](bool ok) {
    if (!landed(last, ok)) return;
    progress();  // it leads now: what landed is its log's
    finish();
  });
}

void shard_replica::on_history(const std::string& from, std::string_view bytes) {
  auto h = decode_history(bytes);
  if (!h || h->shard != shard_ || role_ != role::follower || !reconciling_ || from != leader_ ||
      appends_in_flight_ > 0)
    return;
  auto leader_history = leader_epochs::from(h->history);
  auto keep = divergence(history_, log_end_, *leader_history, h->log_end);
  if (!keep) {
    // The leader's history no longer reaches back this far: a snapshot of the shard is needed
    // (docs/cluster.md); until then this replica stays out of the isr. Told the log ends at 0,
    // the leader finds it behind its log's start and sends one.
    log(log_level::warn, "replica_needs_snapshot",
        {{"shard", std::to_string(shard_)}, {"leader", from}});
    needs_snapshot_ = true;  // asking again would only log this again
    answer(from, static_cast<std::uint8_t>(answer_kind::behind), 0);
    return;
  }
  auto to = std::max(*keep, applied_);
  if (to < log_end_ && !store_.truncate(to)) return;
  follower_->reconciled(to, h->epoch);
  log_end_ = follower_->log_end();
  appending_ = log_end_;  // nothing is in flight
  history_ = follower_->history();
  followed_ = follower_->followed();
  reconciling_ = false;
  needs_snapshot_ = false;
  // The leader resends from the end of what is kept.
  answer(from, static_cast<std::uint8_t>(answer_kind::behind), log_end_);
}

void shard_replica::on_message(const std::string& from, std::string_view bytes,
                               clock::time_point now) {
  now_ = now;
  if (bytes.empty()) return;
  // replication_wire messages start with their type: 1 append, 2 answer, 3 history request,
  // 4 history.
  switch (bytes.front()) {
    case 1:
      return on_append(from, bytes);
    case 2:
      return on_answer(from, bytes, now);
    case 3:
      return on_history_request(from, bytes);
    case 4:
      return on_history(from, bytes);
    default:
      return;
  }
}

}  // namespace kaiwa::cluster
