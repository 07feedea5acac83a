#include "read/search_index.hpp"

#include <algorithm>
#include <limits>
#include <memory>
#include <unordered_map>

#include "core/bytes.hpp"
#include "core/log.hpp"
#include "read/room_list.hpp"
#include "storage/journal.hpp"

// Layout of the "read.search" family (docs/read-side.md, "Search index"); `sp` is the room's
// storage::shard_prefix:
//   sp 0x01 term NUL D      -> (empty): the message holds the term
//   sp 0x02 room NUL be64(seq) -> be48(ts) and the text that was indexed: what removing it on
//                              an edit or delete needs (the log's record of the message is
//                              rewritten in place, and when the room is deleted it is gone
//                              first), and the text to check phrases and prefix tokens on a
//                              candidate
//   0xFF 0xFF 0xFF "format" -> the layout's version (format_version), outside every shard's
//                              range: a drop of the family or of a shard leaves it
// D, the "doc suffix", sorts newest first in ascending byte order, exactly the reverse of the
// page sort key be64(ts) room NUL be64(seq): be48(~ts) (the ts's low 48 bits, a millisecond
// count good until the year 10889), the room's bytes inverted then 0xFF (a valid room name has
// no 0x00 byte, so no inverted byte is 0xFF and a longer name sorts first), then the seq as one
// byte 8-n and its n significant bytes inverted (a larger seq first, 4 bytes instead of 8 for
// seqs below 2^24). A forward walk of one term's keys in a shard is therefore that shard's
// postings newest first, in the order of the reply.
//
// Postings carry no positions (they were a third of the index's size): the positions of a
// phrase's tokens are checked on the candidate's 0x02 text, one read per candidate that holds
// every token.

namespace kaiwa::read {

namespace {

using storage::read_family;

constexpr char tag_posting = 0x01;
constexpr char tag_doc = 0x02;

/// The layout written; an index with another (or none, the layout before versions) is dropped
/// and rebuilt at start (search_index::check_format).
constexpr std::string_view format_version = "3";
const std::string format_key = std::string("\xff\xff\xff", 3) + "format";

/// The ts field of D: 48 bits.
constexpr std::size_t ts_bytes = 6;
constexpr std::uint64_t ts_max = (std::uint64_t{1} << 48) - 1;

/// A single-character CJK query token matches every term starting with it; in a shard it walks
/// the postings of at most this many such terms (the first in byte order).
constexpr std::size_t max_prefix_terms = 128;
/// Nexts a cursor tries before it seeks instead.
constexpr std::size_t max_nexts = 8;
/// Steps a shard's walk takes in a row at most when it is the newest.
constexpr std::size_t max_turn = 16;
/// Hits one page may hold, whatever the caller asks.
constexpr std::size_t max_limit = 100;

/// A message as the index addresses it.
struct doc_ref {
  millis_t ts = 0;
  std::string room;
  seq_t seq = 0;
};

/// A message's ts as the index keeps it: clamped to 0 .. 2^48-1 (so a hit's sort key is made
/// from the clamped ts too, and pages stay consistent with the walk).
std::uint64_t ts_bits(millis_t ts) {
  return std::min<std::uint64_t>(static_cast<std::uint64_t>(std::max<millis_t>(ts, 0)), ts_max);
}

void append_be48(std::string& out, std::uint64_t v) {
  for (int i = 5; i >= 0; --i) out += static_cast<char>(v >> (8 * i));
}

std::uint64_t read_be48(std::string_view s) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < ts_bytes; ++i) v = (v << 8) | static_cast<unsigned char>(s[i]);
  return v;
}

std::string doc_suffix(const doc_ref& d) {
  std::string s;
  s.reserve(ts_bytes + d.room.size() + 1 + 9);
  append_be48(s, ~ts_bits(d.ts) & ts_max);
  for (char c : d.room) s += static_cast<char>(~static_cast<unsigned char>(c));
  s += '\xff';
  int n = 1;
  while (n < 8 && (d.seq >> (8 * n)) != 0) ++n;
  s += static_cast<char>(8 - n);
  for (int i = n - 1; i >= 0; --i)
    s += static_cast<char>(~static_cast<unsigned char>(d.seq >> (8 * i)));
  return s;
}

