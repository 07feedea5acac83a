#include "read/text.hpp"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/uscript.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <stdexcept>

namespace kaiwa::read {

namespace {

// Offsets are uint32 and ICU lengths int32: text beyond this is not analyzed (callers cap text
// at 16 KiB, so this only keeps the arithmetic below from overflowing).
constexpr std::size_t max_input_bytes = std::size_t{1} << 30;

// A normalization segment (a character with a boundary before it and the characters after it
// that have none) longer than this is cut, as UAX #15's stream-safe text format does after 30
// non-starters: a base followed by thousands of combining marks would otherwise cost ICU's
// canonical reordering time quadratic in their number.
constexpr std::size_t max_segment_units = 64;

const icu::Normalizer2& nfkc_cf() {
  static const icu::Normalizer2* n = [] {
    UErrorCode status = U_ZERO_ERROR;
    auto* instance = icu::Normalizer2::getNFKCCasefoldInstance(status);
    if (U_FAILURE(status)) throw std::runtime_error("ICU: no NFKC_Casefold data");
    return instance;
  }();
  return *n;
}

/// The UTF-16 form of `text` as JavaScript's TextDecoder makes it: each maximal ill-formed
/// subsequence becomes one U+FFFD. An index into it is the offset a client counts.
void to_utf16(std::string_view text, std::u16string& out) {
  // UTF-16 never needs more units than UTF-8 has bytes.
  out.resize(text.size());
  char16_t* o = out.data();
  auto* s = reinterpret_cast<const std::uint8_t*>(text.data());
  auto n = static_cast<std::int32_t>(text.size());
  for (std::int32_t i = 0; i < n;) {
    if (s[i] < 0x80) {
      *o++ = s[i++];
      continue;
    }
    UChar32 c;
    U8_NEXT_OR_FFFD(s, i, n, c);
    if (c <= 0xffff) {
      *o++ = static_cast<char16_t>(c);
    } else {
      *o++ = U16_LEAD(c);
      *o++ = U16_TRAIL(c);
    }
  }
  out.resize(std::size_t(o - out.data()));
}

/// Calls emit(c, begin, end) for each code point of the NFKC_Casefold form of `u` with the
/// range of `u` it comes from, in order; stops when emit returns false. Normalization runs
/// per segment between normalization boundaries, so every output character knows its source:
/// "ｷﾞ" is one segment (the dakuten composes with the ki) and gives ギ with both units' range.
template <class Emit>
void normalized(const std::u16string& u, Emit&& emit) {
  const auto& norm = nfkc_cf();
  const char16_t* s = u.data();
  const auto n = static_cast<std::int32_t>(u.size());
  icu::UnicodeString out;  // reused: ICU keeps its capacity between segments
  for (std::int32_t i = 0; i < n;) {
    // ASCII followed by ASCII (or the end) is a segment of its own that nfkc_cf only lowercases.
    if (s[i] < 0x80 && (i + 1 == n || s[i + 1] < 0x80)) {
      char16_t c = s[i];
      if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
      if (!emit(UChar32{c}, std::uint32_t(i), std::uint32_t(i + 1))) return;
      ++i;
      continue;
    }
    UErrorCode status = U_ZERO_ERROR;
    const icu::UnicodeString rest(false, s + i, n - i);  // read-only alias, no copy
    const std::int32_t same = i + norm.spanQuickCheckYes(rest, status);
    if (U_FAILURE(status)) return;
    // [i, same) is already normalized and ends at a boundary: each character maps to itself.
    while (i < same) {
      std::int32_t begin = i;
      UChar32 c;
      U16_NEXT_UNSAFE(s, i, c);
      if (!emit(c, std::uint32_t(begin), std::uint32_t(i))) return;
    }
    if (i >= n) return;
    std::int32_t end = i;
    UChar32 c;
    U16_NEXT_UNSAFE(s, end, c);
    while (end < n && std::size_t(end - i) < max_segment_units) {
      std::int32_t next = end;
      U16_NEXT_UNSAFE(s, next, c);
      if (norm.hasBoundaryBefore(c)) break;
      end = next;
    }
    norm.normalize(icu::UnicodeString(false, s + i, end - i), out, status);
    if (U_FAILURE(status)) return;
    for (std::int32_t k = 0; k < out.length();) {
      UChar32 d = out.char32At(k);
      k += U16_LENGTH(d);
      if (!emit(d, std::uint32_t(i), std::uint32_t(end))) return;
    }
    i = end;
  }
}

void append_utf8(std::string& out, UChar32 c) {
  if (c < 0x80) {
    out.push_back(char(c));
    return;
  }
  char buf[U8_MAX_LENGTH];
  std::int32_t len = 0;
  U8_APPEND_UNSAFE(buf, len, c);
  out.append(buf, std::size_t(len));
}

std::size_t utf8_length(UChar32 c) { return std::size_t(U8_LENGTH(c)); }

enum class kind { separator, mark, cjk, word };

/// The class of a normalized character (so no uppercase, no full-width or half-width forms).
kind classify(UChar32 c) {
  if (c < 0x80) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? kind::word : kind::separator;
  }
  // The common CJK blocks without a property lookup: unified ideographs, hiragana and
  // katakana letters, hangul syllables.
  if ((c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3041 && c <= 0x3096) ||
      (c >= 0x30a1 && c <= 0x30fa) || (c >= 0xac00 && c <= 0xd7a3))
    return kind::cjk;
  // ー (the prolonged sound mark) and 〆 have script Common, 々 and 〇 Han: all are part of words.
  if (c == 0x30fc || (c >= 0x3005 && c <= 0x3007)) return kind::cjk;
  switch (u_charType(c)) {
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK:
      return kind::mark;
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER: {
      UErrorCode status = U_ZERO_ERROR;
      switch (uscript_getScript(c, &status)) {
        case USCRIPT_HAN:
        case USCRIPT_HIRAGANA:
        case USCRIPT_KATAKANA:
        case USCRIPT_KATAKANA_OR_HIRAGANA:
        case USCRIPT_HANGUL:
          return kind::cjk;
        default:
          return kind::word;
      }
    }
    default:
      return kind::separator;
  }
}

/// One token as the analyzer produces it, with what queries and highlighting need beyond
/// `token`. The term is a view into the analyzer's buffer, valid during the callback.
struct piece {
  std::string_view term;
  std::uint32_t pos;
  std::uint32_t begin;
  std::uint32_t end;
  std::uint32_t first_end;  // end of the token's first character (what a prefix matches)
  bool cjk;
  std::uint32_t run_length;  // characters in the CJK run it comes from
  bool run_tail;             // the trailing unigram of a CJK run
};

/// Tokenizes normalized characters as they come: one run (a word, or a CJK run) is buffered,
/// normalized, in `run_` and becomes tokens when a character of another kind ends it.
/// Buffers are reused within a call, so the cost per character is amortized constant.
template <class Sink>
class analyzer {
 public:
  explicit analyzer(Sink& sink) : sink_(sink) {}

