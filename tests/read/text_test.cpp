#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "read/text.hpp"

using namespace kaiwa::read;

namespace {

/// UTF-16 of valid UTF-8, written independently of read/text.cpp.
std::u16string utf16(std::string_view s) {
  std::u16string out;
  for (std::size_t i = 0; i < s.size();) {
    auto b = std::uint8_t(s[i]);
    int len = b < 0x80 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
    char32_t c = len == 1 ? b : len == 2 ? b & 0x1f : len == 3 ? b & 0x0f : b & 0x07;
    for (int k = 1; k < len; ++k) c = (c << 6) | (std::uint8_t(s[i + k]) & 0x3f);
    i += len;
    if (c < 0x10000) {
      out.push_back(char16_t(c));
    } else {
      out.push_back(char16_t(0xd800 + ((c - 0x10000) >> 10)));
      out.push_back(char16_t(0xdc00 + ((c - 0x10000) & 0x3ff)));
    }
  }
  return out;
}

/// What a client shows for [begin, end) of `text` (JavaScript's text.slice(begin, end)).
std::u16string slice(std::string_view text, std::uint32_t begin, std::uint32_t end) {
  return utf16(text).substr(begin, end - begin);
}

std::vector<std::string> terms(std::string_view text) {
  std::vector<std::string> out;
  for (auto& t : tokenize(text)) out.push_back(t.term);
  return out;
}

using ranges = std::vector<std::pair<std::uint32_t, std::uint32_t>>;

ranges find(std::string_view text, std::string_view q) { return highlight(text, parse_query(q)); }

/// The highlighted parts of `text` for `q`, as the client would cut them.
std::vector<std::u16string> found(std::string_view text, std::string_view q) {
  std::vector<std::u16string> out;
  for (auto [b, e] : find(text, q)) out.push_back(slice(text, b, e));
  return out;
}

std::string flat(const query& q) {
  std::string out;
  for (auto& term : q.terms) {
    out += "[";
    for (auto& t : term.tokens) {
      out += t.term + "@" + std::to_string(t.pos) + (t.prefix ? "*" : "") + " ";
    }
    out += "]";
  }
  return out;
}

}  // namespace

TEST_CASE("normalization is NFKC with case folding") {
  CHECK(normalize("ｶｲｷﾞ") == "カイギ");
  CHECK(normalize("Ｔｏｋｙｏ") == "tokyo");
  CHECK(normalize("TOKYO Straße") == "tokyo strasse");
  CHECK(normalize("①㍿") == "1株式会社");
  CHECK(normalize("e\xcc\x81") == "\xc3\xa9");   // e + combining acute composes to é
  CHECK(normalize("a\u200db\ufe0fc") == "abc");  // default ignorables (ZWJ, VS16) vanish
}