std::optional<doc_ref> parse_suffix(std::string_view s) {
  if (s.size() < ts_bytes + 1 + 1 + 1) return std::nullopt;
  doc_ref d;
  d.ts = static_cast<millis_t>(~read_be48(s) & ts_max);
  s.remove_prefix(ts_bytes);
  auto end = s.find('\xff');
  if (end == 0 || end == std::string_view::npos) return std::nullopt;
  for (char c : s.substr(0, end)) d.room += static_cast<char>(~static_cast<unsigned char>(c));
  s.remove_prefix(end + 1);
  auto len = static_cast<unsigned char>(s.front());
  if (len > 7 || s.size() != 1 + 8 - std::size_t{len}) return std::nullopt;
  for (char c : s.substr(1))
    d.seq = (d.seq << 8) | static_cast<unsigned char>(~static_cast<unsigned char>(c));
  return d;
}

/// The page sort key (read/page.hpp): be64(ts) room NUL be64(seq).
std::string sort_key(const doc_ref& d) {
  std::string k;
  append_be64(k, ts_bits(d.ts));
  k += d.room;
  k += '\0';
  append_be64(k, d.seq);
  return k;
}

/// Where a walk that stopped at `frontier` continues: below every doc newer than it. Docs in
/// the frontier's millisecond may have been decided already, so the key is the millisecond
/// after it, bare (be64(ts + 1): every doc of that ts or older sorts below it), or the last hit's
/// key if that is lower (a hit in the frontier's millisecond). Nullopt when the frontier says no
/// time (the walk stopped before any step).
std::optional<std::string> resume_key(std::string_view frontier, const page& found) {
  if (frontier.size() < ts_bytes) return std::nullopt;
  auto ts = ~read_be48(frontier) & ts_max;
  if (ts >= ts_max) return std::nullopt;
  std::string k;
  append_be64(k, ts + 1);
  if (!found.items.empty() && found.items.back().sort_key < k) return found.items.back().sort_key;
  return k;
}

std::optional<doc_ref> parse_sort_key(std::string_view k) {
  if (k.size() < 8 + 1 + 1 + 8 || k[k.size() - 9] != '\0') return std::nullopt;
  doc_ref d;
  auto ts = read_be64(k);
  if (ts > static_cast<std::uint64_t>(std::numeric_limits<millis_t>::max())) return std::nullopt;
  d.ts = static_cast<millis_t>(ts);
  d.room = std::string(k.substr(8, k.size() - 17));
  if (!valid_name(d.room)) return std::nullopt;
  d.seq = read_be64(k.substr(k.size() - 8));
  return d;
}

std::string term_prefix(std::string_view sp, std::string_view term) {
  std::string k(sp);
  k += tag_posting;
  k += term;
  k += '\0';
  return k;
}

/// A 0x02 record's value: the message's ts (as D holds it) and the text indexed.
std::string doc_value(millis_t ts, std::string_view text) {
  std::string v;
  v.reserve(ts_bytes + text.size());
  append_be48(v, ts_bits(ts));
  v += text;
  return v;
}

struct doc_record {
  millis_t ts = 0;
  std::string_view text;
};

/// nullopt for a value too short to be one (a damaged record).
std::optional<doc_record> parse_doc_value(std::string_view v) {
  if (v.size() < ts_bytes) return std::nullopt;
  return doc_record{static_cast<millis_t>(read_be48(v)), v.substr(ts_bytes)};
}

std::string doc_key(std::string_view sp, std::string_view room, seq_t seq) {
  std::string k(sp);
  k += tag_doc;
  k += room;
  k += '\0';
  append_be64(k, seq);
  return k;
}

/// The distinct terms of `text` (never empty, no NUL, at most max_term_bytes: read/text.hpp),
/// in byte order.
std::vector<std::string> terms_of(std::string_view text) {
  std::vector<std::string> terms;
  for (auto& t : tokenize(text)) terms.push_back(std::move(t.term));
  std::sort(terms.begin(), terms.end());
  terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
  return terms;
}