  /// false once the sink wants no more tokens.
  bool feed(UChar32 c, std::uint32_t begin, std::uint32_t end) {
    switch (classify(c)) {
      case kind::separator:
        return flush();
      case kind::mark:
        if (state_ == kind::word) {
          append_word(c, end);
        } else if (state_ == kind::cjk) {
          // A mark belongs to the CJK character before it; a character keeps at most half of
          // max_term_bytes, so that a bigram is within it.
          auto& u = units_.back();
          if (u.bytes_end - u.bytes_begin + utf8_length(c) <= max_term_bytes / 2) {
            append_utf8(run_, c);
            u.bytes_end = run_.size();
          }
          u.end = std::max(u.end, end);
        }
        return true;
      case kind::cjk:
        if (state_ == kind::word && !flush()) return false;
        state_ = kind::cjk;
        units_.push_back({run_.size(), 0, begin, end});
        append_utf8(run_, c);
        units_.back().bytes_end = run_.size();
        return true;
      case kind::word:
        if (state_ == kind::cjk && !flush()) return false;
        if (state_ != kind::word) {
          state_ = kind::word;
          word_begin_ = begin;
          word_first_end_ = end;
        }
        append_word(c, end);
        return true;
    }
    return true;
  }

  /// Ends the current run: its tokens go to the sink. false once the sink wants no more.
  bool flush() {
    bool more = true;
    if (state_ == kind::word) {
      more = emit({run_, pos_, word_begin_, word_end_, word_first_end_, false, 0, false});
    } else if (state_ == kind::cjk) {
      const auto length = std::uint32_t(units_.size());
      for (std::size_t i = 0; more && i + 1 < units_.size(); ++i) {
        const auto& a = units_[i];
        const auto& b = units_[i + 1];
        std::string_view bigram(run_.data() + a.bytes_begin, b.bytes_end - a.bytes_begin);
        more = emit({bigram, pos_, a.begin, std::max(a.end, b.end), a.end, true, length, false});
      }
      const auto& last = units_.back();
      std::string_view unigram(run_.data() + last.bytes_begin, last.bytes_end - last.bytes_begin);
      if (more) more = emit({unigram, pos_, last.begin, last.end, last.end, true, length, true});
    }
    state_ = kind::separator;
    run_.clear();
    units_.clear();
    return more;
  }

 private:
  struct unit {
    std::size_t bytes_begin, bytes_end;  // in run_
    std::uint32_t begin, end;            // in the original text
  };

  void append_word(UChar32 c, std::uint32_t end) {
    // Terms are cut at max_term_bytes (on a character boundary); the token still spans the
    // whole word in the original text.
    if (run_.size() + utf8_length(c) <= max_term_bytes) append_utf8(run_, c);
    word_end_ = end;
  }

  bool emit(const piece& p) {
    ++pos_;
    return sink_(p);
  }

