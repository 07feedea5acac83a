#include "read/query.hpp"

#include "core/bytes.hpp"

namespace kaiwa::read {

// -- the query's bytes between members ---------------------------------------------------------
//
// One byte kind, then user, q, room and before as (be32 length, bytes), a length of
// 0xffffffff meaning none (no room filter, no cursor), then be32 limit. Every declared length
// is checked against the bytes that are there before anything is copied.

namespace {

constexpr std::uint32_t none = 0xffffffffu;
// A query's parts are small (names <= 128, q <= 256, cursors <= 512 bytes): anything larger is
// not a query.
constexpr std::uint32_t max_part = 4096;
constexpr std::uint32_t max_limit = 200;

void put_part(std::string& out, const std::optional<std::string_view>& s) {
  if (!s) return append_be32(out, none);
  append_be32(out, static_cast<std::uint32_t>(s->size()));
  out += *s;
}

bool take_u32(std::string_view& in, std::uint32_t& v) {
  if (in.size() < 4) return false;
  v = read_be32(in);
  in.remove_prefix(4);
  return true;
}

bool take_part(std::string_view& in, std::optional<std::string>& out) {
  std::uint32_t n = 0;
  if (!take_u32(in, n)) return false;
  if (n == none) {
    out.reset();
    return true;
  }
  if (n > max_part || n > in.size()) return false;
  out = std::string(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

}  // namespace

std::string encode_query(const query_request& r) {
  std::string out;
  out += static_cast<char>(r.kind);
  put_part(out, std::string_view(r.user.str()));
  put_part(out, std::string_view(r.q));
  put_part(out, r.room ? std::optional<std::string_view>(r.room->str()) : std::nullopt);
  put_part(out, r.before ? std::optional<std::string_view>(*r.before) : std::nullopt);
  append_be32(out, r.limit);
  return out;
}

std::optional<query_request> decode_query(std::string_view in) {
  if (in.empty() || static_cast<unsigned char>(in[0]) > static_cast<int>(query_kind::search))
    return std::nullopt;
  query_request r;
  r.kind = static_cast<query_kind>(in[0]);
  in.remove_prefix(1);
  std::optional<std::string> user, q, room, before;
  std::uint32_t limit = 0;
  if (!take_part(in, user) || !take_part(in, q) || !take_part(in, room) || !take_part(in, before) ||
      !take_u32(in, limit) || !in.empty())
    return std::nullopt;
  if (!user || !valid_name(*user) || !q || (room && !valid_name(*room)) || limit == 0 ||
      limit > max_limit)
    return std::nullopt;
  r.user = user_id{std::move(*user)};
  r.q = std::move(*q);
  if (room) r.room = room_id{std::move(*room)};
  r.before = std::move(before);
  r.limit = limit;
  return r;
}

}  // namespace kaiwa::read