/// Whether `t`'s tokens all occur at their relative positions, given each token's positions.
bool term_at_positions(const query_term& t,
                       const std::vector<const std::vector<std::uint32_t>*>& positions) {
  if (t.tokens.empty()) return true;
  auto first = t.tokens.front().pos;
  for (auto base : *positions.front()) {
    bool all = true;
    for (std::size_t k = 1; k < t.tokens.size() && all; ++k) {
      auto want = std::uint64_t{base} + (t.tokens[k].pos - first);
      all = std::binary_search(positions[k]->begin(), positions[k]->end(), want);
    }
    if (all) return true;
  }
  return false;
}

/// Whether `t` matches the tokens of a stored text: its tokens occur at their relative
/// positions, a prefix token being any term that starts with it.
bool term_in_text(const query_term& t, const std::vector<token>& toks) {
  std::vector<std::vector<std::uint32_t>> pos(t.tokens.size());
  for (auto& tok : toks) {
    std::string_view term = tok.term;
    for (std::size_t k = 0; k < t.tokens.size(); ++k) {
      auto& q = t.tokens[k];
      if (q.prefix ? term.starts_with(q.term) : term == q.term) pos[k].push_back(tok.pos);
    }
  }
  std::vector<const std::vector<std::uint32_t>*> ptrs;
  for (auto& p : pos) {
    if (p.empty()) return false;
    ptrs.push_back(&p);
  }
  return term_at_positions(t, ptrs);
}

/// Whether a term is checked on a candidate's stored text rather than by its postings alone:
/// a phrase (its tokens' positions) or one with a prefix token (whose terms don't drive).
bool needs_text(const query_term& t) {
  return t.tokens.size() > 1 || std::any_of(t.tokens.begin(), t.tokens.end(),
                                            [](const query_token& k) { return k.prefix; });
}

/// One query's walk over the index. Each shard walks its hits newest first by leapfrog: the
/// driving terms' postings are sought in turn at the shard's candidate, which moves to whatever
/// a term has next, until all of them sit on it. A heap across shards gives the next turn to
/// the shard whose candidate is newest, so a shard whose postings are all older than the hits
/// already found is never walked further, and the walk can stop after any step with the hits
/// so far being exactly the newest ones (a complete prefix of the answer). The cursors (one per
/// driving term) are shared by all shards. Used by one thread for one query.
class query_walk {
 public:
  query_walk(storage::journal& j, const room_list& access, std::size_t max_steps,
             const user_id& user, const query& q, const std::optional<room_id>& room)
      : journal_(j), access_(access), max_steps_(max_steps), user_(user), q_(q), room_(room) {}

  /// Sets up the driving terms; false when the query has nothing to search for.
  bool prepare() {
    bool only_prefix = true;
    for (auto& t : q_.terms)
      for (auto& tok : t.tokens) {
        // Keys end a term with NUL, and an empty prefix token would match every term: not
        // what parse_query makes, refused whoever made it.
        if (tok.term.empty() || tok.term.find('\0') != std::string::npos) return false;
        if (!tok.prefix) only_prefix = false;
      }
    checks_text_ = std::any_of(q_.terms.begin(), q_.terms.end(), needs_text);
    // Every exact token drives; a prefix token is checked against the stored text of a
    // candidate, and drives only when the query has nothing else.
    for (auto& t : q_.terms) {
      for (auto& tok : t.tokens) {
        if (tok.prefix != only_prefix) continue;
        if (std::none_of(drivers_.begin(), drivers_.end(),
                         [&](const driver& d) { return d.term == tok.term; }))
          drivers_.push_back({tok.term, tok.prefix, journal_.new_read_cursor(read_family::search)});
      }
    }
    return !drivers_.empty();
  }

  struct outcome {
    std::vector<std::string> hits;  // doc suffixes, newest first
    bool stopped = false;           // the budget ran out before the walk was done
    std::string frontier;           // when stopped: no hit was missed before it
  };

