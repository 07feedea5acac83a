#pragma once
// The chat text that `kaiwa bench search` loads into kaiwa and into Groonga, and the queries it
// asks both. The corpus is a pure function of its config: the same seed gives the same messages,
// byte for byte, on every run and for every consumer (the WebSocket loader, the offline loader,
// the Groonga load file), so the two engines index exactly the same text.
//
// Messages are about half Japanese (kanji, hiragana and katakana mixed, built from templates and
// word lists of office chat: 会議, 明日, 資料, 確認, プロジェクト, ...) and half English (tech
// chat: "lock file", "deploy", "merge conflict", ...), 10 to 200 code points long and mostly short.
// Rooms follow a skewed popularity: room k of R gets about sqrt((k+1)/R) - sqrt(k/R) of the
// messages, so room-0 is the busiest (1% of everything with 10,000 rooms).

#include <cstdint>
#include <string>
#include <vector>

namespace kaiwa::bench {

struct corpus_config {
  std::uint64_t messages = 100'000;
  std::size_t rooms = 10'000;
  std::size_t users = 5'000;
  std::uint64_t seed = 1;
};

/// One message of the corpus.
struct corpus_message {
  std::size_t room = 0;  // 0..rooms-1
  std::size_t user = 0;  // 0..users-1
  std::int64_t ts = 0;   // ms since the epoch, strictly increasing over the corpus
  std::string text;      // UTF-8, 10..200 code points
};

/// Generates the corpus in order. Not thread-safe; one per consumer.
class corpus {
 public:
  explicit corpus(const corpus_config& c);

  /// Fills `m` with the next message; false once `messages` were generated.
  bool next(corpus_message& m);

  static std::string room_name(std::size_t room);  // "room-17"
  static std::string user_name(std::size_t user);  // "user-42"

 private:
  std::uint64_t random() noexcept;
  std::size_t below(std::size_t n) noexcept { return static_cast<std::size_t>(random() % n); }
  /// Appends one sentence to `out` and returns its length in code points.
  std::size_t japanese(std::string& out);
  std::size_t english(std::string& out);

  corpus_config c_;
  std::uint64_t state_;
  std::uint64_t produced_ = 0;
};

/// One query of the fixed set. `q` reads the same in kaiwa and Groonga: words separated by
/// spaces must all match, a "quoted phrase" matches contiguously, and CJK text matches as a
/// substring.
struct search_query {
  std::string q;
  std::size_t terms = 1;  // words of q (a phrase counts its words), 1..4
  bool in_room = false;   // with a room filter (the busiest room, room-0)
};

/// The queries, each once without and once with the room filter.
std::vector<search_query> query_set();

}  // namespace kaiwa::bench
