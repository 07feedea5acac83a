// What a room reads back from the journal when it recovers (room_actor::recover): its snapshot
// (room_state::from_snapshot), then its events (decode_event) applied in seq order; and what an
// edit or delete reads back and rewrites (rewritten, redacted). The input is the snapshot, a
// newline, then one event per line; either part may be garbage (a damaged or foreign record).
//
// Checks besides not crashing: whatever decodes re-encodes to JSON that decodes to the same
// encoding (so a record written back after an edit or delete is stable), a redacted message
// holds no text, and the state after recovery snapshots to a record that restores the same
// state.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "actors/room_state.hpp"
#include "core/event.hpp"

namespace {

std::string encode(const kaiwa::event& e) {
  std::string json;
  kaiwa::json_writer w(json);
  kaiwa::encode_event(w, e);
  return json;
}

/// `e` encodes to JSON that decodes to an event with the same encoding.
void check_stable(const kaiwa::event& e) {
  auto json = encode(e);
  auto again = kaiwa::decode_event(json);
  if (!again || encode(*again) != json) std::abort();
}

/// Whether the encoded event has a "text" member (a search of the JSON text would also find a
/// user or room named "text").
bool has_text_field(const std::string& json) {
  simdjson::dom::parser p;
  simdjson::dom::object o;
  if (p.parse(json).get(o)) std::abort();  // kaiwa's own encoding always parses
  return o["text"].error() != simdjson::NO_SUCH_FIELD;
}

void check_snapshot(const kaiwa::room_state& s) {
  auto json = s.snapshot();
  auto back = kaiwa::room_state::from_snapshot(s.room(), json);
  if (!back || back->snapshot() != json || back->head() != s.head()) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace kaiwa;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto nl = in.find('\n');
  auto snap = in.substr(0, nl);
  auto rest = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);

  room_id room{"r"};
  room_state state(room);
  if (auto s = room_state::from_snapshot(room, snap)) {
    check_snapshot(*s);
    state = std::move(*s);
  }
  while (!rest.empty()) {
    auto end = rest.find('\n');
    auto line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    auto e = decode_event(line);
    if (!e) continue;
    check_stable(*e);
    if (e->type == event_type::message) {
      event edit = *e;
      edit.type = event_type::edit;
      edit.seq = e->seq + 1;
      edit.ref = e->seq;
      edit.text = "edited";
      check_stable(rewritten(*e, edit));
      event del = edit;
      del.type = event_type::del;
      auto gone = rewritten(*e, del);
      if (!gone.deleted || !gone.text.empty() || !gone.cid.empty()) std::abort();
      if (has_text_field(encode(gone))) std::abort();
      check_stable(gone);
    }
    // Recovery applies only the next seq (room_actor::recover stops at anything else).
    if (e->seq == state.head() + 1) state.apply(*e);
  }
  check_snapshot(state);
  return 0;
}