  /// The first `want` hits in `shards` whose doc suffix is at least `start`.
  storage::result<outcome> run(const std::vector<shard_t>& shards, const std::string& start,
                               std::size_t want) {
    std::vector<shard_walk> walks;
    walks.reserve(shards.size());
    for (auto s : shards) {
      shard_walk w;
      w.sp = storage::shard_prefix(s);
      w.cand = start;
      walks.push_back(std::move(w));
    }
    auto later = [&](std::size_t a, std::size_t b) { return walks[a].cand > walks[b].cand; };
    std::vector<std::size_t> heap(walks.size());
    for (std::size_t i = 0; i < heap.size(); ++i) heap[i] = i;
    std::make_heap(heap.begin(), heap.end(), later);

    outcome out;
    while (!heap.empty() && out.hits.size() < want) {
      if (steps_ >= max_steps_) {
        out.stopped = true;
        out.frontier = walks[heap.front()].cand;
        break;
      }
      std::pop_heap(heap.begin(), heap.end(), later);
      auto& w = walks[heap.back()];
      if (w.candidate) {
        // The newest candidate of all shards: only the checks that cost a read are left.
        auto ok = accept(w);
        if (!ok.ok()) return ok.err();
        if (*ok) out.hits.push_back(w.cand);
        skip(w);
      } else {
        // A shard that keeps coming back takes longer turns (1, 2, 4, ... steps): steps in a
        // row on one shard find its postings at hand and mostly step forward instead of
        // seeking, while a shard needed once takes one step. The heap still decides which
        // candidate is the newest before any goes out.
        bool live = true;
        for (std::size_t n = 0; n < w.turn && live && !w.candidate && steps_ < max_steps_; ++n) {
          auto r = advance(w);
          if (!r.ok()) return r.err();
          live = *r;
        }
        w.turn = std::min(w.turn * 2, max_turn);
        if (!live) {
          heap.pop_back();
          continue;
        }
      }
      std::push_heap(heap.begin(), heap.end(), later);
    }
    return out;
  }

 private:
  struct driver {
    std::string term;
    bool prefix = false;
    std::unique_ptr<storage::read_cursor> cursor;
  };

  struct shard_walk {
    std::string sp;
    std::string cand;        // no hit of the shard sorts before it
    std::size_t agree = 0;   // drivers found at `cand` in a row
    std::size_t next = 0;    // the driver to seek next
    bool candidate = false;  // every driver is at `cand`, in the room asked for
    bool listed = false;     // prefix_terms is filled in
    std::size_t turn = 1;    // steps of its next turn
    std::vector<std::vector<std::string>> prefix_terms;  // per prefix driver, in this shard
  };

  static void skip(shard_walk& w) {
    w.cand += '\0';  // the smallest suffix after it
    w.agree = 0;
    w.candidate = false;
  }

  /// One step of a shard's walk (one driver moved, or its prefix terms listed); false when the
  /// shard has no more hits.
  storage::result<bool> advance(shard_walk& w) {
    if (!w.listed) {
      auto terms = list_prefix_terms(w.sp);
      if (!terms.ok()) return terms.err();
      w.prefix_terms = std::move(*terms);
      w.listed = true;
      return true;
    }
    auto r = seek(drivers_[w.next], w.sp, w.cand, w.prefix_terms[w.next]);
    if (!r.ok()) return r.err();
    if (!*r) return false;
    if (**r == w.cand) {
      ++w.agree;
    } else {
      w.cand = std::move(**r);
      w.agree = 1;
    }
    w.next = (w.next + 1) % drivers_.size();
    if (w.agree == drivers_.size()) {
      if (fits(w))
        w.candidate = true;
      else
        skip(w);
    }
    return true;
  }

