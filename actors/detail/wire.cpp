#include "actors/detail/wire.hpp"

namespace kaiwa::detail {

namespace {

constexpr std::uint64_t absent = ~std::uint64_t{0};

std::uint64_t opt(const std::optional<seq_t>& v) { return v ? *v : absent; }
std::optional<seq_t> opt(std::uint64_t v) {
  return v == absent ? std::nullopt : std::optional<seq_t>(v);
}

}  // namespace

std::string encode_command(const command& c) {
  wire_writer w;
  w.u64(static_cast<std::uint64_t>(c.op))
      .str(c.room.str())
      .str(c.user.str())
      .str(c.id)
      .str(c.text)
      .str(c.cid)
      .str(c.topic)
      .u64(c.members.size());
  for (auto& m : c.members) w.str(m);
  w.u64(c.is_private)
      .str(c.target.str())
      .u64(c.ref)
      .u64(c.seq)
      .u64(opt(c.since))
      .u64(opt(c.before))
      .u64(opt(c.after))
      .u64(c.limit);
  return w.take();
}

std::optional<command> decode_command(std::string_view bytes) {
  wire_reader r(bytes);
  command c;
  auto op = r.u64();
  // Every op crosses nodes but adopt, which is local only.
  if (op > static_cast<std::uint64_t>(room_op::unarchive) ||
      op == static_cast<std::uint64_t>(room_op::adopt))
    return std::nullopt;
  c.op = static_cast<room_op>(op);
  c.room = room_id{r.str()};
  c.user = user_id{r.str()};
  c.id = r.str();
  c.text = r.str();
  c.cid = r.str();
  c.topic = r.str();
  auto members = r.u64();
  for (std::uint64_t i = 0; i < members && r.ok(); ++i) c.members.push_back(r.str());
  c.is_private = r.u64() != 0;
  c.target = user_id{r.str()};
  c.ref = r.u64();
  c.seq = r.u64();
  c.since = opt(r.u64());
  c.before = opt(r.u64());
  c.after = opt(r.u64());
  c.limit = static_cast<std::uint32_t>(r.u64());
  if (!r.ok() || !r.done()) return std::nullopt;
  return c;
}

std::string encode_link_ids(const std::vector<std::uint64_t>& ids) {
  wire_writer w;
  for (auto id : ids) w.u64(id);
  return w.take();
}

std::optional<std::vector<std::uint64_t>> decode_link_ids(std::string_view bytes) {
  if (bytes.size() % 8 != 0) return std::nullopt;
  wire_reader r(bytes);
  std::vector<std::uint64_t> ids;
  ids.reserve(bytes.size() / 8);  // bounded by the input, not by anything it declares
  while (!r.done()) ids.push_back(r.u64());
  return ids;
}

std::string encode_handover(const std::vector<handed_room>& rooms) {
  wire_writer w;
  w.u64(rooms.size());
  for (auto& room : rooms) {
    w.str(room.room).u64(room.subscribers.size());
    for (auto& s : room.subscribers) w.str(s.node).u64(s.link).str(s.user.str());
  }
  return w.take();
}

std::optional<std::vector<handed_room>> decode_handover(std::string_view bytes) {
  wire_reader r(bytes);
  std::vector<handed_room> rooms;
  auto count = r.u64();
  for (std::uint64_t i = 0; i < count && r.ok(); ++i) {
    handed_room room;
    room.room = r.str();
    auto n = r.u64();
    for (std::uint64_t k = 0; k < n && r.ok(); ++k) {
      handed_subscriber s;
      s.node = r.str();
      s.link = r.u64();
      s.user = user_id{r.str()};
      room.subscribers.push_back(std::move(s));
    }
    rooms.push_back(std::move(room));
  }
  if (!r.ok() || !r.done()) return std::nullopt;
  return rooms;
}

}  // namespace kaiwa::detail