  Sink& sink_;
  kind state_ = kind::separator;
  std::string run_;
  std::vector<unit> units_;
  std::uint32_t word_begin_ = 0, word_end_ = 0, word_first_end_ = 0;
  std::uint32_t pos_ = 0;
};

/// Runs the whole pipeline over `text`: sink(piece) -> bool (false: stop).
template <class Sink>
void analyze(std::string_view text, Sink&& sink) {
  std::u16string u;
  to_utf16(text.substr(0, max_input_bytes), u);
  analyzer<Sink> a(sink);
  bool more = true;
  normalized(u, [&](UChar32 c, std::uint32_t begin, std::uint32_t end) {
    return more = a.feed(c, begin, end);
  });
  if (more) a.flush();
}

struct text_token {
  token t;
  std::uint32_t first_end;
};

std::vector<text_token> text_tokens(std::string_view text, std::size_t max_tokens) {
  std::vector<text_token> out;
  if (max_tokens == 0) return out;
  analyze(text, [&](const piece& p) {
    out.push_back({{std::string(p.term), p.pos, p.begin, p.end}, p.first_end});
    return out.size() < max_tokens;
  });
  return out;
}

bool is_space(UChar32 c) { return u_isUWhiteSpace(c); }

bool is_quote(UChar32 c) {
  // ASCII, full-width (a Japanese IME) and typographic (a phone's keyboard) double quotes.
  return c == '"' || c == 0xff02 || c == 0x201c || c == 0x201d;
}

}  // namespace

std::string normalize(std::string_view text) {
  std::u16string u;
  to_utf16(text.substr(0, max_input_bytes), u);
  std::string out;
  out.reserve(text.size());
  normalized(u, [&](UChar32 c, std::uint32_t, std::uint32_t) {
    append_utf8(out, c);
    return true;
  });
  return out;
}

std::vector<token> tokenize(std::string_view text, std::size_t max_tokens) {
  std::vector<token> out;
  if (max_tokens == 0) return out;
  out.reserve(std::min(max_tokens, text.size() / 2 + 1));
  analyze(text, [&](const piece& p) {
    out.push_back({std::string(p.term), p.pos, p.begin, p.end});
    return out.size() < max_tokens;
  });
  return out;
}

query parse_query(std::string_view q) {
  constexpr std::size_t max_terms = 8;
  constexpr std::size_t max_query_tokens = 32;
  query out;
  std::size_t budget = max_query_tokens;
  auto add_term = [&](std::string_view chunk) {
    if (chunk.empty() || budget == 0 || out.terms.size() == max_terms) return;
    query_term term;
    analyze(chunk, [&](const piece& p) {
      // A CJK run of two or more characters is its bigrams; its tail adds nothing.
      if (p.cjk && p.run_tail && p.run_length >= 2) return true;
      term.tokens.push_back({std::string(p.term), p.pos, p.cjk && p.run_length == 1});
      return --budget > 0;
    });
    if (!term.tokens.empty()) out.terms.push_back(std::move(term));
  };
  auto* s = reinterpret_cast<const std::uint8_t*>(q.data());
  auto n = static_cast<std::int32_t>(std::min(q.size(), max_input_bytes));
  bool quoted = false;
  std::int32_t chunk_begin = 0;
  for (std::int32_t i = 0; i < n;) {
    std::int32_t begin = i;
    UChar32 c;
    U8_NEXT_OR_FFFD(s, i, n, c);
    if (is_quote(c) || (!quoted && is_space(c))) {
      add_term(q.substr(std::size_t(chunk_begin), std::size_t(begin - chunk_begin)));
      if (is_quote(c)) quoted = !quoted;
      chunk_begin = i;
    }
  }
  add_term(q.substr(std::size_t(chunk_begin), std::size_t(n - chunk_begin)));
  return out;
}

std::vector<std::pair<std::uint32_t, std::uint32_t>> highlight(std::string_view text,
                                                               const query& q) {
  std::vector<std::pair<std::uint32_t, std::uint32_t>> ranges;
  if (q.terms.empty()) return ranges;
  // Text positions are dense (the token at position p is tokens[p]), so a term's tokens are
  // looked up directly at their offsets from a candidate start.
  auto tokens = text_tokens(text, default_max_tokens);
  auto matches = [](const text_token& t, const query_token& qt) {
    return qt.prefix ? t.t.term.starts_with(qt.term) : t.t.term == qt.term;
  };
  for (const auto& term : q.terms) {
    if (term.tokens.empty()) continue;
    for (std::size_t start = 0; start < tokens.size(); ++start) {
      std::uint32_t begin = UINT32_MAX, end = 0;
      bool all = true;
      for (const auto& qt : term.tokens) {
        std::size_t at = start + qt.pos;
        if (at >= tokens.size() || !matches(tokens[at], qt)) {
          all = false;
          break;
        }
        const auto& t = tokens[at];
        begin = std::min(begin, t.t.begin);
        end = std::max(end, qt.prefix ? t.first_end : t.t.end);
      }
      if (all) ranges.emplace_back(begin, end);
    }
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<std::pair<std::uint32_t, std::uint32_t>> merged;
  for (const auto& r : ranges) {
    if (!merged.empty() && r.first <= merged.back().second) {
      merged.back().second = std::max(merged.back().second, r.second);
    } else {
      merged.push_back(r);
    }
  }
  return merged;
}

}  // namespace kaiwa::read