  /// The terms starting with each prefix driver in a shard (empty lists for exact drivers).
  storage::result<std::vector<std::vector<std::string>>> list_prefix_terms(std::string_view sp) {
    std::vector<std::vector<std::string>> out(drivers_.size());
    for (std::size_t i = 0; i < drivers_.size(); ++i) {
      if (!drivers_[i].prefix) continue;
      std::string start(sp);
      start += tag_posting;
      auto head_len = start.size();
      start += drivers_[i].term;
      auto& cur = *drivers_[i].cursor;
      cur.seek(start);
      while (out[i].size() < max_prefix_terms) {
        ++steps_;
        if (!cur.valid()) {
          if (auto s = cur.state(); !s.ok()) return s.err();
          break;
        }
        auto key = cur.key();
        if (!key.starts_with(start)) break;
        auto nul = key.find('\0', head_len);
        if (nul == std::string_view::npos) break;
        auto term = std::string(key.substr(head_len, nul - head_len));
        cur.seek(std::string(key.substr(0, nul)) + '\x01');  // past every key of `term`
        out[i].push_back(std::move(term));
      }
    }
    return out;
  }

  /// The doc suffix of the first posting of `d` in the shard at or after `from`.
  storage::result<std::optional<std::string>> seek(driver& d, std::string_view sp,
                                                   std::string_view from,
                                                   const std::vector<std::string>& prefix_terms) {
    if (!d.prefix) return seek_term(*d.cursor, term_prefix(sp, d.term), from);
    std::optional<std::string> best;
    for (auto& t : prefix_terms) {
      auto r = seek_term(*d.cursor, term_prefix(sp, t), from);
      if (!r.ok()) return r.err();
      if (*r && (!best || **r < *best)) best = std::move(*r);
    }
    return best;
  }

  storage::result<std::optional<std::string>> seek_term(storage::read_cursor& cur,
                                                        const std::string& prefix,
                                                        std::string_view from) {
    auto target = prefix + std::string(from);
    // A cursor already on this term before the target steps forward (a next costs a fraction
    // of a seek, and a shard's leapfrog mostly moves a few postings at a time).
    bool found = false;
    if (cur.valid() && cur.key().starts_with(prefix) && cur.key() < target) {
      for (std::size_t n = 0; n < max_nexts; ++n) {
        ++steps_;
        cur.next();
        if (!cur.valid() || !cur.key().starts_with(prefix) || cur.key() >= target) {
          found = true;
          break;
        }
      }
    }
    if (!found) {
      ++steps_;
      cur.seek(target);
    }
    if (!cur.valid()) {
      if (auto s = cur.state(); !s.ok()) return s.err();
      return std::optional<std::string>{};
    }
    auto key = cur.key();
    if (!key.starts_with(prefix)) return std::optional<std::string>{};
    return std::optional<std::string>{std::string(key.substr(prefix.size()))};
  }

  /// The check on a doc every driver is at that costs no read: the room asked for.
  bool fits(const shard_walk& w) const {
    if (!room_) return true;
    auto d = parse_suffix(w.cand);
    return d && room_->str() == d->room;
  }

  /// The checks that read: the user may read the room now, and the phrases and terms with
  /// prefix tokens occur in the stored text.
  storage::result<bool> accept(const shard_walk& w) {
    auto d = parse_suffix(w.cand);
    if (!d) return false;
    auto readable = may_read(d->room);
    if (!readable.ok() || !*readable) return readable;
    if (!checks_text_) return true;
    ++steps_;
    auto stored = journal_.read_get(read_family::search, doc_key(w.sp, d->room, d->seq));
    if (!stored.ok()) return stored.err();
    auto doc = *stored ? parse_doc_value(**stored) : std::nullopt;
    if (!doc) return false;
    auto toks = tokenize(doc->text);
    for (auto& t : q_.terms)
      if (needs_text(t) && !term_in_text(t, toks)) return false;
    return true;
  }

  storage::result<bool> may_read(const std::string& room) {
    if (auto it = readable_.find(room); it != readable_.end()) return it->second;
    ++steps_;
    auto r = access_.may_read(user_, room_id{room});
    if (!r.ok()) return r.err();
    readable_.emplace(room, *r);
    return *r;
  }