TEST_CASE("normalization turns invalid UTF-8 into U+FFFD and never fails") {
  CHECK(normalize("a\xff"
                  "b") ==
        "a\xef\xbf\xbd"
        "b");
  CHECK(normalize("\xe3\x81") == "\xef\xbf\xbd");  // a truncated sequence is one U+FFFD
  CHECK(normalize("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // a surrogate
  CHECK(normalize(std::string("a\0b", 3)) == std::string("a\0b", 3));
}

TEST_CASE("a CJK run becomes overlapping bigrams and its last character, positions count") {
  auto t = tokenize("明日の会議は15時");
  std::vector<std::pair<std::string, std::uint32_t>> got;
  for (auto& x : t) got.emplace_back(x.term, x.pos);
  CHECK(got == std::vector<std::pair<std::string, std::uint32_t>>{{"明日", 0},
                                                                  {"日の", 1},
                                                                  {"の会", 2},
                                                                  {"会議", 3},
                                                                  {"議は", 4},
                                                                  {"は", 5},
                                                                  {"15", 6},
                                                                  {"時", 7}});
  CHECK(terms("会") == std::vector<std::string>{"会"});
  CHECK(terms("々〆ー") == std::vector<std::string>{"々〆", "〆ー", "ー"});
}

TEST_CASE("words of other scripts, separated by spaces, punctuation, symbols and emoji") {
  CHECK(terms("Hello, World! lock-file_v2") ==
        std::vector<std::string>{"hello", "world", "lock", "file", "v2"});
  CHECK(terms("Привет мир") == std::vector<std::string>{"привет", "мир"});
  CHECK(terms("café naïve") == std::vector<std::string>{"café", "naïve"});
  CHECK(terms("ok👍done 🎉🎉") == std::vector<std::string>{"ok", "done"});
  CHECK(terms("   \t\n!?#") == std::vector<std::string>{});
}

TEST_CASE("mixed scripts switch runs without a separator") {
  CHECK(terms("今日はTokyoで15時から") ==
        std::vector<std::string>{"今日", "日は", "は", "tokyo", "で", "15", "時か", "から", "ら"});
}

TEST_CASE("Korean is tokenized as a CJK run") {
  CHECK(terms("회의 시간") == std::vector<std::string>{"회의", "의", "시간", "간"});
  CHECK(found("내일 회의는 3시", "회의") == std::vector<std::u16string>{u"회의"});
}

TEST_CASE("half-width katakana is normalized and maps back to the original characters") {
  std::string text = "ｶｲｷﾞは";
  auto t = tokenize(text);
  REQUIRE(t.size() == 4);
  CHECK(t[0].term == "カイ");
  CHECK(t[1].term == "イギ");
  CHECK(t[2].term == "ギは");
  CHECK(t[3].term == "は");
  // ｷﾞ is two characters of the original text and one normalized one.
  CHECK(slice(text, t[1].begin, t[1].end) == u"ｲｷﾞ");
  CHECK(slice(text, t[2].begin, t[2].end) == u"ｷﾞは");
  CHECK(slice(text, t[3].begin, t[3].end) == u"は");
}

TEST_CASE("full-width Latin is a word") {
  std::string text = "in Ｔｏｋｙｏ!";
  auto t = tokenize(text);
  REQUIRE(t.size() == 2);
  CHECK(t[1].term == "tokyo");
  CHECK(slice(text, t[1].begin, t[1].end) == u"Ｔｏｋｙｏ");
}

TEST_CASE("emoji are no tokens and count two UTF-16 units in offsets") {
  std::string text = "😀会議😀 ok";
  auto t = tokenize(text);
  REQUIRE(t.size() == 3);
  CHECK(t[0].term == "会議");
  CHECK(t[0].begin == 2);
  CHECK(t[0].end == 4);
  CHECK(t[2].term == "ok");
  CHECK(t[2].begin == 7);
  CHECK(t[2].end == 9);
  CHECK(found(text, "OK") == std::vector<std::u16string>{u"ok"});
}

TEST_CASE("invalid UTF-8 separates tokens and counts one unit per bad sequence") {
  std::string text =
      "ab\xff"
      "cd\xe3\x81"
      "会";
  auto t = tokenize(text);
  REQUIRE(t.size() == 3);
  CHECK(t[0].term == "ab");
  CHECK(t[1].term == "cd");
  CHECK(t[1].begin == 3);
  CHECK(t[1].end == 5);
  CHECK(t[2].term == "会");
  CHECK(t[2].begin == 6);
  CHECK(terms("\xc0\x80\xf5\x80\x80\x80\xed\xbf\xbf") == std::vector<std::string>{});
}

TEST_CASE("tokenize stops at max_tokens") {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "word" + std::to_string(i) + " ";
  CHECK(tokenize(text, 10).size() == 10);
  CHECK(tokenize(text, 10).back().term == "word9");
  CHECK(tokenize(text, 0).empty());
  CHECK(tokenize(std::string(5000, 'a') + " b").size() == 2);
  std::string cjk;
  for (int i = 0; i < 3000; ++i) cjk += "会議";
  auto t = tokenize(cjk);
  CHECK(t.size() == default_max_tokens);
  CHECK(t.back().pos == default_max_tokens - 1);
}

TEST_CASE("very long input: offsets stay right, a long word's term is cut") {
  std::string word(20000, 'x');
  std::string text = word + " 会議 " + std::string(10000, 'Y');
  auto t = tokenize(text);
  REQUIRE(t.size() == 4);
  CHECK(t[0].term == std::string(max_term_bytes, 'x'));
  CHECK(t[0].end == 20000);
  CHECK(t[1].term == "会議");
  CHECK(t[1].begin == 20001);
  CHECK(t[3].term == std::string(max_term_bytes, 'y'));
  CHECK(t[3].end == 30004);
  // A base with thousands of combining marks is cut into bounded segments, still one word.
  std::string marks = "a";
  for (int i = 0; i < 5000; ++i) marks += "\xcc\x81\xcc\xa3";
  auto m = tokenize(marks + " b");
  REQUIRE(m.size() == 2);
  CHECK(m[0].end == 10001);
  CHECK(m[1].term == "b");
}

TEST_CASE("parse_query: terms, phrases, CJK bigrams and prefix characters") {
  CHECK(flat(parse_query("15時")) == "[15@0 時@1* ]");
  CHECK(flat(parse_query("会議15")) == "[会議@0 15@2 ]");
  CHECK(flat(parse_query("明日の会議")) == "[明日@0 日の@1 の会@2 会議@3 ]");
  CHECK(flat(parse_query("lock file")) == "[lock@0 ][file@0 ]");
  CHECK(flat(parse_query("\"lock file\"")) == "[lock@0 file@1 ]");
  CHECK(flat(parse_query("a \"b c")) == "[a@0 ][b@0 c@1 ]");
  CHECK(flat(parse_query("ＴＯＫＹＯ　会議")) == "[tokyo@0 ][会議@0 ]");  // ideographic space
  CHECK(flat(parse_query("“lock file”")) == "[lock@0 file@1 ]");
  CHECK(parse_query("  !! ?? ").terms.empty());
  CHECK(parse_query("").terms.empty());
}

TEST_CASE("parse_query keeps at most 8 terms and 32 tokens") {
  CHECK(parse_query("a b c d e f g h i j").terms.size() == 8);
  std::string phrase = "\"";
  for (int i = 0; i < 40; ++i) phrase += "w" + std::to_string(i) + " ";
  auto q = parse_query("x " + phrase);
  REQUIRE(q.terms.size() == 2);
  CHECK(q.terms[1].tokens.size() == 31);
  CHECK(q.terms[1].tokens.back().pos == 30);
  CHECK(parse_query(phrase + "\" y").terms.size() == 1);  // nothing left for y
}

TEST_CASE("the issue's examples match, highlighted in the original text") {
  CHECK(found("明日の会議は15時", "会議") == std::vector<std::u16string>{u"会議"});
  CHECK(found("Meeting in tokyo", "Tokyo") == std::vector<std::u16string>{u"tokyo"});
  CHECK(found("明日カイギです", "ｶｲｷﾞ") == std::vector<std::u16string>{u"カイギ"});
  CHECK(found("明日ｶｲｷﾞです", "カイギ") == std::vector<std::u16string>{u"ｶｲｷﾞ"});
  CHECK(found("the file has a lock", "lock file") == std::vector<std::u16string>{u"file", u"lock"});
  CHECK(found("the lock file is stale", "\"lock file\"") ==
        std::vector<std::u16string>{u"lock file"});
  CHECK(found("the file has a lock", "\"lock file\"").empty());
  CHECK(found("明日の会議は15時", "会議室").empty());
}

TEST_CASE("CJK queries match contiguous text only") {
  CHECK(found("会議室の予約", "会議室") == std::vector<std::u16string>{u"会議室"});
  CHECK(found("会議と室", "会議室").empty());
  CHECK(found("明日の会議は15時", "明日の会議") == std::vector<std::u16string>{u"明日の会議"});
}

TEST_CASE("a single CJK character matches as a prefix and highlights only itself") {
  std::string text = "社会人の会議";
  auto r = find(text, "会");
  REQUIRE(r.size() == 2);
  CHECK(slice(text, r[0].first, r[0].second) == u"会");
  CHECK(r[0].first == 1);
  CHECK(slice(text, r[1].first, r[1].second) == u"会");
  CHECK(r[1].first == 4);
  CHECK(found("15時間後", "15時") == std::vector<std::u16string>{u"15時"});
  CHECK(found("会議15", "会議15") == std::vector<std::u16string>{u"会議15"});
  CHECK(found("会議室15", "会議15").empty());
}

TEST_CASE("highlight ranges are merged and ascending") {
  std::string text = "会議会議 lock";
  auto r = find(text, "会議 lock 議会");
  REQUIRE(r.size() == 2);
  CHECK(r[0] == std::pair<std::uint32_t, std::uint32_t>{0, 4});
  CHECK(r[1] == std::pair<std::uint32_t, std::uint32_t>{5, 9});
  CHECK(find(text, "nothing").empty());
  CHECK(highlight(text, query{}).empty());
}
