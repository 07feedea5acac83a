#include "bench/corpus.hpp"

#include <fmt/format.h>

#include <array>
#include <string_view>

namespace kaiwa::bench {

namespace {

// -- Japanese: office chat ----------------------------------------------------------------------

constexpr std::string_view ja_nouns[] = {
    "会議",         "資料",         "確認",       "プロジェクト", "予定",           "仕様書",
    "設計",         "レビュー",     "テスト",     "本番環境",     "サーバー",       "データベース",
    "障害",         "見積もり",     "顧客",       "契約書",       "報告書",         "議事録",
    "スケジュール", "リリース",     "検索機能",   "画面",         "不具合",         "修正",
    "打ち合わせ",   "予算",         "請求書",     "東京オフィス", "大阪支社",       "新機能",
    "ログ",         "バックアップ", "権限",       "申請",         "経費",           "出張",
    "研修",         "面接",         "アンケート", "デザイン",     "ロックファイル", "デプロイ",
    "共有フォルダ", "進捗",         "課題",       "優先度",       "締め切り",       "ミーティング",
    "PR",
};
constexpr std::string_view ja_times[] = {
    "明日", "今日",   "来週",   "今週", "月曜日", "金曜日", "午後", "午前中",
    "15時", "10時半", "昼休み", "来月", "先週",   "昨日",   "朝一",
};
constexpr std::string_view ja_people[] = {
    "田中", "佐藤", "鈴木", "高橋", "伊藤", "渡辺", "山本", "中村", "小林", "加藤",
};
constexpr std::string_view ja_verbs[] = {
    "確認します。",           "共有しました。",     "お願いします。",   "送りました。",
    "対応します。",           "調整中です。",       "再起動しました。", "相談させてください。",
    "よろしくお願いします。", "確認お願いします。", "見ておきます。",   "修正しました。",
};
constexpr std::string_view ja_states[] = {
    "遅れています。", "終わりました。",     "止まっています。",   "決まりました。",
    "まだです。",     "間に合いそうです。", "変更になりました。", "落ちています。",
};
constexpr std::string_view ja_fillers[] = {
    "了解です！", "ありがとうございます。", "お疲れさまです。", "承知しました。", "すみません、",
};

// -- English: tech chat -------------------------------------------------------------------------

constexpr std::string_view en_things[] = {
    "lock file",          "deploy script",  "build",          "cache",        "config",
    "load balancer",      "release branch", "test suite",     "api gateway",  "docker image",
    "database migration", "dashboard",      "cron job",       "feature flag", "pull request",
    "search index",       "ci pipeline",    "staging server", "error budget", "rate limiter",
    "websocket gateway",  "memory leak",    "log rotation",   "certificate",  "merge conflict",
};
constexpr std::string_view en_states[] = {
    "broken",     "flaky", "green again",       "down",
    "slow today", "fixed", "blocked on review", "rolled back",
};
constexpr std::string_view en_verbs[] = {
    "fix", "update", "rebase", "restart", "revert", "check", "bump", "deploy",
};
constexpr std::string_view en_envs[] = {
    "staging", "production", "prod", "dev", "the canary", "the tokyo region",
};
constexpr std::string_view en_files[] = {
    "package-lock.json", "Cargo.lock", "yarn.lock", "main.cpp", "the Makefile", "config.yaml",
};
constexpr std::string_view en_times[] = {
    "lunch", "standup", "the meeting", "the release", "tomorrow",
};
constexpr std::string_view en_results[] = {
    "failed again", "went fine", "is stuck", "timed out", "succeeded",
};
constexpr std::string_view en_people[] = {"alice", "bob", "carol", "dave", "erin"};
constexpr std::string_view en_fillers[] = {"lgtm, merging.", "thanks!", "on it.", "brb, coffee.",
                                           "sounds good to me."};

std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

constexpr std::size_t min_length = 10, max_length = 200;

}  // namespace

corpus::corpus(const corpus_config& c) : c_(c), state_(c.seed * 0x9E3779B97F4A7C15ull + 1) {}

std::uint64_t corpus::random() noexcept {
  // splitmix64: the same sequence on every platform and standard library, unlike <random>'s
  // distributions.
  std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string corpus::room_name(std::size_t room) { return fmt::format("room-{}", room); }
std::string corpus::user_name(std::size_t user) { return fmt::format("user-{}", user); }

std::size_t corpus::japanese(std::string& out) {
  auto start = out.size();
  auto pick = [&](const auto& words) -> std::string_view { return words[below(std::size(words))]; };
  switch (below(9)) {
    case 0:
      out += pick(ja_times), out += "の", out += pick(ja_nouns), out += "、", out += pick(ja_verbs);
      break;
    case 1:
      out += pick(ja_nouns), out += "の", out += pick(ja_nouns), out += "について",
          out += pick(ja_verbs);
      break;
    case 2:
      out += pick(ja_people), out += "さん、", out += pick(ja_nouns), out += "の件で",
          out += pick(ja_verbs);
      break;
    case 3:
      out += pick(ja_nouns), out += "が", out += pick(ja_states);
      break;
    case 4:
      out += pick(ja_times), out += "までに", out += pick(ja_nouns), out += "を",
          out += pick(ja_verbs);
      break;
    case 5:
      out += pick(ja_nouns), out += "は", out += pick(ja_times), out += "の", out += pick(ja_nouns),
          out += "で", out += pick(ja_verbs);
      break;
    case 6:
      out += "ちょっと", out += pick(ja_nouns), out += "見てもらえますか？";
      break;
    case 7:
      out += pick(ja_nouns), out += "の", out += pick(ja_nouns), out += "、",
          out += pick(ja_people), out += "さんが", out += pick(ja_states);
      break;
    default:
      out += pick(ja_fillers);
      break;
  }
  return code_points(std::string_view(out).substr(start));
}

std::size_t corpus::english(std::string& out) {
  auto start = out.size();
  auto pick = [&](const auto& words) -> std::string_view { return words[below(std::size(words))]; };
  switch (below(10)) {
    case 0:
      out += "can someone review the ", out += pick(en_things), out += "?";
      break;
    case 1:
      out += "the ", out += pick(en_things), out += " is ", out += pick(en_states), out += ".";
      break;
    case 2:
      out += "i'll ", out += pick(en_verbs), out += " the ", out += pick(en_things),
          out += " after ", out += pick(en_times), out += ".";
      break;
    case 3:
      out += "got a merge conflict in ", out += pick(en_files), out += " again.";
      break;
    case 4:
      out += "deploy to ", out += pick(en_envs), out += " ", out += pick(en_results), out += ".";
      break;
    case 5:
      out += pick(en_people), out += ": the ", out += pick(en_things), out += " on ",
          out += pick(en_envs), out += " is ", out += pick(en_states), out += ".";
      break;
    case 6:
      out += "who owns the ", out += pick(en_things), out += "?";
      break;
    case 7:
      out += "the ", out += pick(en_things), out += " broke the ", out += pick(en_things),
          out += " on ", out += pick(en_envs), out += ".";
      break;
    case 8:
      out += "please ", out += pick(en_verbs), out += " the ", out += pick(en_things),
          out += " before ", out += pick(en_times), out += ", eta ";
      out += fmt::format("{} minutes.", 5 + below(55));
      break;
    default:
      out += pick(en_fillers);
      break;
  }
  return code_points(std::string_view(out).substr(start));
}

bool corpus::next(corpus_message& m) {
  if (produced_ >= c_.messages) return false;
  // Rooms: room = floor(R * u^2) with u uniform in [0, 1), so low rooms are busier.
  auto u = static_cast<double>(random() >> 11) / static_cast<double>(1ull << 53);
  m.room = std::min(c_.rooms - 1, static_cast<std::size_t>(static_cast<double>(c_.rooms) * u * u));
  m.user = below(c_.users);
  // 2026-01-01T00:00:00Z plus 50 ms a message with jitter below 50 ms: strictly increasing.
  m.ts = 1'767'225'600'000 + static_cast<std::int64_t>(produced_ * 50 + below(50));
  // Chat is mostly short: the target length is 10 + 190 * v^3 code points, mean ~57.
  auto v = static_cast<double>(random() >> 11) / static_cast<double>(1ull << 53);
  auto target = min_length + static_cast<std::size_t>(190 * v * v * v);
  bool ja = random() & 1;
  m.text.clear();
  std::size_t length = 0;
  for (int attempts = 0; length < target && attempts < 20; ++attempts) {
    auto before = m.text.size();
    if (length > 0 && !ja) m.text += ' ';
    auto n = (ja ? japanese(m.text) : english(m.text)) + (length > 0 && !ja);
    if (length + n > max_length) {
      m.text.resize(before);  // too long: try a shorter sentence
      continue;
    }
    length += n;
  }
  // Every sentence is at least 5 code points and the loop stops only at the target (>= 10) or
  // after 20 attempts; a message still short then gets a filler that fits.
  while (length < min_length) {
    m.text += ja ? "了解です！" : " thanks!";
    length += ja ? 5 : 8;
  }
  ++produced_;
  return true;
}

std::vector<search_query> query_set() {
  static const std::initializer_list<std::pair<std::string_view, std::size_t>> queries = {
      {"会議", 1},
      {"プロジェクト", 1},
      {"議事録", 1},
      {"ﾌﾟﾛｼﾞｪｸﾄ", 1},  // half-width katakana: found through NFKC
      {"deploy", 1},
      {"staging", 1},
      {"Cache", 1},  // case folded
      {"明日 会議", 2},
      {"本番環境 障害", 2},
      {"lock file", 2},
      {"\"lock file\"", 2},
      {"\"merge conflict\"", 2},
      {"確認お願いします", 1},
      {"明日 会議 資料", 3},
      {"デプロイ 確認 お願いします", 3},
      {"deploy staging failed", 3},
      {"明日 会議 資料 確認", 4},
      {"review pull request staging", 4},
  };
  std::vector<search_query> out;
  for (bool in_room : {false, true})
    for (auto [q, terms] : queries) out.push_back({std::string(q), terms, in_room});
  return out;
}

}  // namespace kaiwa::bench
