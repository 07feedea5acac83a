#include "core/event.hpp"

#include <simdjson.h>

namespace kaiwa {

namespace {

constexpr std::string_view type_names[] = {
    "message", "edit", "delete", "created", "member_added", "member_removed", "topic",
};

std::optional<event_type> parse_type(std::string_view s) {
  for (std::size_t i = 0; i < std::size(type_names); ++i)
    if (type_names[i] == s) return static_cast<event_type>(i);
  return std::nullopt;
}

}  // namespace

std::string_view to_string(event_type t) noexcept {
  return type_names[static_cast<std::size_t>(t)];
}

void encode_event(json_writer& w, const event& e) {
  w.begin_object()
      .field("op", "event")
      .field("room", e.room.str())
      .field("seq", e.seq)
      .field("ts", e.ts)
      .field("type", to_string(e.type))
      .field("from", e.from.str());
  switch (e.type) {
    case event_type::message:
      if (e.deleted) {
        w.field("deleted", true);
        break;
      }
      w.field("text", e.text);
      if (!e.cid.empty()) w.field("cid", e.cid);
      if (e.edited_ts != 0) w.field("edited", true).field("edited_ts", e.edited_ts);
      if (!e.edits.empty()) {
        w.key("edits").begin_array();
        for (auto s : e.edits) w.value(s);
        w.end_array();
      }
      break;
    case event_type::edit:
      w.field("ref", e.ref);
      if (e.deleted)
        w.field("deleted", true);
      else
        w.field("text", e.text);
      break;
    case event_type::del:
      w.field("ref", e.ref);
      break;
    case event_type::created:
      w.field("private", e.is_private).field("topic", e.topic);
      if (e.is_private) {
        w.key("members").begin_array();
        for (auto& m : e.members) w.value(m);
        w.end_array();
      }
      break;
    case event_type::member_added:
    case event_type::member_removed:
      w.field("user", e.user.str());
      break;
    case event_type::topic:
      w.field("topic", e.topic);
      break;
  }
  w.end_object();
}

std::optional<event> decode_event(std::string_view json) {
  // Recovery and edit checks decode events; both are off the per-message path.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(json.data(), json.size()).get(obj)) return std::nullopt;
  event e;
  std::string_view s;
  std::uint64_t u = 0;
  std::int64_t i = 0;
  if (obj["room"].get(s)) return std::nullopt;
  e.room = room_id{std::string(s)};
  if (obj["seq"].get(u)) return std::nullopt;
  e.seq = u;
  if (obj["ts"].get(i)) return std::nullopt;
  e.ts = i;
  if (obj["type"].get(s)) return std::nullopt;
  auto type = parse_type(s);
  if (!type) return std::nullopt;
  e.type = *type;
  if (obj["from"].get(s)) return std::nullopt;
  e.from = user_id{std::string(s)};
  if (!obj["text"].get(s)) e.text = s;
  if (!obj["cid"].get(s)) e.cid = s;
  if (!obj["ref"].get(u)) e.ref = u;
  if (!obj["user"].get(s)) e.user = user_id{std::string(s)};
  if (!obj["topic"].get(s)) e.topic = s;
  bool b = false;
  if (!obj["private"].get(b)) e.is_private = b;
  simdjson::dom::array members;
  if (!obj["members"].get(members))
    for (auto m : members)
      if (!m.get(s)) e.members.emplace_back(s);
  if (!obj["deleted"].get(b)) e.deleted = b;
  if (!obj["edited_ts"].get(i)) e.edited_ts = i;
  simdjson::dom::array edits;
  if (!obj["edits"].get(edits))
    for (auto x : edits)
      if (!x.get(u)) e.edits.push_back(u);
  return e;
}

event redacted(event e) {
  e.deleted = true;
  e.text.clear();
  e.cid.clear();
  e.edited_ts = 0;
  e.edits.clear();
  return e;
}

event rewritten(event m, const event& e) {
  if (e.type == event_type::del) return redacted(std::move(m));
  m.text = e.text;
  m.edited_ts = e.ts;
  m.edits.push_back(e.seq);
  return m;
}

}  // namespace kaiwa
