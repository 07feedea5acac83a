// The offline bulk path of `kaiwa bench search`: writes the corpus straight into a (stopped)
// node's data dir through the journal, as the rooms would have stored it, so that a node started
// on the dir afterwards indexes everything through its projections' catch-up.
//
// "As the rooms would have stored it": each message is decided and applied by the room's own
// room_state (so the first send to a room creates it with a `created` event at seq 1, seqs run
// 1.. per room, ts never goes backwards), encoded with encode_event, and written with the room's
// metadata (at creation and with each snapshot) and snapshots every `snapshot_every` events, as
// room_actor stages them. Only the clock differs: each event's ts is the corpus message's.

#include <fmt/format.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>

#include "actors/room_state.hpp"
#include "actors/rooms.hpp"
#include "bench/corpus.hpp"
#include "bench/run.hpp"
#include "storage/journal.hpp"

namespace kaiwa::bench {

namespace {

// A commit of this many events keeps RocksDB's write batches large without holding much memory;
// at most `max_in_flight` commits are queued so generation can't run ahead of the disk.
constexpr std::size_t events_per_commit = 20'000;
constexpr std::size_t max_in_flight = 4;

/// Bytes under `dir` (regular files), as du counts them apart from blocks.
std::uint64_t dir_bytes(const std::string& dir) {
  std::uint64_t n = 0;
  std::error_code ec;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  return n;
}

/// Counts commits handed to the journal and not yet completed, and the first failure.
class commit_window {
 public:
  void acquire() {
    std::unique_lock lk(mtx_);
    cv_.wait(lk, [&] { return in_flight_ < max_in_flight; });
    ++in_flight_;
  }
  void release(const storage::status& s) {
    std::lock_guard lk(mtx_);
    --in_flight_;
    if (!s.ok() && failure_.empty()) failure_ = s.err().message;
    cv_.notify_all();
  }
  /// Waits for every commit; the first failure, empty if none.
  std::string drain() {
    std::unique_lock lk(mtx_);
    cv_.wait(lk, [&] { return in_flight_ == 0; });
    return failure_;
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::size_t in_flight_ = 0;
  std::string failure_;
};

}  // namespace

int run_offline_load(const corpus_config& c, const std::string& data_dir, bool json) {
  storage::journal_config jc;
  jc.dir = data_dir;
  jc.sync = false;  // a bulk load is redone from scratch if it fails; the journal's stop() flushes
  // Commits here are big on purpose (tens of MB); the journal's slow-write log is for the node.
  jc.slow_write = std::chrono::seconds(60);
  auto opened = storage::journal::open(jc);
  if (!opened) {
    fmt::print(stderr, "bench: can't open {} (is a node running on it?): {}\n", data_dir,
               opened.err().message);
    return 1;
  }
  auto& journal = **opened;
  auto bytes_before = dir_bytes(data_dir);
  auto snapshot_every = rooms_config{}.snapshot_every;

  std::vector<room_state> rooms;
  rooms.reserve(c.rooms);
  for (std::size_t r = 0; r < c.rooms; ++r) rooms.emplace_back(room_id{corpus::room_name(r)});
  std::vector<user_id> users;
  users.reserve(c.users);
  for (std::size_t u = 0; u < c.users; ++u) users.emplace_back(corpus::user_name(u));

  commit_window window;
  auto started = clock_type::now();
  auto last_line = started;
  corpus gen(c);
  corpus_message m;
  storage::write_set ws;
  std::size_t staged = 0;
  std::uint64_t events = 0, messages = 0, text_bytes = 0;
  std::string encoded;
  auto flush = [&] {
    window.acquire();
    journal.commit(std::move(ws), [&window](const storage::status& s) { window.release(s); });
    ws = {};
    staged = 0;
  };
  command cmd;
  cmd.op = room_op::send;
  while (gen.next(m)) {
    auto& state = rooms[m.room];
    cmd.user = users[m.user];
    cmd.text = std::move(m.text);
    auto decided = state.decide(cmd, m.ts, std::nullopt);
    if (auto* no = std::get_if<rejection>(&decided)) {
      fmt::print(stderr, "bench: room {} refused a message: {}\n", state.room().str(), no->message);
      journal.stop();
      return 1;
    }
    for (auto& e : std::get<std::vector<event>>(decided)) {
      state.apply(e);
      encoded.clear();
      json_writer w(encoded);
      encode_event(w, e);
      ws.put_event(state.room(), e.seq, encoded);
      if (e.type == event_type::created || e.seq % snapshot_every == 0)
        ws.put_meta(state.room(), state.meta());
      if (e.seq % snapshot_every == 0) ws.put_snapshot(state.room(), state.snapshot());
      ++events, ++staged;
    }
    text_bytes += cmd.text.size();
    m.text = std::move(cmd.text);  // reuse the buffer
    ++messages;
    if (staged >= events_per_commit) flush();
    if (auto now = clock_type::now(); now - last_line >= std::chrono::seconds(5)) {
      last_line = now;
      fmt::print(stderr, "bench: offline load {}/{} messages\n", messages, c.messages);
    }
  }
  if (!ws.empty()) flush();
  auto failure = window.drain();
  journal.stop();
  auto seconds = std::chrono::duration<double>(clock_type::now() - started).count();
  if (!failure.empty()) {
    fmt::print(stderr, "bench: a commit failed: {}\n", failure);
    return 1;
  }
  auto bytes_after = dir_bytes(data_dir);
  report rep("search-offline-load");
  rep.param("data_dir", data_dir)
      .param("messages", std::to_string(c.messages))
      .param("rooms", std::to_string(c.rooms))
      .param("users", std::to_string(c.users))
      .param("seed", std::to_string(c.seed));
  rep.figure("messages", static_cast<double>(messages))
      .figure("events", static_cast<double>(events))
      .figure("seconds", seconds, "s")
      .figure("messages/s", messages / seconds)
      .figure("text bytes", static_cast<double>(text_bytes), "B")
      .figure("data dir bytes",
              static_cast<double>(bytes_after - std::min(bytes_after, bytes_before)), "B")
      .print(json);
  return 0;
}

}  // namespace kaiwa::bench
