#include "net/detail/request.hpp"

#include <simdjson.h>

#include "core/event.hpp"
#include "core/json.hpp"

namespace kaiwa::net::detail {

namespace {

constexpr std::size_t max_depth = 16;
constexpr std::size_t max_members = 1000;
constexpr std::size_t max_topic_bytes = 1024;
constexpr std::size_t max_id_chars = 64;

/// Code points in valid UTF-8 (simdjson has validated it): bytes that don't continue one.
std::size_t utf8_chars(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}

bool is_integer_literal(std::string_view t) {
  if (!t.empty() && t.front() == '-') t.remove_prefix(1);
  return !t.empty() && t.find_first_not_of("0123456789") == std::string_view::npos &&
         (t.size() == 1 || t.front() != '0');
}

/// Whether `t` is a JSON number (RFC 8259, section 6). On-Demand's raw token of a scalar is not
/// validated, and what is echoed must be JSON.
bool is_json_number(std::string_view t) {
  std::size_t i = 0;
  auto digits = [&] {
    auto start = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > start;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0')
    ++i;
  else if (!digits())
    return false;
  if (i < t.size() && t[i] == '.' && (++i, !digits())) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == t.size();
}

/// The raw JSON of the top-level "id" of a request whose document may not parse as a whole (a
/// lone surrogate escape in its text, say): a string id re-encoded, a number as sent; empty
/// when there is none to read. simdjson's On-Demand API decodes only what is asked for, so it
/// reads the id past a bad value elsewhere. Off the hot path: only errors and unusual ids.
std::string raw_id(std::string_view json, bool padded) {
  thread_local simdjson::ondemand::parser parser(64 * 1024 + 64);
  simdjson::padded_string copy;
  simdjson::padded_string_view in;
  if (padded) {
    in = simdjson::padded_string_view(json.data(), json.size(),
                                      json.size() + simdjson::SIMDJSON_PADDING);
  } else {
    copy = simdjson::padded_string(json);
    in = copy;
  }
  simdjson::ondemand::document doc;
  simdjson::ondemand::object o;
  if (parser.iterate(in).get(doc) || doc.get_object().get(o)) return {};
  for (auto field : o) {
    std::string_view key;
    if (field.unescaped_key().get(key)) return {};
    if (key != "id") continue;
    auto v = field.value();
    std::string out;
    simdjson::ondemand::json_type type;
    if (v.type().get(type)) return {};
    if (type == simdjson::ondemand::json_type::string) {
      std::string_view s;
      if (!v.get_string().get(s)) append_json_string(out, s);
    } else if (type == simdjson::ondemand::json_type::number) {
      std::string_view raw;
      if (!v.raw_json_token().get(raw)) {
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' ||
                                raw.back() == '\r'))
          raw.remove_suffix(1);
        if (raw.size() <= max_id_chars && is_json_number(raw)) out = raw;
      }
    }
    return out;
  }
  return {};
}

using simdjson::dom::element;
using simdjson::dom::object;

/// Reads a request's fields. The first field that is missing, mistyped or out of range is
/// recorded as the request's error; later reads return defaults, so parsing code reads
/// straight through and checks `error()` once at the end.
class field_reader {
 public:
  explicit field_reader(object o) : o_(o) {}

  const std::optional<request_error>& error() const { return error_; }

  void fail(errc code, std::string message) {
    if (!error_) error_ = request_error{{}, code, std::move(message)};
  }

  /// The field `key` as a T: nullopt when absent (an error if `required`) or of another type.
  template <class T>
  std::optional<T> read(const char* key, bool required, const char* expected) {
    auto v = o_[key];
    if (v.error() == simdjson::NO_SUCH_FIELD) {
      if (required) fail(errc::bad_request, std::string("'") + key + "' is required");
      return std::nullopt;
    }
    T out{};
    if (v.get(out)) {
      fail(errc::bad_request, std::string("'") + key + "' must be " + expected);
      return std::nullopt;
    }
    return out;
  }

  std::optional<std::string_view> opt_string(const char* key) {
    return read<std::string_view>(key, false, "a string");
  }
  std::string_view req_string(const char* key) {
    return read<std::string_view>(key, true, "a string").value_or(std::string_view{});
  }
  std::optional<std::uint64_t> opt_uint(const char* key) {
    return read<std::uint64_t>(key, false, "a non-negative integer");
  }
  std::uint64_t req_uint(const char* key) {
    return read<std::uint64_t>(key, true, "a non-negative integer").value_or(0);
  }
  bool opt_bool(const char* key) { return read<bool>(key, false, "a boolean").value_or(false); }

