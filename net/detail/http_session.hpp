#pragma once
// One accepted connection speaking HTTP/1.1 (over TLS on a public listener with a certificate):
// answers plain GETs through an http_handler and, on the public listener, upgrades `GET /ws` to a
// ws_session. Internal to net/.

#include "net/detail/server_state.hpp"
#include "net/detail/stream.hpp"

namespace kaiwa::net::detail {

/// Starts serving `s` on lane `l` (a TLS stream: after its handshake). `handler` answers
/// non-WebSocket paths; `websocket` says whether /ws upgrades are allowed on this listener.
/// `slot` is the connection's place in its address's count, held until the connection ends.
void serve_http(stream s, connection_counts::slot slot, io_lane& l, server_state& st,
                const http_handler& handler, bool websocket);

}  // namespace kaiwa::net::detail
