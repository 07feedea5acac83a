#include "net/detail/request.hpp"

#include <simdjson.h>

#include "core/json.hpp"

namespace kaiwa::net::detail {

namespace {

constexpr std::size_t max_depth = 16;
constexpr std::size_t max_members = 1000;
constexpr std::size_t max_topic_bytes = 1024;

using simdjson::dom::element;
using simdjson::dom::object;

struct field_error {
  errc code;
  std::string message;
};

// Field readers: nullopt when absent; a field_error (thrown only inside this file and caught in
// parse_request) when present with the wrong type or value.
std::optional<std::string_view> opt_string(object& o, const char* key) {
  auto v = o[key];
  if (v.error() == simdjson::NO_SUCH_FIELD) return std::nullopt;
  std::string_view s;
  if (v.get(s)) throw field_error{errc::bad_request, std::string("'") + key + "' must be a string"};
  return s;
}

std::string_view req_string(object& o, const char* key) {
  auto s = opt_string(o, key);
  if (!s) throw field_error{errc::bad_request, std::string("'") + key + "' is required"};
  return *s;
}

std::optional<std::uint64_t> opt_uint(object& o, const char* key) {
  auto v = o[key];
  if (v.error() == simdjson::NO_SUCH_FIELD) return std::nullopt;
  std::uint64_t n = 0;
  if (v.get(n))
    throw field_error{errc::bad_request,
                      std::string("'") + key + "' must be a non-negative integer"};
  return n;
}

std::uint64_t req_uint(object& o, const char* key) {
  auto n = opt_uint(o, key);
  if (!n) throw field_error{errc::bad_request, std::string("'") + key + "' is required"};
  return *n;
}

template <class Name>
Name req_name(object& o, const char* key) {
  auto s = req_string(o, key);
  if (!valid_name(s))
    throw field_error{errc::bad_request,
                      std::string("'") + key + "' must be 1 to 128 chars of [A-Za-z0-9_.:@-]"};
  return Name{std::string(s)};
}

std::string req_text(object& o) {
  auto t = req_string(o, "text");
  if (t.empty()) throw field_error{errc::bad_request, "'text' must not be empty"};
  if (t.size() > max_text_bytes) throw field_error{errc::too_large, "'text' is over 16384 bytes"};
  return std::string(t);
}

std::string read_id(object& o) {
  auto v = o["id"];
  if (v.error() == simdjson::NO_SUCH_FIELD) return {};
  std::string out;
  std::string_view s;
  std::int64_t n = 0;
  if (!v.get(s)) {
    if (s.size() > 64) throw field_error{errc::bad_request, "'id' is longer than 64 chars"};
    append_json_string(out, s);
  } else if (!v.get(n)) {
    out = std::to_string(n);
  } else {
    throw field_error{errc::bad_request, "'id' must be a string or an integer"};
  }
  return out;
}

void parse_room_command(std::string_view op, object& o, command& c) {
  auto room = [&] { c.room = req_name<room_id>(o, "room"); };
  if (op == "join") {
    c.op = room_op::join;
    room();
    c.since = opt_uint(o, "since");
  } else if (op == "leave") {
    c.op = room_op::leave;
    room();
  } else if (op == "send") {
    c.op = room_op::send;
    room();
    c.text = req_text(o);
    if (auto cid = opt_string(o, "cid")) {
      if (cid->empty() || cid->size() > 64)
        throw field_error{errc::bad_request, "'cid' must be 1 to 64 chars"};
      c.cid = *cid;
    }
  } else if (op == "edit") {
    c.op = room_op::edit;
    room();
    c.ref = req_uint(o, "ref");
    c.text = req_text(o);
  } else if (op == "delete") {
    c.op = room_op::del;
    room();
    c.ref = req_uint(o, "ref");
  } else if (op == "history") {
    c.op = room_op::history;
    room();
    c.before = opt_uint(o, "before");
    c.after = opt_uint(o, "after");
    auto limit = opt_uint(o, "limit").value_or(50);
    if (limit < 1 || limit > 200) throw field_error{errc::bad_request, "'limit' must be 1 to 200"};
    c.limit = static_cast<std::uint32_t>(limit);
  } else if (op == "create") {
    c.op = room_op::create;
    room();
    auto p = o["private"];
    if (p.error() != simdjson::NO_SUCH_FIELD && p.get(c.is_private))
      throw field_error{errc::bad_request, "'private' must be a boolean"};
    if (auto t = opt_string(o, "topic")) {
      if (t->size() > max_topic_bytes)
        throw field_error{errc::too_large, "'topic' is over 1024 bytes"};
      c.topic = *t;
    }
    auto m = o["members"];
    if (m.error() != simdjson::NO_SUCH_FIELD) {
      simdjson::dom::array arr;
      if (m.get(arr))
        throw field_error{errc::bad_request, "'members' must be an array of user names"};
      if (arr.size() > max_members)
        throw field_error{errc::too_large, "'members' has over 1000 names"};
      for (auto e : arr) {
        std::string_view s;
        if (e.get(s) || !valid_name(s))
          throw field_error{errc::bad_request, "'members' must be an array of user names"};
        c.members.emplace_back(s);
      }
    }
  } else if (op == "invite" || op == "kick") {
    c.op = op == "invite" ? room_op::invite : room_op::kick;
    room();
    c.target = req_name<user_id>(o, "user");
  } else if (op == "typing") {
    c.op = room_op::typing;
    room();
  } else if (op == "read") {
    c.op = room_op::read;
    room();
    c.seq = req_uint(o, "seq");
  } else if (op == "presence") {
    c.op = room_op::presence;
    room();
  } else {
    throw field_error{errc::bad_request, "unknown op"};
  }
}

}  // namespace

parse_result parse_request(std::string_view json, bool padded) {
  thread_local simdjson::dom::parser parser = [] {
    simdjson::dom::parser p;
    if (p.allocate(64 * 1024 + 64, max_depth)) throw std::bad_alloc();
    return p;
  }();
  element doc;
  auto err = parser.parse(json.data(), json.size(), !padded).get(doc);
  if (err == simdjson::UTF8_ERROR)
    return {std::nullopt, request_error{{}, errc::bad_request, "invalid UTF-8"}};
  if (err == simdjson::DEPTH_ERROR)
    return {std::nullopt, request_error{{}, errc::bad_request, "nested too deeply"}};
  if (err) return {std::nullopt, request_error{{}, errc::bad_request, "invalid JSON"}};
  object o;
  if (doc.get(o))
    return {std::nullopt, request_error{{}, errc::bad_request, "a request must be a JSON object"}};

  request r;
  try {
    r.id = read_id(o);
  } catch (field_error& e) {
    return {std::nullopt, request_error{{}, e.code, std::move(e.message)}};
  }
  try {
    auto op = req_string(o, "op");
    if (op == "hello") {
      r.op = session_op::hello;
      if (auto t = opt_string(o, "token")) r.token = *t;
      if (auto u = opt_string(o, "user")) r.dev_user = *u;
      if (r.token.empty() && r.dev_user.empty())
        throw field_error{errc::bad_request, "hello needs 'token' (or 'user' in dev mode)"};
    } else if (op == "ping") {
      r.op = session_op::ping;
    } else if (op == "rooms") {
      r.op = session_op::rooms;
    } else if (op == "search") {
      r.op = session_op::search;
    } else {
      r.op = session_op::room;
      parse_room_command(op, o, r.cmd);
      r.cmd.id = r.id;
    }
  } catch (field_error& e) {
    return {std::nullopt, request_error{r.id, e.code, std::move(e.message)}};
  }
  return {std::move(r), std::nullopt};
}

}  // namespace kaiwa::net::detail
