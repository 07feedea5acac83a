#pragma once
// One accepted TCP connection speaking HTTP/1.1: answers plain GETs through an http_handler and,
// on the public listener, upgrades `GET /ws` to a ws_session. Internal to net/.

#include <boost/asio/ip/tcp.hpp>

#include "net/detail/server_state.hpp"

namespace kaiwa::net::detail {

/// Starts serving `socket` on lane `l`. `handler` answers non-WebSocket paths;
/// `websocket` says whether /ws upgrades are allowed on this listener.
void serve_http(boost::asio::ip::tcp::socket socket, io_lane& l, server_state& st,
                const http_handler& handler, bool websocket);

}  // namespace kaiwa::net::detail
