#include "cluster/detail/etcd_json.hpp"

#include <simdjson.h>

#include <array>
#include <charconv>

#include "core/json.hpp"

namespace kaiwa::cluster::detail {

namespace {

namespace dom = simdjson::dom;

// The transport bounds every body to etcd_limits::max_response_bytes first; this is only a
// backstop for callers that don't (the fuzz target).
constexpr std::size_t max_document_bytes = 64 << 20;
// etcd's answers nest 5 levels deep (txn: responses[].response_range.kvs[].key).
constexpr std::size_t max_depth = 16;

constexpr std::string_view alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

error bad(std::string_view what) {
  return {errc::protocol, "etcd answer: " + std::string(what), 0};
}

/// Parses `body` with this thread's parser; the element lives until the next parse here.
bool parse_document(std::string_view body, dom::object& out) {
  thread_local dom::parser parser(max_document_bytes);
  // Small at first (it grows for larger answers, up to max_document_bytes), and shallow.
  if (parser.max_depth() != max_depth && parser.allocate(64 << 10, max_depth)) return false;
  dom::element doc;
  return !parser.parse(body.data(), body.size(), true).get(doc) && !doc.get_object().get(out);
}

/// The field `name` of `o`, or null when it is absent or JSON null (proto3: the default).
bool find(dom::object o, std::string_view name, dom::element& out, bool& present) {
  auto r = o.at_key(name);
  if (r.error() == simdjson::NO_SUCH_FIELD) {
    present = false;
    return true;
  }
  if (r.get(out)) return false;
  present = !out.is_null();
  return true;
}

/// An int64 as the gateway writes it (a decimal string) or as a JSON integer.
bool read_int(dom::element e, std::int64_t& out) {
  if (e.is_int64()) return !e.get_int64().get(out);
  std::string_view s;
  if (e.get_string().get(s) || s.empty() || s.size() > 20) return false;
  auto digits = s.front() == '-' ? s.substr(1) : s;
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
    return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

bool int_field(dom::object o, std::string_view name, std::int64_t& out) {
  dom::element e;
  bool present = false;
  if (!find(o, name, e, present)) return false;
  return !present || read_int(e, out);
}

bool bool_field(dom::object o, std::string_view name, bool& out) {
  dom::element e;
  bool present = false;
  if (!find(o, name, e, present)) return false;
  return !present || !e.get_bool().get(out);
}

bool string_field(dom::object o, std::string_view name, std::string& out) {
  dom::element e;
  bool present = false;
  if (!find(o, name, e, present)) return false;
  std::string_view s;
  if (present && e.get_string().get(s)) return false;
  if (present) out.assign(s);
  return true;
}

bool bytes_field(dom::object o, std::string_view name, std::string& out) {
  dom::element e;
  bool present = false;
  if (!find(o, name, e, present)) return false;
  std::string_view s;
  if (!present) return true;
  return !e.get_string().get(s) && base64_decode(s, out);
}

bool object_field(dom::object o, std::string_view name, dom::object& out, bool& present) {
  dom::element e;
  if (!find(o, name, e, present)) return false;
  return !present || !e.get_object().get(out);
}

bool array_field(dom::object o, std::string_view name, dom::array& out, bool& present) {
  dom::element e;
  if (!find(o, name, e, present)) return false;
  return !present || !e.get_array().get(out);
}

bool header_revision(dom::object o, std::int64_t& out) {
  dom::object h;
  bool present = false;
  return object_field(o, "header", h, present) && (!present || int_field(h, "revision", out));
}

bool read_kv(dom::object o, key_value& kv) {
  return bytes_field(o, "key", kv.key) && bytes_field(o, "value", kv.value) &&
         int_field(o, "create_revision", kv.create_revision) &&
         int_field(o, "mod_revision", kv.mod_revision) && int_field(o, "version", kv.version) &&
         int_field(o, "lease", kv.lease);
}

bool read_kvs(dom::object o, std::string_view name, std::vector<key_value>& out) {
  dom::array kvs;
  bool present = false;
  if (!array_field(o, name, kvs, present)) return false;
  if (!present) return true;
  for (auto e : kvs) {
    dom::object kv_o;
    if (e.get_object().get(kv_o) || !read_kv(kv_o, out.emplace_back())) return false;
  }
  return true;
}

bool read_range(dom::object o, range_response& r) {
  return header_revision(o, r.revision) && read_kvs(o, "kvs", r.kvs) &&
         bool_field(o, "more", r.more) && int_field(o, "count", r.count);
}

void write_int(json_writer& w, std::string_view name, std::int64_t n) {
  w.field(name, std::to_string(n));
}

void write_key_range(json_writer& w, std::string_view key, std::string_view range_end) {
  w.field("key", base64_encode(key));
  if (!range_end.empty()) w.field("range_end", base64_encode(range_end));
}

void write_op(json_writer& w, const txn_op& op) {
  w.begin_object();
  switch (op.what) {
    case txn_op::kind::put:
      w.key("request_put").begin_object();
      w.field("key", base64_encode(op.key)).field("value", base64_encode(op.value));
      if (op.lease != 0) write_int(w, "lease", op.lease);
      break;
    case txn_op::kind::del:
      w.key("request_delete_range").begin_object();
      write_key_range(w, op.key, op.range_end);
      break;
    case txn_op::kind::range:
      w.key("request_range").begin_object();
      write_key_range(w, op.key, op.range_end);
      break;
  }
  w.end_object().end_object();
}

const char* target_name(compare_target t) {
  switch (t) {
    case compare_target::version:
      return "VERSION";
    case compare_target::create:
      return "CREATE";
    case compare_target::mod:
      return "MOD";
    case compare_target::value:
      return "VALUE";
  }
  return "MOD";
}

const char* result_name(compare_result r) {
  switch (r) {
    case compare_result::equal:
      return "EQUAL";
    case compare_result::greater:
      return "GREATER";
    case compare_result::less:
      return "LESS";
    case compare_result::not_equal:
      return "NOT_EQUAL";
  }
  return "EQUAL";
}

}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t n = std::uint32_t(std::uint8_t(in[i])) << 16 |
                      std::uint32_t(std::uint8_t(in[i + 1])) << 8 | std::uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += alphabet[(n >> s) & 63];
  }
  if (auto rest = in.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (rest == 2) n |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += rest == 2 ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode(std::string_view in, std::string& out) {
  static const auto table = [] {
    std::array<std::int8_t, 256> t{};
    t.fill(-1);
    for (std::size_t i = 0; i < alphabet.size(); ++i)
      t[static_cast<std::uint8_t>(alphabet[i])] = static_cast<std::int8_t>(i);
    return t;
  }();
  out.clear();
  if (in.size() % 4 != 0) return false;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    bool last = i + 4 == in.size();
    int pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=') : 0;
    std::uint32_t n = 0;
    for (int j = 0; j < 4 - pad; ++j) {
      auto v = table[static_cast<std::uint8_t>(in[i + j])];
      if (v < 0) return false;
      n = n << 6 | static_cast<std::uint32_t>(v);
    }
    n <<= 6 * pad;
    out += static_cast<char>(n >> 16);
    if (pad < 2) out += static_cast<char>(n >> 8 & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
    // The bits a padded group leaves unused must be zero: one encoding per byte string.
    if ((pad == 1 && (n & 0xff) != 0) || (pad == 2 && (n & 0xffff) != 0)) return false;
  }
  return true;
}

std::string prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<std::uint8_t>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<std::uint8_t>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');
}

std::string range_request(std::string_view key, std::string_view range_end) {
  std::string out;
  json_writer w(out);
  w.begin_object();
  write_key_range(w, key, range_end);
  w.end_object();
  return out;
}

std::string put_request(std::string_view key, std::string_view value, std::int64_t lease) {
  std::string out;
  json_writer w(out);
  w.begin_object().field("key", base64_encode(key)).field("value", base64_encode(value));
  if (lease != 0) write_int(w, "lease", lease);
  w.end_object();
  return out;
}

std::string delete_request(std::string_view key, std::string_view range_end) {
  return range_request(key, range_end);
}

std::string txn_request(const std::vector<compare>& compares, const std::vector<txn_op>& success,
                        const std::vector<txn_op>& failure) {
  std::string out;
  json_writer w(out);
  w.begin_object().key("compare").begin_array();
  for (auto& c : compares) {
    w.begin_object()
        .field("key", base64_encode(c.key))
        .field("target", target_name(c.target))
        .field("result", result_name(c.result));
    switch (c.target) {
      case compare_target::version:
        write_int(w, "version", c.number);
        break;
      case compare_target::create:
        write_int(w, "create_revision", c.number);
        break;
      case compare_target::mod:
        write_int(w, "mod_revision", c.number);
        break;
      case compare_target::value:
        w.field("value", base64_encode(c.value));
        break;
    }
    w.end_object();
  }
  w.end_array().key("success").begin_array();
  for (auto& op : success) write_op(w, op);
  w.end_array().key("failure").begin_array();
  for (auto& op : failure) write_op(w, op);
  w.end_array().end_object();
  return out;
}

std::string compaction_request(std::int64_t revision) {
  std::string out;
  json_writer w(out);
  w.begin_object();
  write_int(w, "revision", revision);
  w.end_object();
  return out;
}

std::string lease_grant_request(std::int64_t ttl) {
  std::string out;
  json_writer w(out);
  w.begin_object();
  write_int(w, "TTL", ttl);
  w.end_object();
  return out;
}

std::string lease_id_request(std::int64_t id) {
  std::string out;
  json_writer w(out);
  w.begin_object();
  write_int(w, "ID", id);
  w.end_object();
  return out;
}

std::string watch_create_request(std::string_view key, std::string_view range_end,
                                 std::int64_t start_revision) {
  std::string out;
  json_writer w(out);
  w.begin_object().key("create_request").begin_object();
  write_key_range(w, key, range_end);
  if (start_revision != 0) write_int(w, "start_revision", start_revision);
  w.field("prev_kv", true).end_object().end_object();
  return out;
}

result<range_response> parse_range(std::string_view body) {
  dom::object o;
  range_response r;
  if (!parse_document(body, o) || !read_range(o, r)) return bad("range");
  return r;
}

result<put_response> parse_put(std::string_view body) {
  dom::object o;
  put_response r;
  if (!parse_document(body, o) || !header_revision(o, r.revision)) return bad("put");
  return r;
}

result<delete_response> parse_delete(std::string_view body) {
  dom::object o;
  delete_response r;
  if (!parse_document(body, o) || !header_revision(o, r.revision) ||
      !int_field(o, "deleted", r.deleted))
    return bad("deleterange");
  return r;
}

result<txn_response> parse_txn(std::string_view body) {
  dom::object o;
  txn_response r;
  dom::array responses;
  bool present = false;
  if (!parse_document(body, o) || !header_revision(o, r.revision) ||
      !bool_field(o, "succeeded", r.succeeded) || !array_field(o, "responses", responses, present))
    return bad("txn");
  if (!present) return r;
  for (auto e : responses) {
    dom::object op;
    if (e.get_object().get(op)) return bad("txn response");
    auto& out = r.responses.emplace_back();
    dom::object inner;
    bool put = false, del = false, range = false;
    if (!object_field(op, "response_put", inner, put)) return bad("txn response_put");
    if (put) {
      out.what = txn_op::kind::put;
      if (!header_revision(inner, out.revision)) return bad("txn response_put");
    }
    if (!object_field(op, "response_delete_range", inner, del)) return bad("txn response_delete");
    if (del) {
      out.what = txn_op::kind::del;
      if (!header_revision(inner, out.revision) || !int_field(inner, "deleted", out.deleted))
        return bad("txn response_delete_range");
    }
    if (!object_field(op, "response_range", inner, range)) return bad("txn response_range");
    if (range) {
      out.what = txn_op::kind::range;
      if (!header_revision(inner, out.revision) || !read_kvs(inner, "kvs", out.kvs))
        return bad("txn response_range");
    }
    if (put + del + range != 1) return bad("txn response: not one of put, delete, range");
  }
  return r;
}

result<lease_grant_response> parse_lease_grant(std::string_view body) {
  dom::object o;
  lease_grant_response r;
  std::string err;
  if (!parse_document(body, o) || !int_field(o, "ID", r.id) || !int_field(o, "TTL", r.ttl) ||
      !string_field(o, "error", err))
    return bad("lease grant");
  // LeaseGrantResponse carries a failure in-band too: "error" with nothing granted.
  if (!err.empty() || r.id == 0) return error{errc::etcd, "lease grant: " + err, 0};
  return r;
}

result<std::int64_t> parse_lease_keepalive(std::string_view body) {
  dom::object o, res;
  bool present = false;
  std::int64_t ttl = 0;
  if (!parse_document(body, o) || !object_field(o, "result", res, present))
    return bad("lease keepalive");
  if (!present) {
    // A stream's error arrives as {"error":{"grpc_code":N,"message":...}} with HTTP 200.
    dom::object e;
    bool has_error = false;
    std::int64_t code = 0;
    std::string message;
    if (!object_field(o, "error", e, has_error) || !has_error || !int_field(e, "grpc_code", code) ||
        !string_field(e, "message", message))
      return bad("lease keepalive");
    return error{errc::etcd, "lease keepalive: " + message, static_cast<int>(code & 0xffff)};
  }
  if (!int_field(res, "TTL", ttl) || ttl < 0) return bad("lease keepalive TTL");
  return ttl;
}

status parse_empty(std::string_view body) {
  dom::object o;
  std::int64_t revision = 0;
  if (!parse_document(body, o) || !header_revision(o, revision)) return bad("answer");
  return {};
}

error parse_error(unsigned http_status, std::string_view body) {
  dom::object o;
  std::string message;
  std::int64_t code = 0;
  auto fallback = error{errc::protocol, "etcd answered HTTP " + std::to_string(http_status), 0};
  if (!parse_document(body, o) || !string_field(o, "message", message) ||
      !int_field(o, "code", code) || code <= 0 || code > 16)
    return fallback;
  // gRPC's UNAVAILABLE (14: no leader, stopping) and the like say the request was not applied.
  return error{errc::etcd, message, static_cast<int>(code)};
}

result<watch_message> parse_watch(std::string_view line) {
  dom::object o, res;
  bool present = false;
  if (!parse_document(line, o) || !object_field(o, "result", res, present))
    return bad("watch message");
  if (!present) {
    dom::object e;
    bool has_error = false;
    std::string message;
    if (!object_field(o, "error", e, has_error) || !has_error ||
        !string_field(e, "message", message))
      return bad("watch message");
    return error{errc::etcd, "watch: " + message, 0};
  }
  watch_message m;
  dom::array events;
  bool has_events = false;
  if (!header_revision(res, m.revision) || !bool_field(res, "created", m.created) ||
      !bool_field(res, "canceled", m.canceled) ||
      !int_field(res, "compact_revision", m.compact_revision) ||
      !string_field(res, "cancel_reason", m.cancel_reason) ||
      !array_field(res, "events", events, has_events))
    return bad("watch result");
  if (!has_events) return m;
  for (auto e : events) {
    dom::object ev, kv, prev;
    std::string type;
    bool has_kv = false;
    auto& out = m.events.emplace_back();
    if (e.get_object().get(ev) || !string_field(ev, "type", type) ||
        !object_field(ev, "kv", kv, has_kv) || !has_kv || !read_kv(kv, out.kv) ||
        !object_field(ev, "prev_kv", prev, out.has_prev) ||
        (out.has_prev && !read_kv(prev, out.prev)))
      return bad("watch event");
    if (type == "DELETE")
      out.what = watch_event::type::del;
    else if (type.empty() || type == "PUT")
      out.what = watch_event::type::put;
    else
      return bad("watch event type");
  }
  return m;
}

}  // namespace kaiwa::cluster::detail