  storage::journal& journal_;
  const room_list& access_;
  std::size_t max_steps_;
  const user_id& user_;
  const query& q_;
  const std::optional<room_id>& room_;
  std::vector<driver> drivers_;
  bool checks_text_ = false;                        // some term is checked on the stored text
  std::unordered_map<std::string, bool> readable_;  // may_read, once per room per query
  std::size_t steps_ = 0;
};

/// The stored event JSON with "highlight" appended; nullopt when the message is gone.
std::optional<std::string> hit_json(std::string json, const query& q) {
  auto e = decode_event(json);
  if (!e || e->deleted || e->type != event_type::message || json.empty() || json.back() != '}')
    return std::nullopt;
  json.pop_back();
  json += ",\"highlight\":[";
  bool first = true;
  for (auto [b, end] : highlight(e->text, q)) {
    if (!first) json += ',';
    first = false;
    json += '[' + std::to_string(b) + ',' + std::to_string(end) + ']';
  }
  json += "]}";
  return json;
}

}  // namespace

search_index::search_index(storage::journal& journal, const room_list& access, search_config cfg)
    : journal_(journal), access_(access), cfg_(cfg) {}

storage::status search_index::check_format() {
  auto stored = journal_.read_get(read_family::search, format_key);
  if (!stored.ok()) return stored.err();
  if (*stored && **stored == format_version) return {};
  bool empty = true;
  if (!*stored) {
    auto cur = journal_.new_read_cursor(read_family::search);
    cur->seek({});
    if (auto s = cur->state(); !s.ok()) return s;
    empty = !cur->valid() || cur->key() == format_key;
  }
  if (!empty || *stored) {
    // The offsets go with the data, so the projector's catch-up at start applies every room
    // from its first event: a rebuild.
    log(log_level::warn, "search_index_format_changed",
        {{"found", *stored ? **stored : std::string("1")},
         {"expected", std::string(format_version)},
         {"action", "dropped; rebuilt by the catch-up"}});
    if (auto s = journal_.drop_reads(read_family::search); !s.ok()) return s;
  }
  auto batch = journal_.new_read_batch();
  batch.put(read_family::search, format_key, format_version);
  return journal_.write_reads(std::move(batch));
}

namespace {

void add_postings(storage::read_batch& batch, std::string_view sp, const doc_ref& d,
                  std::string_view text) {
  auto suffix = doc_suffix(d);
  for (auto& term : terms_of(text))
    batch.put(read_family::search, term_prefix(sp, term) + suffix, {});
  batch.put(read_family::search, doc_key(sp, d.room, d.seq), doc_value(d.ts, text));
}

/// Removes the postings of `room`'s message `seq` (and its doc record); its ts, nullopt when it
/// isn't indexed (deleted, or not a message).
storage::result<std::optional<millis_t>> remove_postings(storage::read_batch& batch,
                                                         std::string_view sp,
                                                         const std::string& room, seq_t seq) {
  auto key = doc_key(sp, room, seq);
  auto stored = batch.get(read_family::search, key);
  if (!stored.ok()) return stored.err();
  if (!*stored) return std::optional<millis_t>{};
  auto doc = parse_doc_value(**stored);
  if (!doc)
    return storage::error{
        storage::errc::corruption,
        "search: the record of message " + std::to_string(seq) + " of " + room + " is damaged"};
  auto suffix = doc_suffix({doc->ts, room, seq});
  for (auto& term : terms_of(doc->text))
    batch.del(read_family::search, term_prefix(sp, term) + suffix);
  batch.del(read_family::search, key);
  return std::optional<millis_t>{doc->ts};
}

}  // namespace

