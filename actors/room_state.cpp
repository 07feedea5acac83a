#include "actors/room_state.hpp"

#include <simdjson.h>

#include <algorithm>

#include "core/json.hpp"

namespace kaiwa {

event room_state::next_event(event_type t, const user_id& from, millis_t now, seq_t offset) const {
  event e;
  e.room = room_;
  e.seq = head_ + offset;
  e.ts = std::max(now, last_ts_);
  e.type = t;
  e.from = from;
  return e;
}

std::optional<rejection> room_state::check_read(const user_id& u) const {
  if (!exists_) return rejection{errc::not_found, "no such room"};
  if (private_ && !is_member(u)) return rejection{errc::forbidden, "not a member of this room"};
  return std::nullopt;
}

room_state::decision room_state::decide(const command& c, millis_t now,
                                        const std::optional<event>& referenced) const {
  std::vector<event> out;
  auto implicit_create = [&] {
    auto e = next_event(event_type::created, c.user, now);
    out.push_back(std::move(e));
  };

  if (archived_) switch (c.op) {
      case room_op::send:
      case room_op::edit:
      case room_op::del:
      case room_op::invite:
      case room_op::kick:
      case room_op::set_topic:
        return rejection{errc::archived, "the room is archived (read-only)"};
      default:
        break;
    }
  switch (c.op) {
    case room_op::join:
      if (!exists_) {
        implicit_create();
        return out;
      }
      if (auto r = check_read(c.user)) return *r;
      return out;

    case room_op::send: {
      if (!exists_)
        implicit_create();
      else if (private_ && !is_member(c.user))
        return rejection{errc::forbidden, "not a member of this room"};
      auto e = next_event(event_type::message, c.user, now, out.size() + 1);
      e.text = c.text;
      e.cid = c.cid;
      out.push_back(std::move(e));
      return out;
    }

    case room_op::edit:
    case room_op::del: {
      if (auto r = check_read(c.user)) return *r;
      if (!referenced || referenced->type != event_type::message || deleted_.contains(c.ref))
        return rejection{errc::not_found, "no such message"};
      bool is_author = referenced->from == c.user;
      if (c.op == room_op::edit && !is_author)
        return rejection{errc::forbidden, "only the author may edit a message"};
      if (c.op == room_op::del && !is_author && owner_ != c.user)
        return rejection{errc::forbidden, "only the author or the room's owner may delete"};
      // Each edit adds its seq to the message's stored record (so that a delete can redact the
      // edits' text too): the bound keeps that record small.
      if (c.op == room_op::edit && referenced->edits.size() >= max_edits_per_message)
        return rejection{errc::bad_request, "this message has been edited too often"};
      auto e = next_event(c.op == room_op::edit ? event_type::edit : event_type::del, c.user, now);
      e.ref = c.ref;
      if (c.op == room_op::edit) e.text = c.text;
      out.push_back(std::move(e));
      return out;
    }

    case room_op::create: {
      if (exists_) return rejection{errc::room_exists, "room exists"};
      auto e = next_event(event_type::created, c.user, now);
      e.is_private = c.is_private;
      e.topic = c.topic;
      if (c.is_private) {
        e.members = c.members;
        e.members.push_back(c.user.str());
        std::sort(e.members.begin(), e.members.end());
        e.members.erase(std::unique(e.members.begin(), e.members.end()), e.members.end());
      }
      out.push_back(std::move(e));
      return out;
    }

    case room_op::invite:
    case room_op::kick: {
      if (auto r = check_read(c.user)) return *r;
      if (owner_ != c.user) return rejection{errc::forbidden, "only the room's owner may do that"};
      bool member = is_member(c.target);
      if (c.op == room_op::invite && member)
        return rejection{errc::bad_request, "already a member"};
      if (c.op == room_op::kick) {
        if (c.target == owner_) return rejection{errc::bad_request, "the owner can't be kicked"};
        if (!member) return rejection{errc::not_found, "not a member"};
      }
      auto e = next_event(
          c.op == room_op::invite ? event_type::member_added : event_type::member_removed, c.user,
          now);
      e.user = c.target;
      out.push_back(std::move(e));
      return out;
    }

    case room_op::set_topic: {
      if (auto r = check_read(c.user)) return *r;
      if (owner_ != c.user) return rejection{errc::forbidden, "only the room's owner may do that"};
      auto e = next_event(event_type::topic, c.user, now);
      e.topic = c.topic;
      out.push_back(std::move(e));
      return out;
    }

    default:
      return rejection{errc::internal, "not a command that appends"};
  }
}

void room_state::apply(const event& e) {
  head_ = e.seq;
  last_ts_ = std::max(last_ts_, e.ts);
  switch (e.type) {
    case event_type::created:
      exists_ = true;
      private_ = e.is_private;
      owner_ = e.from;
      topic_ = e.topic;
      members_.insert(e.from.str());
      for (auto& m : e.members) members_.insert(m);
      break;
    case event_type::member_added:
      members_.insert(e.user.str());
      break;
    case event_type::member_removed:
      members_.erase(e.user.str());
      break;
    case event_type::topic:
      topic_ = e.topic;
      break;
    case event_type::del:
      deleted_.insert(e.ref);
      break;
    case event_type::message:
    case event_type::edit:
      break;
  }
}

std::string room_state::snapshot() const {
  std::string out;
  json_writer w(out);
  w.begin_object()
      .field("head", head_)
      .field("last_ts", last_ts_)
      .field("exists", exists_)
      .field("private", private_)
      .field("archived", archived_)
      .field("owner", owner_.str())
      .field("topic", topic_);
  w.key("members").begin_array();
  for (auto& m : members_) w.value(m);
  w.end_array().key("deleted").begin_array();
  for (auto d : deleted_) w.value(d);
  w.end_array().end_object();
  return out;
}

std::string room_state::meta() const {
  std::string out;
  json_writer(out)
      .begin_object()
      .field("head", head_)
      .field("ts", last_ts_)
      .field("private", private_)
      .field("archived", archived_)
      .field("owner", owner_.str())
      .end_object();
  return out;
}

std::optional<room_state> room_state::from_snapshot(room_id room, std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::object o;
  if (parser.parse(json.data(), json.size()).get(o)) return std::nullopt;
  room_state s(std::move(room));
  std::uint64_t head = 0;
  std::int64_t last_ts = 0;
  std::string_view owner, topic;
  simdjson::dom::array members, deleted;
  if (o["head"].get(head) || o["last_ts"].get(last_ts) || o["exists"].get(s.exists_) ||
      o["private"].get(s.private_) || o["owner"].get(owner) || o["topic"].get(topic) ||
      o["members"].get(members) || o["deleted"].get(deleted))
    return std::nullopt;
  // Snapshots written before archiving existed have no "archived": not archived.
  if (auto a = o["archived"]; !a.error() && a.get(s.archived_)) return std::nullopt;
  s.head_ = head;
  s.last_ts_ = last_ts;
  s.owner_ = user_id{std::string(owner)};
  s.topic_ = topic;
  for (auto m : members) {
    std::string_view v;
    if (m.get(v)) return std::nullopt;
    s.members_.emplace(v);
  }
  for (auto d : deleted) {
    std::uint64_t v = 0;
    if (d.get(v)) return std::nullopt;
    s.deleted_.insert(v);
  }
  return s;
}

}  // namespace kaiwa
