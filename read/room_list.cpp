#include "read/room_list.hpp"

#include <algorithm>
#include <initializer_list>
#include <map>
#include <memory>
#include <queue>

#include "core/bytes.hpp"
#include "core/json.hpp"
#include "storage/journal.hpp"

namespace kaiwa::read {

// Keys of the "read.rooms" family (docs/read-side.md, "Room lists and the directory"). After the
// room's shard (2 bytes) a tag byte; names never contain NUL, so NUL ends a name:
//   0x01 room                  -> room_info (encode_info)
//   0x02 room NUL user         -> "" : user is a member now
//   0x03 user NUL room         -> "" : user was made a member of room, or posted in it
//   0x04 room NUL be64(seq)    -> author : a message that is not deleted
//   0x05 ~(be64(ts) room) 0xff -> "" : a public room in the directory, newest first
namespace {

constexpr char tag_info = 0x01;
constexpr char tag_member = 0x02;
constexpr char tag_user_room = 0x03;
constexpr char tag_live = 0x04;
constexpr char tag_directory = 0x05;

constexpr auto rooms_family = storage::read_family::rooms;
/// Events of a private room's log past the projection that may_read examines (see there).
constexpr std::size_t membership_tail_limit = 256;

// Timestamps are room-assigned (never negative in practice); a negative one sorts as 0 rather
// than wrapping to the top of every list.
std::uint64_t ts_bits(millis_t ts) { return ts < 0 ? 0 : static_cast<std::uint64_t>(ts); }

/// `shard tag` then `parts`, each but the last followed by NUL: a trailing "" part leaves the
/// key ending in NUL, the prefix of every key whose next part follows.
std::string head_key(shard_t shard, char tag, std::initializer_list<std::string_view> parts = {}) {
  auto k = storage::shard_prefix(shard);
  k += tag;
  bool first = true;
  for (auto part : parts) {
    if (!first) k += '\0';
    first = false;
    k += part;
  }
  return k;
}

std::string info_key(shard_t shard, std::string_view room) {
  return head_key(shard, tag_info, {room});
}

std::string member_key(shard_t shard, std::string_view room, std::string_view user) {
  return head_key(shard, tag_member, {room, user});
}

std::string user_rooms_prefix(shard_t shard, std::string_view user) {
  return head_key(shard, tag_user_room, {user, ""});
}

std::string user_room_key(shard_t shard, std::string_view user, std::string_view room) {
  return head_key(shard, tag_user_room, {user, room});
}

std::string live_prefix(shard_t shard, std::string_view room) {
  return head_key(shard, tag_live, {room, ""});
}

std::string live_key(shard_t shard, std::string_view room, seq_t seq) {
  auto k = live_prefix(shard, room);
  append_be64(k, seq);
  return k;
}

/// A room's sort key in the room list and the directory: be64(ts) room (read/page.hpp).
std::string sort_key(millis_t ts, std::string_view room) {
  std::string k;
  append_be64(k, ts_bits(ts));
  k += room;
  return k;
}

/// The directory's index is walked newest first with forward seeks (in RocksDB a seek backwards
/// costs several times one forwards): its key is the sort key with every byte complemented, then
/// 0xff. Names have no 0x00 byte, so no complemented name byte is 0xff, and a name that is a
/// prefix of another (a smaller sort key) gets the larger index key.
std::string descending(std::string_view sort_key) {
  std::string out;
  out.reserve(sort_key.size() + 1);
  for (char c : sort_key) out += static_cast<char>(~c);
  out += '\xff';
  return out;
}

std::string ascending(std::string_view index_tail) {
  std::string out;
  out.reserve(index_tail.size());
  for (char c : index_tail.substr(0, index_tail.size() - 1)) out += static_cast<char>(~c);
  return out;
}

std::string directory_key(shard_t shard, millis_t ts, std::string_view room) {
  return head_key(shard, tag_directory) + descending(sort_key(ts, room));
}

// -- room info --------------------------------------------------------------------------------

/// What the projection keeps per room, rewritten by every event of the room.
struct room_info {
  seq_t head = 0;   // the last event applied
  millis_t ts = 0;  // the last event's ts: the room's last activity
  bool is_private = false;
  bool listed = false;  // has a directory key, at dir_ts
  millis_t dir_ts = 0;  // the ts in its directory key (within directory_granularity_ms of ts)
  seq_t last_seq = 0;   // the message in `last`, 0 when none
  std::string owner;
  std::string topic;
  std::string last;  // the newest message that is not deleted, as stored; "" when none
};

// Binary, as it is decoded and encoded again for every event of the room: a version byte, a
// flags byte (1 private, 2 listed), be64 head, ts, dir_ts, last_seq, then owner, topic and last,
// each a be32 length and its bytes.
constexpr char info_version = 1;
constexpr std::size_t info_fixed = 2 + 4 * 8;

std::string encode_info(const room_info& r) {
  std::string out;
  out.reserve(info_fixed + 12 + r.owner.size() + r.topic.size() + r.last.size());
  out += info_version;
  out += static_cast<char>((r.is_private ? 1 : 0) | (r.listed ? 2 : 0));
  append_be64(out, r.head);
  append_be64(out, static_cast<std::uint64_t>(r.ts));
  append_be64(out, static_cast<std::uint64_t>(r.dir_ts));
  append_be64(out, r.last_seq);
  for (auto* s : {&r.owner, &r.topic, &r.last}) {
    append_be32(out, static_cast<std::uint32_t>(s->size()));
    out += *s;
  }
  return out;
}

std::optional<room_info> decode_info(std::string_view in) {
  if (in.size() < info_fixed || in[0] != info_version) return std::nullopt;
  room_info r;
  auto flags = static_cast<unsigned char>(in[1]);
  r.is_private = flags & 1;
  r.listed = flags & 2;
  r.head = read_be64(in.substr(2));
  r.ts = static_cast<millis_t>(read_be64(in.substr(10)));
  r.dir_ts = static_cast<millis_t>(read_be64(in.substr(18)));
  r.last_seq = read_be64(in.substr(26));
  in.remove_prefix(info_fixed);
  if (!take_string(in, r.owner) || !take_string(in, r.topic) || !take_string(in, r.last) ||
      !in.empty())
    return std::nullopt;
  return r;
}

storage::error corrupt(std::string_view what, std::string_view room) {
  return {storage::errc::corruption,
          std::string(what) + " of room '" + std::string(room) + "' in read.rooms is not valid"};
}

std::string encode(const event& e) {
  std::string out;
  json_writer w(out);
  encode_event(w, e);
  return out;
}

// -- queries' walks ---------------------------------------------------------------------------

bool at_prefix(const storage::read_cursor& c, std::string_view prefix) {
  return c.valid() && c.key().starts_with(prefix);
}

/// The value at exactly `key` in the cursor's snapshot.
std::optional<std::string_view> find(storage::read_cursor& c, std::string_view key) {
  c.seek(key);
  if (c.valid() && c.key() == key) return c.value();
  return std::nullopt;
}

/// After the room's last message was deleted: the newest message before it that is not deleted,
/// among the room_list::last_lookback events before it, or none.
storage::status replace_last(const storage::journal& journal, room_info& info, const room_id& room,
                             seq_t deleted) {
  info.last.clear();
  info.last_seq = 0;
  if (deleted <= 1) return {};
  // The log holds each message in its current form, possibly newer than this projection: a
  // message deleted there is skipped here too, as its delete event is still to come.
  auto from = deleted - 1 > room_list::last_lookback ? deleted - 1 - room_list::last_lookback : 0;
  auto events = journal.events_after(room, from, deleted - 1 - from);
  if (!events) return events.err();
  for (auto it = events->rbegin(); it != events->rend(); ++it) {
    auto e = decode_event(*it);
    if (!e) return corrupt("an event", room.str());
    if (e->type != event_type::message || e->deleted) continue;
    info.last = std::move(*it);
    info.last_seq = e->seq;
    break;
  }
  return {};
}

/// Whether `user` is a member of private `room` now, given `member` as the projection has it at
/// `head`. The projection may be behind the log (by seconds under load), and a kick acked before
/// a query must hide the room at once: the log's events after `head` (read after the projection's
/// state, which is therefore at least as new) hold every membership change the projection lacks,
/// and the last one for `user` decides. A tail longer than one read is not examined: the room is
/// refused until the projection catches up, and so it is when an event there doesn't decode.
storage::result<bool> member_now(const storage::journal& journal, const room_id& room,
                                 const user_id& user, seq_t head, bool member) {
  auto tail = journal.events_after(room, head, membership_tail_limit + 1);
  if (!tail) return tail.err();
  if (tail->size() > membership_tail_limit) return false;
  for (auto& json : *tail) {
    auto e = decode_event(json);
    if (!e) return false;
    if (e->user != user) continue;
    if (e->type == event_type::member_removed) member = false;
    if (e->type == event_type::member_added) member = true;
  }
  return member;
}

}  // namespace

// -- projection ---------------------------------------------------------------------------------

room_list::room_list(storage::journal& journal) : journal_(journal) {}

storage::result<bool> room_list::erase_room(const room_id& room, storage::read_batch& batch,
                                            std::size_t max_ops) {
  const auto& name = room.str();
  auto shard = shard_of(name, journal_.shards());
  auto cursor = journal_.new_read_cursor(rooms_family);
  auto full = [&] { return batch.count() >= max_ops; };
  // The info first, with the directory key it names: both go in the same batch.
  auto ikey = info_key(shard, name);
  if (auto v = find(*cursor, ikey)) {
    auto info = decode_info(*v);
    if (!info) return corrupt("the info", name);
    if (info->listed) batch.del(rooms_family, directory_key(shard, info->dir_ts, name));
    batch.del(rooms_family, ikey);
  }
  if (!cursor->state().ok()) return cursor->state().err();
  // Members and live messages are under the room's name; a user's entry for the room is found
  // by walking the shard's user entries (a user stays listed after leaving a public room, so
  // neither members nor authors name them all).
  for (auto prefix : {head_key(shard, tag_member, {name, ""}), live_prefix(shard, name)})
    for (cursor->seek(prefix); at_prefix(*cursor, prefix); cursor->next()) {
      if (full()) return false;
      batch.del(rooms_family, cursor->key());
    }
  auto users = head_key(shard, tag_user_room);
  auto suffix = std::string(1, '\0') + name;
  for (cursor->seek(users); at_prefix(*cursor, users); cursor->next()) {
    if (!cursor->key().ends_with(suffix)) continue;
    if (full()) return false;
    batch.del(rooms_family, cursor->key());
  }
  if (!cursor->state().ok()) return cursor->state().err();
  return true;
}

storage::status room_list::apply(const event& e, std::string_view stored,
                                 storage::read_batch& batch, std::vector<notice>& notices) {
  const auto& room = e.room.str();
  auto shard = shard_of(room, journal_.shards());
  auto ikey = info_key(shard, room);
  auto held = batch.get(rooms_family, ikey);
  if (!held) return held.err();
  room_info info;
  if (*held) {
    auto decoded = decode_info(**held);
    if (!decoded) return corrupt("the info", room);
    info = std::move(*decoded);
  }
  info.head = e.seq;
  info.ts = std::max(info.ts, e.ts);

  auto add_member = [&](std::string_view user) {
    batch.put(rooms_family, member_key(shard, room, user), {});
    batch.put(rooms_family, user_room_key(shard, user, room), {});
  };

  switch (e.type) {
    case event_type::created:
      info.is_private = e.is_private;
      info.owner = e.from.str();
      info.topic = e.topic;
      add_member(e.from.str());
      for (auto& m : e.members) add_member(m);
      break;

    case event_type::member_added:
      add_member(e.user.str());
      if (now_millis() - e.ts < invite_notice_ms) {
        std::string json;
        json_writer w(json);
        w.begin_object()
            .field("op", "invited")
            .field("room", room)
            .field("by", e.from.str())
            .field("seq", e.seq)
            .field("topic", info.topic)
            .end_object();
        notices.push_back({e.user, std::move(json)});
      }
      break;

    case event_type::member_removed:
      batch.del(rooms_family, member_key(shard, room, e.user.str()));
      // A private room leaves the list of whoever is removed (the query checks membership too,
      // for rooms listed by a read marker). A public one stays: they may still read it.
      if (info.is_private) batch.del(rooms_family, user_room_key(shard, e.user.str(), room));
      break;

    case event_type::topic:
      info.topic = e.topic;
      break;

    case event_type::message: {
      auto posted = user_room_key(shard, e.from.str(), room);
      auto known = batch.get(rooms_family, posted);
      if (!known) return known.err();
      if (!*known) batch.put(rooms_family, posted, {});
      // A message arrives in its current form: one deleted since is not live and never the
      // room's last (its delete event follows and finds nothing to remove).
      if (e.deleted) break;
      batch.put(rooms_family, live_key(shard, room, e.seq), e.from.str());
      info.last.assign(stored);
      info.last_seq = e.seq;
      break;
    }

    case event_type::edit: {
      // A redacted edit belongs to a deleted message, whose delete event follows.
      if (e.deleted || info.last_seq == 0 || e.ref != info.last_seq) break;
      auto last = decode_event(info.last);
      if (!last) return corrupt("the last message", room);
      // The last message may already be in a form that has this edit (it was stored after it).
      if (std::find(last->edits.begin(), last->edits.end(), e.seq) != last->edits.end()) break;
      info.last = encode(rewritten(std::move(*last), e));
      break;
    }

    case event_type::del:
      batch.del(rooms_family, live_key(shard, room, e.ref));
      if (e.ref == info.last_seq)
        if (auto st = replace_last(journal_, info, e.room, e.ref); !st.ok()) return st;
      break;
  }

  if (!info.is_private && (!info.listed || info.ts < info.dir_ts ||
                           info.ts - info.dir_ts >= directory_granularity_ms)) {
    if (info.listed) batch.del(rooms_family, directory_key(shard, info.dir_ts, room));
    batch.put(rooms_family, directory_key(shard, info.ts, room), {});
    info.listed = true;
    info.dir_ts = info.ts;
  }
  batch.put(rooms_family, ikey, encode_info(info));
  return {};
}

// -- queries ------------------------------------------------------------------------------------

storage::result<page> room_list::rooms(const user_id& user, const std::vector<shard_t>& shards,
                                       const std::optional<std::string>& before,
                                       std::size_t limit) const {
  auto cursor = journal_.new_read_cursor(rooms_family);
  auto& c = *cursor;

  struct candidate {
    std::string sort_key;
    std::string room;
    seq_t read = 0;
  };
  std::vector<candidate> found;
  std::size_t considered = 0;
  for (auto shard : shards) {
    if (considered >= rooms_scan_limit) break;
    // The shard's rooms of the user: the index, and read markers (a room one only reads).
    std::map<std::string, seq_t> mine;
    auto prefix = user_rooms_prefix(shard, user.str());
    for (c.seek(prefix); at_prefix(c, prefix) && considered < rooms_scan_limit; c.next()) {
      mine.emplace(std::string(c.key().substr(prefix.size())), 0);
      ++considered;
    }
    if (!c.state().ok()) return c.state().err();
    auto markers = journal_.markers_of(user, shard);
    if (!markers) return markers.err();
    for (auto& [room, seq] : *markers) {
      if (auto it = mine.find(room.str()); it != mine.end()) {
        it->second = seq;
      } else if (considered < rooms_scan_limit) {
        mine.emplace(room.str(), seq);
        ++considered;
      }
    }

    for (auto& [room, read] : mine) {
      auto v = find(c, info_key(shard, room));
      if (!v) continue;  // a marker in a room this projection hasn't seen (yet)
      auto info = decode_info(*v);
      if (!info) return corrupt("the info", room);
      if (info->is_private) {
        auto member = member_now(journal_, room_id{room}, user, info->head,
                                 find(c, member_key(shard, room, user.str())).has_value());
        if (!member) return member.err();
        if (!*member) continue;
      }
      auto key = sort_key(info->ts, room);
      if (before && key >= *before) continue;
      found.push_back({std::move(key), room, read});
    }
    if (!c.state().ok()) return c.state().err();
  }

  page out;
  auto keep = std::min(limit, found.size());
  auto by_key = [](const candidate& a, const candidate& b) { return a.sort_key > b.sort_key; };
  std::partial_sort(found.begin(), found.begin() + static_cast<std::ptrdiff_t>(keep), found.end(),
                    by_key);
  out.more = found.size() > keep;
  for (std::size_t i = 0; i < keep; ++i) {
    auto& f = found[i];
    auto shard = shard_of(f.room, journal_.shards());
    auto v = find(c, info_key(shard, f.room));
    auto info = v ? decode_info(*v) : std::nullopt;
    if (!info) return corrupt("the info", f.room);

    // Unread: live messages after the marker that others wrote, counted over a bounded walk.
    std::uint64_t unread = 0;
    std::size_t walked = 0;
    auto live = live_prefix(shard, f.room);
    bool capped = false;
    if (f.read < ~seq_t{0}) {  // markers are at most the head, but the sum must not wrap
      for (c.seek(live_key(shard, f.room, f.read + 1));
           at_prefix(c, live) && walked < unread_scan_limit; c.next(), ++walked)
        if (c.value() != user.str()) ++unread;
      capped = at_prefix(c, live);
    }
    if (!c.state().ok()) return c.state().err();

    std::string json;
    json_writer w(json);
    w.begin_object()
        .field("room", f.room)
        .field("head", info->head)
        .field("read", f.read)
        .field("unread", unread);
    if (capped) w.field("unread_capped", true);
    w.field("topic", info->topic).field("private", info->is_private).key("last");
    if (info->last.empty())
      w.raw("null");
    else
      w.raw(info->last);
    w.field("ts", info->ts).end_object();
    out.items.push_back({std::move(f.sort_key), std::move(json)});
  }
  return out;
}

storage::result<page> room_list::directory(std::string_view prefix,
                                           const std::vector<shard_t>& shards,
                                           const std::optional<std::string>& before,
                                           std::size_t limit) const {
  auto cursor = journal_.new_read_cursor(rooms_family);
  auto& c = *cursor;

  struct entry {
    std::string sort_key;  // be64(ts) room
    shard_t shard;
    bool operator<(const entry& o) const { return sort_key < o.sort_key; }
  };
  std::vector<entry> chosen;

  if (prefix.empty()) {
    // Every public room: merge the shards' activity indexes, newest first. A max-heap holds each
    // shard's next entry; taking one moves that shard on by one. Work: one seek per shard plus
    // one per item returned.
    std::priority_queue<entry> heap;
    auto step = [&](shard_t shard, const std::string* below) {
      auto dir = head_key(shard, tag_directory);
      if (!below) {
        c.seek(dir);
      } else {
        auto from = dir + descending(*below);
        c.seek(from);
        if (c.valid() && c.key() == from) c.next();
      }
      if (at_prefix(c, dir)) heap.push({ascending(c.key().substr(dir.size())), shard});
    };
    for (auto shard : shards) step(shard, before ? &*before : nullptr);
    while (!heap.empty() && chosen.size() <= limit) {
      auto top = heap.top();
      heap.pop();
      step(top.shard, &top.sort_key);
      chosen.push_back(std::move(top));
    }
    if (!c.state().ok()) return c.state().err();
  } else {
    // Rooms whose name starts with `prefix`: the info keys are in name order. The walk stops
    // after directory_scan_limit rooms; a broader prefix ranks only those.
    std::size_t scanned = 0;
    for (auto shard : shards) {
      auto from = info_key(shard, prefix);
      for (c.seek(from); at_prefix(c, from) && scanned < directory_scan_limit; c.next()) {
        ++scanned;
        auto info = decode_info(c.value());
        auto room = c.key().substr(from.size() - prefix.size());
        if (!info) return corrupt("the info", room);
        if (info->is_private || !info->listed) continue;
        auto key = sort_key(info->dir_ts, room);
        if (before && key >= *before) continue;
        chosen.push_back({std::move(key), shard});
      }
      if (!c.state().ok()) return c.state().err();
    }
    auto keep = chosen.size() > limit ? limit + 1 : chosen.size();  // limit + 1 can't wrap here
    std::partial_sort(chosen.begin(), chosen.begin() + static_cast<std::ptrdiff_t>(keep),
                      chosen.end(), [](auto& a, auto& b) { return b < a; });
    chosen.resize(keep);
  }

  page out;
  out.more = chosen.size() > limit;
  if (out.more) chosen.resize(limit);
  for (auto& d : chosen) {
    auto room = std::string_view(d.sort_key).substr(8);
    auto v = find(c, info_key(d.shard, room));
    auto info = v ? decode_info(*v) : std::nullopt;
    if (!info) return corrupt("the info", room);
    std::string json;
    json_writer w(json);
    w.begin_object()
        .field("room", room)
        .field("head", info->head)
        .field("topic", info->topic)
        .field("ts", static_cast<millis_t>(read_be64(d.sort_key)))
        .end_object();
    out.items.push_back({std::move(d.sort_key), std::move(json)});
  }
  if (!c.state().ok()) return c.state().err();
  return out;
}

storage::result<bool> room_list::may_read(const user_id& user, const room_id& room) const {
  auto shard = shard_of(room.str(), journal_.shards());
  auto v = journal_.read_get(rooms_family, info_key(shard, room.str()));
  if (!v) return v.err();
  if (!*v) return false;
  auto info = decode_info(**v);
  if (!info) return corrupt("the info", room.str());
  if (!info->is_private) return true;
  auto m = journal_.read_get(rooms_family, member_key(shard, room.str(), user.str()));
  if (!m) return m.err();
  return member_now(journal_, room, user, info->head, m->has_value());
}

storage::result<std::vector<room_list::room_row>> room_list::list_rooms(
    std::vector<shard_t> shards, const std::optional<std::pair<shard_t, std::string>>& after,
    std::size_t limit) const {
  std::vector<room_row> out;
  std::sort(shards.begin(), shards.end());
  auto cursor = journal_.new_read_cursor(rooms_family);
  for (auto shard : shards) {
    if (out.size() >= limit) break;
    if (after && shard < after->first) continue;
    auto prefix = head_key(shard, tag_info);
    // The first info key after the cursor's room: `room NUL` sorts right after `room`.
    auto from = after && shard == after->first ? info_key(shard, after->second) + '\0' : prefix;
    for (cursor->seek(from); at_prefix(*cursor, prefix) && out.size() < limit; cursor->next()) {
      auto name = std::string(cursor->key().substr(prefix.size()));
      auto info = decode_info(cursor->value());
      if (!info) return corrupt("the info", name);
      out.push_back({shard, std::move(name), info->head, info->ts, info->is_private,
                     std::move(info->owner), std::move(info->topic), 0});
    }
    if (!cursor->state().ok()) return cursor->state().err();
  }
  for (auto& r : out) {
    auto members = head_key(r.shard, tag_member, {r.room, ""});
    for (cursor->seek(members); at_prefix(*cursor, members) && r.members < members_count_limit;
         cursor->next())
      r.members += 1;
    if (!cursor->state().ok()) return cursor->state().err();
  }
  return out;
}

storage::result<std::vector<room_list::user_row>> room_list::list_users(
    const std::vector<shard_t>& shards, const std::optional<std::string>& after,
    std::size_t limit) const {
  // Each shard lists its users in name order; the page is the first `limit` of their union. A
  // shard's walk stops at the first user past the `limit + 1` smallest seen so far (none of it
  // can make the page), so a page costs about its own users' entries per shard, not the shard's.
  std::map<std::string, std::uint64_t, std::less<>> seen;
  auto cursor = journal_.new_read_cursor(rooms_family);
  for (auto shard : shards) {
    auto prefix = head_key(shard, tag_user_room);
    // `user \x01` sorts after every `user NUL room` and before any longer name.
    auto from = after ? prefix + *after + '\x01' : prefix;
    for (cursor->seek(from); at_prefix(*cursor, prefix); cursor->next()) {
      auto rest = cursor->key().substr(prefix.size());
      auto user = rest.substr(0, rest.find('\0'));
      if (seen.size() > limit && user > seen.rbegin()->first) break;
      auto it = seen.find(user);
      if (it == seen.end()) it = seen.emplace(std::string(user), 0).first;
      it->second += 1;
      if (seen.size() > limit + 1) seen.erase(std::prev(seen.end()));
    }
    if (!cursor->state().ok()) return cursor->state().err();
  }
  std::vector<user_row> out;
  for (auto& [user, n] : seen) out.push_back({user, n});
  return out;  // `limit + 1` when there are more: the caller pages with it
}

}  // namespace kaiwa::read
