#pragma once
// A node's log without actors, for the read side's projection tests: events are appended to a
// real journal in a temp dir as room actors append them (an edit or delete rewrites the stored
// message, a delete redacts its edits), and `project` feeds them to a projection as the
// projector does: from the journal, in seq order, so a message applied late arrives in its
// current form.

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/event.hpp"
#include "core/json.hpp"
#include "storage/journal.hpp"
#include "tests/support/temp_dir.hpp"

namespace kaiwa::test {

inline std::string encode(const event& e) {
  std::string out;
  json_writer w(out);
  encode_event(w, e);
  return out;
}

/// A journal in `dir` with the default shards, syncing its commits.
inline std::unique_ptr<storage::journal> open_journal(const temp_dir& dir) {
  auto j = storage::journal::open({dir.str(), true});
  REQUIRE(j.ok());
  return std::move(j).value();
}

/// Commits `ws` to `j` and waits for the group commit.
inline void commit(storage::journal& j, storage::write_set ws) {
  std::promise<storage::status> done;
  auto fut = done.get_future();
  j.commit(std::move(ws), [&](const storage::status& s) { done.set_value(s); });
  REQUIRE(fut.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  REQUIRE(fut.get().ok());
}

class event_log {
 public:
  explicit event_log(std::uint32_t shards) {
    storage::journal_config cfg;
    cfg.dir = dir_.str();
    cfg.sync = false;
    cfg.shards = shards;
    auto j = storage::journal::open(cfg);
    REQUIRE(j.ok());
    journal_ = std::move(j).value();
    for (std::uint32_t s = 0; s < shards; ++s) all_shards_.push_back(static_cast<shard_t>(s));
  }

  storage::journal& journal() { return *journal_; }
  const std::vector<shard_t>& all_shards() const { return all_shards_; }
  /// Every room's events as stored now (messages edited or redacted in place), index seq - 1.
  const std::map<std::string, std::vector<event>>& log() const { return log_; }

  /// The ts the next event gets; each event moves it on by `step` ms.
  millis_t clock = 1'700'000'000'000;
  millis_t step = 1;

  seq_t create(const std::string& room, const std::string& owner, bool is_private,
               std::vector<std::string> members = {}, const std::string& topic = "") {
    auto e = next(room, event_type::created, owner);
    e.is_private = is_private;
    e.topic = topic;
    if (is_private) {
      members.push_back(owner);
      std::sort(members.begin(), members.end());
      e.members = std::move(members);
    }
    return append(std::move(e));
  }
  seq_t send(const std::string& room, const std::string& from, const std::string& text) {
    auto e = next(room, event_type::message, from);
    e.text = text;
    return append(std::move(e));
  }
  seq_t edit(const std::string& room, const std::string& from, seq_t ref, const std::string& text) {
    auto e = next(room, event_type::edit, from);
    e.ref = ref;
    e.text = text;
    return append(std::move(e));
  }
  seq_t del(const std::string& room, const std::string& from, seq_t ref) {
    auto e = next(room, event_type::del, from);
    e.ref = ref;
    return append(std::move(e));
  }
  seq_t invite(const std::string& room, const std::string& owner, const std::string& user) {
    auto e = next(room, event_type::member_added, owner);
    e.user = user_id{user};
    return append(std::move(e));
  }
  seq_t kick(const std::string& room, const std::string& owner, const std::string& user) {
    auto e = next(room, event_type::member_removed, owner);
    e.user = user_id{user};
    return append(std::move(e));
  }
  seq_t set_topic(const std::string& room, const std::string& from, const std::string& topic) {
    auto e = next(room, event_type::topic, from);
    e.topic = topic;
    return append(std::move(e));
  }
  void mark(const std::string& user, const std::string& room, seq_t seq) {
    storage::write_set ws;
    ws.put_marker(user_id{user}, room_id{room}, seq);
    test::commit(*journal_, std::move(ws));
  }

  /// Passes every event not projected yet to `apply(const event&, std::string_view stored,
  /// storage::read_batch&)`, a
  /// room's events in one batch per 256, and writes the batches; returns their operations
  /// (puts, deletes).
  template <class Apply>
  std::size_t project(Apply&& apply) {
    std::size_t ops = 0;
    for (auto& [room, applied] : applied_) {
      for (;;) {
        auto events = journal_->events_after(room_id{room}, applied, 256);
        REQUIRE(events.ok());
        if (events->empty()) break;
        auto batch = journal_->new_read_batch();
        for (auto& json : *events) {
          auto e = decode_event(json);
          REQUIRE(e);
          apply(*e, json, batch);
          applied = e->seq;
        }
        ops += batch.count();
        REQUIRE(journal_->write_reads(std::move(batch)).ok());
      }
    }
    return ops;
  }

 private:
  event next(const std::string& room, event_type type, const std::string& from) {
    event e;
    e.room = room_id{room};
    e.seq = log_[room].size() + 1;
    e.ts = clock;
    clock += step;
    e.type = type;
    e.from = user_id{from};
    applied_.try_emplace(room, 0);
    return e;
  }

  seq_t append(event e) {
    auto& log = log_[e.room.str()];
    storage::write_set ws;
    if (e.type == event_type::edit || e.type == event_type::del) {
      auto& m = log.at(e.ref - 1);
      if (e.type == event_type::del)
        for (auto s : m.edits) {
          log.at(s - 1) = redacted(log.at(s - 1));
          ws.put_event(e.room, s, encode(log.at(s - 1)));
        }
      m = rewritten(m, e);
      ws.put_event(e.room, m.seq, encode(m));
    }
    ws.put_event(e.room, e.seq, encode(e));
    log.push_back(e);
    test::commit(*journal_, std::move(ws));
    return e.seq;
  }

  temp_dir dir_;
  std::unique_ptr<storage::journal> journal_;
  std::vector<shard_t> all_shards_;
  std::map<std::string, std::vector<event>> log_;  // the stored records, index seq - 1
  std::map<std::string, seq_t> applied_;           // the projection's offsets
};

}  // namespace kaiwa::test
