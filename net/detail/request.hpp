#pragma once
// Parsing of one client text frame into a request (PROTOCOL.md, Requests). Shapes are checked
// here (types, names, lengths); meaning is checked by the room. Runs on the session's I/O
// thread with that thread's parser.

#include <optional>
#include <string>
#include <string_view>

#include "actors/command.hpp"
#include "core/errc.hpp"
#include "read/read_side.hpp"

namespace kaiwa::net::detail {

/// Ops the session answers itself (the read queries through the read side); everything else
/// becomes a room command.
enum class session_op { hello, ping, rooms, search, directory, room };

struct request {
  session_op op = session_op::room;
  std::string id;             // raw JSON of the request's id, empty when none
  std::string token;          // hello
  std::string dev_user;       // hello in dev mode
  command cmd;                // session_op::room; link and user are filled in by the session
  read::query_request query;  // rooms, directory, search; the user is filled in by the session
};

struct request_error {
  std::string id;  // echoed when the frame was an object with a valid id
  errc code;
  std::string message;
};

struct parse_result {
  std::optional<request> req;
  std::optional<request_error> err;
};

/// Parses one JSON text. `padded` must have SIMDJSON_PADDING readable bytes after `json`.
parse_result parse_request(std::string_view json, bool padded);

/// Largest search query (`q` of `search`) in bytes.
inline constexpr std::size_t max_query_bytes = 256;

}  // namespace kaiwa::net::detail
