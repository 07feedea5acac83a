#pragma once
// A read query (`rooms`, `directory`, `search`) as the read side runs it, and its bytes
// between cluster members (read_side asks every member for its page).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/ids.hpp"

namespace kaiwa::read {

enum class query_kind : std::uint8_t { rooms, directory, search };

/// A read query, as a client asked it (already checked: read/query limits in docs/protocol.md).
struct query_request {
  query_kind kind = query_kind::rooms;
  user_id user;                       // who asks
  std::string q;                      // directory: the name prefix; search: the query text
  std::optional<room_id> room;        // search: only this room
  std::optional<std::string> before;  // the decoded `before` cursor: a sort key
  std::uint32_t limit = 50;
};

/// The bytes of a query between members, and back: nullopt if `bytes` is not one (they come
/// from the network: every length is checked against what is there).
std::string encode_query(const query_request& r);
std::optional<query_request> decode_query(std::string_view bytes);

}  // namespace kaiwa::read