  template <class Name>
  Name req_name(const char* key) {
    auto s = req_string(key);
    if (!error_ && !valid_name(s))
      fail(errc::bad_request,
           std::string("'") + key + "' must be 1 to 128 chars of [A-Za-z0-9_.:@-]");
    return Name{std::string(s)};
  }

  std::string req_text() {
    auto t = req_string("text");
    if (!error_ && t.empty()) fail(errc::bad_request, "'text' must not be empty");
    if (t.size() > max_text_bytes) fail(errc::too_large, "'text' is over 16384 bytes");
    return std::string(t);
  }

  /// The request's id as raw JSON (a string literal or an integer exactly as sent), empty when
  /// absent. An id of another shape is an error, but still echoed when it is a string or a
  /// number, so that the client can match the error to its request.
  std::string id(std::string_view json, bool padded) {
    auto v = o_["id"];
    if (v.error() == simdjson::NO_SUCH_FIELD) return {};
    std::string out;
    std::string_view s;
    std::int64_t n = 0;
    std::uint64_t u = 0;
    if (!v.get(s)) {
      append_json_string(out, s);
      if (utf8_chars(s) > max_id_chars) fail(errc::bad_request, "'id' is longer than 64 chars");
    } else if (!v.get(n) && n != 0) {
      out = std::to_string(n);
    } else if (!v.get(u) && u != 0) {
      out = std::to_string(u);
    } else {
      // 0 (which may have been sent as -0) or not an integer: the DOM keeps only the value, so
      // the id's own text is read again from the request.
      out = raw_id(json, padded);
      if (!is_integer_literal(out)) fail(errc::bad_request, "'id' must be a string or an integer");
    }
    return out;
  }

  std::vector<std::string> members() {
    std::vector<std::string> out;
    auto m = o_["members"];
    if (m.error() == simdjson::NO_SUCH_FIELD) return out;
    simdjson::dom::array arr;
    if (m.get(arr)) {
      fail(errc::bad_request, "'members' must be an array of user names");
      return out;
    }
    if (arr.size() > max_members) {
      fail(errc::too_large, "'members' has over 1000 names");
      return out;
    }
    for (auto e : arr) {
      std::string_view s;
      if (e.get(s) || !valid_name(s)) {
        fail(errc::bad_request, "'members' must be an array of user names");
        return {};
      }
      out.emplace_back(s);
    }
    return out;
  }

 private:
  object o_;
  std::optional<request_error> error_;
};

void parse_room_command(std::string_view op, field_reader& f, command& c) {
  auto room = [&] { c.room = f.req_name<room_id>("room"); };
  if (op == "join") {
    c.op = room_op::join;
    room();
    c.since = f.opt_uint("since");
  } else if (op == "leave") {
    c.op = room_op::leave;
    room();
  } else if (op == "send") {
    c.op = room_op::send;
    room();
    c.text = f.req_text();
    if (auto cid = f.opt_string("cid")) {
      if (cid->empty() || cid->size() > 64)
        f.fail(errc::bad_request, "'cid' must be 1 to 64 chars");
      c.cid = *cid;
    }
  } else if (op == "edit") {
    c.op = room_op::edit;
    room();
    c.ref = f.req_uint("ref");
    c.text = f.req_text();
  } else if (op == "delete") {
    c.op = room_op::del;
    room();
    c.ref = f.req_uint("ref");
  } else if (op == "history") {
    c.op = room_op::history;
    room();
    c.before = f.opt_uint("before");
    c.after = f.opt_uint("after");
    auto limit = f.opt_uint("limit").value_or(50);
    if (limit < 1 || limit > 200) f.fail(errc::bad_request, "'limit' must be 1 to 200");
    c.limit = static_cast<std::uint32_t>(limit);
  } else if (op == "create") {
    c.op = room_op::create;
    room();
    c.is_private = f.opt_bool("private");
    if (auto t = f.opt_string("topic")) {
      if (t->size() > max_topic_bytes) f.fail(errc::too_large, "'topic' is over 1024 bytes");
      c.topic = *t;
    }
    c.members = f.members();
  } else if (op == "topic") {
    c.op = room_op::set_topic;
    room();
    auto t = f.req_string("topic");
    if (t.size() > max_topic_bytes) f.fail(errc::too_large, "'topic' is over 1024 bytes");
    c.topic = t;
  } else if (op == "invite" || op == "kick") {
    c.op = op == "invite" ? room_op::invite : room_op::kick;
    room();
    c.target = f.req_name<user_id>("user");
  } else if (op == "typing") {
    c.op = room_op::typing;
    room();
  } else if (op == "read") {
    c.op = room_op::read;
    room();
    c.seq = f.req_uint("seq");
  } else if (op == "presence") {
    c.op = room_op::presence;
    room();
  } else {
    f.fail(errc::bad_request, "unknown op");
  }
}

/// `limit`, 1 to `max` (default `dflt`).
std::uint32_t read_limit(field_reader& f, std::uint64_t dflt, std::uint64_t max) {
  auto limit = f.opt_uint("limit").value_or(dflt);
  if (limit < 1 || limit > max)
    f.fail(errc::bad_request, "'limit' must be 1 to " + std::to_string(max));
  return static_cast<std::uint32_t>(limit);
}

/// `before`: the `next` of an earlier page, decoded to its sort key.
std::optional<std::string> read_before(field_reader& f) {
  auto b = f.opt_string("before");
  if (!b) return std::nullopt;
  auto key = read::decode_cursor(*b);
  if (!key || key->empty())
    f.fail(errc::bad_request, "'before' must be the 'next' of an earlier page");
  return key;
}

void parse_query(std::string_view op, field_reader& f, request& r) {
  auto& q = r.query;
  if (op == "rooms") {
    r.op = session_op::rooms;
    q.kind = read::query_kind::rooms;
    q.limit = read_limit(f, 50, 200);
  } else if (op == "directory") {
    r.op = session_op::directory;
    q.kind = read::query_kind::directory;
    auto prefix = f.opt_string("q").value_or(std::string_view{});
    if (!prefix.empty() && !valid_name(prefix))
      f.fail(errc::bad_request,
             "'q' must be a room name prefix: up to 128 chars of [A-Za-z0-9_.:@-]");
    q.q = prefix;
    q.limit = read_limit(f, 50, 200);
  } else {
    r.op = session_op::search;
    q.kind = read::query_kind::search;
    auto text = f.req_string("q");
    if (!f.error() && text.empty()) f.fail(errc::bad_request, "'q' must not be empty");
    if (text.size() > max_query_bytes) f.fail(errc::bad_request, "'q' is over 256 bytes");
    q.q = text;
    if (auto room = f.opt_string("room")) {
      if (!valid_name(*room))
        f.fail(errc::bad_request, "'room' must be 1 to 128 chars of [A-Za-z0-9_.:@-]");
      q.room = room_id{std::string(*room)};
    }
    q.limit = read_limit(f, 20, 100);
  }
  q.before = read_before(f);
}

}  // namespace

