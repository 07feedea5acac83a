// Search text analysis (read/text.hpp) over arbitrary bytes. The first byte picks max_tokens
// (below 16: that many, else the default); the rest is the text, and the query is what comes
// before its first NUL byte (none: the query is the whole text). Beyond not crashing:
// - tokens: at most max_tokens, the first ones of the uncapped list, positions 0, 1, 2, ...,
//   terms non-empty valid UTF-8 of at most max_term_bytes without NUL, and
//   0 <= begin < end <= the text's UTF-16 length (ICU's converter, U+FFFD for bad bytes);
// - normalize gives valid UTF-8;
// - a query: at most 8 terms and 32 tokens, none empty, positions from 0 and ascending;
// - highlight: ranges non-empty, ascending, disjoint, within the text;
// - the text searched for itself: every term the query makes of it occurs in it.
#include <unicode/ustring.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "read/text.hpp"

namespace {

using namespace kaiwa::read;

/// The UTF-16 length of `s`, each ill-formed sequence one U+FFFD; -1 when `strict` and `s`
/// is not valid UTF-8.
std::int64_t utf16_length(std::string_view s, bool strict) {
  UErrorCode status = U_ZERO_ERROR;
  std::int32_t length = 0;
  u_strFromUTF8WithSub(nullptr, 0, &length, s.data(), std::int32_t(s.size()),
                       strict ? U_SENTINEL : 0xfffd, nullptr, &status);
  if (status != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(status)) return -1;
  return length;
}

bool valid_utf8(std::string_view s) { return utf16_length(s, true) >= 0; }

void check_ranges(const std::vector<std::pair<std::uint32_t, std::uint32_t>>& ranges,
                  std::int64_t length) {
  std::int64_t last_end = -1;
  for (auto [b, e] : ranges) {
    if (b >= e || e > length || std::int64_t(b) <= last_end) std::abort();
    last_end = e;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  std::size_t max_tokens = data[0] < 16 ? data[0] : default_max_tokens;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string_view q = text.substr(0, text.find('\0'));
  const std::int64_t length = utf16_length(text, false);

  auto all = tokenize(text);
  auto tokens = tokenize(text, max_tokens);
  if (tokens.size() > max_tokens || all.size() > default_max_tokens) std::abort();
  if (tokens.size() < max_tokens && tokens.size() != all.size()) std::abort();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    auto& t = tokens[i];
    if (t.term != all[i].term || t.pos != i || t.begin != all[i].begin || t.end != all[i].end)
      std::abort();
  }
  for (auto& t : all) {
    if (t.term.empty() || t.term.size() > max_term_bytes ||
        t.term.find('\0') != std::string::npos || !valid_utf8(t.term) || t.begin >= t.end ||
        t.end > length)
      std::abort();
  }

  if (!valid_utf8(normalize(text))) std::abort();

  auto query = parse_query(q);
  std::size_t query_tokens = 0;
  for (auto& term : query.terms) {
    if (term.tokens.empty() || term.tokens.front().pos != 0) std::abort();
    for (std::size_t i = 0; i < term.tokens.size(); ++i) {
      auto& t = term.tokens[i];
      if (t.term.empty() || t.term.size() > max_term_bytes || !valid_utf8(t.term) ||
          (i > 0 && t.pos <= term.tokens[i - 1].pos))
        std::abort();
    }
    query_tokens += term.tokens.size();
  }
  if (query.terms.size() > 8 || query_tokens > 32) std::abort();

  check_ranges(highlight(text, query), length);

  if (q.size() == text.size() && all.size() < default_max_tokens) {
    for (auto& term : query.terms) {
      if (highlight(text, kaiwa::read::query{{term}}).empty()) std::abort();
    }
  }
  return 0;
}
