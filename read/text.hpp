#pragma once
// Text analysis for search (docs/read-side.md, "Text analysis"): normalization and tokens, the
// same for indexed text and queries.
//
// Normalization is Unicode NFKC with case folding (ICU's nfkc_cf): "ｶｲｷﾞ" -> "カイギ",
// "Ｔｏｋｙｏ" -> "tokyo". Tokens: runs of CJK characters (Han, Hiragana, Katakana, Hangul)
// become overlapping character bigrams followed by the run's last character as a unigram (as
// Groonga's TokenBigram does), so "会議は" gives 会議@0 議は@1 は@2 and "会" alone gives 会@0;
// runs of letters and digits of other scripts become words; everything else (spaces,
// punctuation, symbols, emoji) separates tokens. Positions count tokens. A CJK query string of
// two or more characters is its bigrams, which match contiguous text exactly when they sit at
// consecutive positions; a single CJK character matches any term that starts with it.
//
// Offsets are what a client counts: the text as JavaScript's TextDecoder decodes it, so each
// maximal ill-formed UTF-8 subsequence is one U+FFFD (one unit), and a character outside the
// BMP (an emoji) is two units. The original text is normalized per normalization segment, and
// every character of a segment's output maps to the whole segment ("ｷﾞ" -> ギ spans both).
//
// All functions take arbitrary bytes: invalid UTF-8 is treated as separators, never an error.
// Input is capped by the caller (a message is at most 16 KiB; a query at most 256 bytes).
// Terms are never empty, are valid UTF-8 and never contain NUL (a control is a separator).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kaiwa::read {

/// A term is at most this many bytes, so a hostile 16 KiB "word" doesn't make a 16 KiB index
/// key: a word's term is cut on a character boundary (its token still spans the whole word,
/// and a query word is cut the same way), a CJK character keeps combining marks after it up
/// to half of this.
inline constexpr std::size_t max_term_bytes = 64;

/// Tokens of a text that are indexed (and looked at by highlight).
inline constexpr std::size_t default_max_tokens = 4096;

/// NFKC + case folding of `text` (valid UTF-8 out).
std::string normalize(std::string_view text);

struct token {
  std::string term;     // normalized: a word, or a CJK bigram/unigram
  std::uint32_t pos;    // token position in the text, from 0
  std::uint32_t begin;  // where it comes from in the original text, in UTF-16 code units
  std::uint32_t end;    //   (what JavaScript's String.slice takes), [begin, end)
};

/// The tokens of `text` in order. At most `max_tokens` (the rest is not indexed).
std::vector<token> tokenize(std::string_view text, std::size_t max_tokens = default_max_tokens);

/// A parsed search query: terms that must all occur (AND), each a word, a CJK string, a
/// mixed run ("15時") or a quoted phrase: tokens that must sit at the given positions relative
/// to each other. The query is tokenized as text is, and then a CJK run of two or more
/// characters keeps only its bigrams (its trailing unigram adds nothing, but still counts in
/// the positions of what follows), and a run of one character becomes a prefix token: it
/// matches any term starting with it (every character of a CJK run starts some token).
struct query_token {
  std::string term;
  std::uint32_t pos = 0;  // relative to the term's first token
  bool prefix = false;
};
struct query_term {
  std::vector<query_token> tokens;  // ascending pos
};
struct query {
  std::vector<query_term> terms;  // empty: nothing to search for
};

/// Parses `q`: whitespace (Unicode White_Space, so the ideographic space too) separates terms,
/// "double quotes" (also ＂ “ ”) make a phrase (an unclosed one runs to the end), each term is
/// tokenized like text; a term without tokens ("!!") is dropped. At most 8 terms and 32
/// tokens in all: what comes after is cut (a term cut short keeps its first tokens).
query parse_query(std::string_view q);

/// Where the terms of `q` occur in `text` (its first default_max_tokens tokens): for each
/// occurrence of each term, the range from its first token to its last (only the character of
/// a prefix token), in UTF-16 code units of the original text, ascending, merged when they
/// overlap or touch. Empty when no term occurs.
std::vector<std::pair<std::uint32_t, std::uint32_t>> highlight(std::string_view text,
                                                               const query& q);

}  // namespace kaiwa::read
