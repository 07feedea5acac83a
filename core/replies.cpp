#include "core/replies.hpp"

#include <array>
#include <atomic>

namespace kaiwa {

namespace {
std::array<std::atomic<std::uint64_t>, static_cast<std::size_t>(errc::internal) + 1> error_counts{};
}  // namespace

std::uint64_t errors_sent(errc code) noexcept {
  return error_counts[static_cast<std::size_t>(code)].load(std::memory_order_relaxed);
}

json_writer& begin_reply(frame_builder& b, std::string_view op, std::string_view id) {
  auto& w = b.json();
  w.begin_object().field("op", op);
  if (!id.empty()) w.key("id").raw(id);
  return w;
}

frame_ptr error_frame(std::string_view id, errc code, std::string_view message) {
  error_counts[static_cast<std::size_t>(code)].fetch_add(1, std::memory_order_relaxed);
  frame_builder b;
  begin_reply(b, "error", id).field("code", to_string(code)).field("message", message).end_object();
  return b.finish();
}

frame_ptr ack_frame(std::string_view id, const room_id& room, seq_t seq, millis_t ts) {
  frame_builder b;
  begin_reply(b, "ack", id)
      .field("room", room.str())
      .field("seq", seq)
      .field("ts", ts)
      .end_object();
  return b.finish();
}

frame_ptr ok_frame(std::string_view id) {
  frame_builder b;
  begin_reply(b, "ok", id).end_object();
  return b.finish();
}

}  // namespace kaiwa