storage::status search_index::apply(const event& e, std::string_view, storage::read_batch& batch,
                                    std::vector<notice>&) {
  if (!valid_name(e.room.str())) return {};
  auto sp = storage::shard_prefix(shard_of(e.room.str(), journal_.shards()));
  switch (e.type) {
    case event_type::message:
      // A message stored deleted (a rebuild after its delete) has no text to index.
      if (!e.deleted) add_postings(batch, sp, {e.ts, e.room.str(), e.seq}, e.text);
      return {};
    case event_type::edit: {
      // The edit's text replaces what was indexed, under the message's seq and ts. A redacted
      // edit (its message was deleted since) removes it; the delete that follows finds nothing.
      auto ts = remove_postings(batch, sp, e.room.str(), e.ref);
      if (!ts.ok()) return ts.err();
      if (*ts && !e.deleted) add_postings(batch, sp, {**ts, e.room.str(), e.ref}, e.text);
      return {};
    }
    case event_type::del: {
      auto ts = remove_postings(batch, sp, e.room.str(), e.ref);
      if (!ts.ok()) return ts.err();
      return {};
    }
    default:
      return {};
  }
}

storage::result<bool> search_index::erase_room(const room_id& room, storage::read_batch& batch,
                                               std::size_t max_ops) {
  auto sp = storage::shard_prefix(shard_of(room.str(), journal_.shards()));
  // Each doc record holds the text that was indexed: its terms name its postings.
  auto prefix = doc_key(sp, room.str(), 0);
  prefix.resize(prefix.size() - 8);
  auto cursor = journal_.new_read_cursor(read_family::search);
  for (cursor->seek(prefix); cursor->valid() && cursor->key().starts_with(prefix); cursor->next()) {
    if (batch.count() >= max_ops) return false;
    auto key = cursor->key();
    auto removed = remove_postings(batch, sp, room.str(), read_be64(key.substr(key.size() - 8)));
    if (!removed.ok()) return removed.err();
  }
  if (!cursor->state().ok()) return cursor->state().err();
  return true;
}

storage::result<page> search_index::search(const user_id& user, const query& q,
                                           const std::optional<room_id>& room,
                                           const std::vector<shard_t>& shards,
                                           const std::optional<std::string>& before,
                                           std::size_t limit) const {
  page out;
  limit = std::min(limit, max_limit);
  if (limit == 0 || q.terms.empty()) return out;

  std::string start;  // the first doc suffix a hit may have
  if (before && before->size() == 8) {
    // A bare time (resume_key): every doc older than that millisecond.
    auto ts = read_be64(*before);
    if (ts == 0) return out;
    append_be48(start, ~std::min(ts - 1, ts_max) & ts_max);
  } else if (before) {
    // A cursor is whatever a client sent back: one that no page of search gave out is a
    // client's bug or forgery, not a failure of the node (which would log it): it finds nothing.
    auto b = parse_sort_key(*before);
    if (!b) return out;
    start = doc_suffix(*b) + '\0';
  }

  std::vector<shard_t> walk;
  if (room) {
    auto s = shard_of(room->str(), journal_.shards());
    if (std::find(shards.begin(), shards.end(), s) == shards.end()) return out;
    // A room the user may not read finds nothing, without a walk: walked, its postings ran the
    // query out of work, and `more` with a `next` (a message's time) told a non-member that
    // the room holds the words, and when.
    auto readable = access_.may_read(user, *room);
    if (!readable.ok()) return readable.err();
    if (!*readable) return out;
    walk.push_back(s);
  } else {
    // A shard listed twice would give its hits twice.
    walk = shards;
    std::sort(walk.begin(), walk.end());
    walk.erase(std::unique(walk.begin(), walk.end()), walk.end());
  }

  query_walk qw(journal_, access_, cfg_.max_steps, user, q, room);
  if (!qw.prepare()) return out;
  auto walked = qw.run(walk, start, limit + 1);
  if (!walked.ok()) return walked.err();
  auto& hits = walked->hits;
  out.more = hits.size() > limit || walked->stopped;
  if (hits.size() > limit) hits.resize(limit);

  for (auto& h : hits) {
    auto d = parse_suffix(h);
    if (!d) continue;
    auto json = journal_.event(room_id{d->room}, d->seq);
    if (!json.ok()) return json.err();
    if (!*json) continue;
    auto item = hit_json(std::move(**json), q);
    if (item) out.items.push_back({sort_key(*d), std::move(*item)});
  }
  if (walked->stopped) out.next = resume_key(walked->frontier, out);
  return out;
}

}  // namespace kaiwa::read