parse_result parse_request(std::string_view json, bool padded) {
  // A byte order mark is not JSON, but RFC 8259 (section 8.1) lets a parser ignore one, and
  // some client libraries write it.
  if (json.starts_with("\xEF\xBB\xBF")) json.remove_prefix(3);
  thread_local simdjson::dom::parser parser = [] {
    simdjson::dom::parser p;
    if (p.allocate(64 * 1024 + 64, max_depth)) throw std::bad_alloc();
    return p;
  }();
  auto fail = [&](std::string message) {
    return parse_result{std::nullopt,
                        request_error{raw_id(json, padded), errc::bad_request, std::move(message)}};
  };
  element doc;
  auto err = parser.parse(json.data(), json.size(), !padded).get(doc);
  if (err == simdjson::UTF8_ERROR) return fail("invalid UTF-8");
  if (err == simdjson::DEPTH_ERROR) return fail("nested too deeply");
  if (err == simdjson::STRING_ERROR)
    return fail("invalid JSON string (a lone UTF-16 surrogate escape?)");
  if (err == simdjson::NUMBER_ERROR)
    return fail("invalid JSON number (integers must fit in 64 bits)");
  if (err) return fail("invalid JSON");
  object o;
  if (doc.get(o)) return fail("a request must be a JSON object");

  field_reader f(o);
  request r;
  r.id = f.id(json, padded);
  if (f.error()) {
    auto e = *f.error();
    e.id = r.id;
    return {std::nullopt, std::move(e)};
  }
  auto op = f.req_string("op");
  if (op == "hello") {
    r.op = session_op::hello;
    r.token = f.opt_string("token").value_or(std::string_view{});
    r.dev_user = f.opt_string("user").value_or(std::string_view{});
    if (r.token.empty() && r.dev_user.empty())
      f.fail(errc::bad_request, "hello needs 'token' (or 'user' in dev mode)");
  } else if (op == "ping") {
    r.op = session_op::ping;
  } else if (op == "rooms" || op == "directory" || op == "search") {
    parse_query(op, f, r);
  } else if (!f.error()) {
    r.op = session_op::room;
    parse_room_command(op, f, r.cmd);
    r.cmd.id = r.id;
  }
  if (auto e = f.error()) {
    e->id = r.id;
    return {std::nullopt, std::move(e)};
  }
  return {std::move(r), std::nullopt};
}

}  // namespace kaiwa::net::detail
