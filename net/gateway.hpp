#pragma once
// The gateway: the node's HTTP/WebSocket listeners and the client sessions.
//
// Threads: `io_threads` I/O threads, each running its own io_context (a lane). A session lives
// on one lane for its whole life, so its state needs no lock; rooms reach it by posting to the
// lane (actors/client_link.hpp). The public listener serves the WebSocket protocol at /ws and
// plain HTTP paths through `http_handler`; the admin listener serves only `admin_handler`.
//
// Lifecycle: construct, start() (binds; fails with a message), stop_accepting(), then
// close_sessions() (each session gets close 4010) and wait_sessions_closed(), then stop().
// A drain calls refuse_sessions() instead of stop_accepting(): the public listener keeps
// answering /healthz and /readyz (a load balancer's liveness check must not see a dead node)
// while new WebSocket upgrades get 503 with Retry-After.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/token.hpp"

namespace kaiwa {
class rooms;
}

namespace kaiwa::read {
class read_side;
}

namespace kaiwa::net {

/// A plain HTTP response, produced by the application for paths the gateway doesn't own.
struct http_reply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string cache_control;  // empty: none
  std::string etag;           // empty: none
  std::string allow;          // the methods a 405 names (RFC 9110 requires it there); empty: none
};

/// A request as the application sees it; a header that is absent is empty.
struct http_request {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path and query, e.g. "/admin/v1/drain?grace=5"
  std::string host;           // the Host header
  std::string origin;         // the Origin header (browsers send it on cross-site requests)
  std::string authorization;  // the Authorization header
  std::string kaiwa_admin;    // the Kaiwa-Admin header (the admin CLI's proof it is no web page)
  std::string if_none_match;  // the If-None-Match header
  std::string body;
};

/// Delivers the reply to a request; call it exactly once, from any thread.
using http_respond = std::function<void(http_reply)>;

/// Handles a request: returns false for an unknown path (the gateway answers 404), or true and
/// then calls `respond`, at once or later from another thread (for slow work like checkpoints).
using http_handler = std::function<bool(const http_request&, http_respond)>;

struct endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // 0: pick a free port
};

struct gateway_config {
  /// Public listener (WebSocket /ws and HTTP). Default: 127.0.0.1:8080
  endpoint listen{"127.0.0.1", 8080};
  /// Admin listener (HTTP only). Default: 127.0.0.1:8081
  endpoint admin{"127.0.0.1", 8081};
  /// I/O threads; 0 means one a CPU this process may use (available_cpus()). Default: 0
  std::size_t io_threads = 0;
  /// Keys for client tokens at start, the first signing; none means dev mode (hello with
  /// "user"). set_token_keys() replaces them. Default: none
  token_keys keys;
  /// PEM files of the certificate chain (leaf first) and its private key: the public listener
  /// then speaks only TLS (wss://, https://). Both or neither; reload_tls() reads them again.
  /// Default: none (plain ws://, http://)
  std::string tls_cert;
  std::string tls_key;
  /// A TLS client that hasn't finished its handshake by then is disconnected. Default: 10 s
  std::chrono::milliseconds tls_handshake_timeout{10'000};
  /// max-age of the Strict-Transport-Security header on HTTPS responses, in seconds; 0 sends
  /// none. Default: 31536000 (a year)
  std::int64_t hsts_max_age = 31'536'000;
  /// Largest client message in bytes (all of its frames together), at most 64 KiB (the request
  /// parser's capacity). A bigger one gets a too_large reply and is skipped unread; one
  /// declaring more than 16 times this fails the connection with 1009. Default: 65536
  std::size_t max_message_bytes = 64 * 1024;
  /// Live-event bytes queued to one client before it is closed as a slow consumer (4009);
  /// also the queue size (replies included) above which the client's requests are not read.
  /// Default: 8 MiB
  std::size_t max_outbound_bytes = 8 << 20;
  /// Everything queued to one client, replies and backfill included, beyond which it is closed
  /// as a slow consumer (4009). Default: 64 MiB
  std::size_t max_queued_bytes = 64 << 20;
  /// Requests of one connection sent to rooms and not yet answered; at the limit its requests
  /// are not read until answers come. Default: 64
  std::uint32_t max_pending_requests = 64;
  /// Read queries (rooms, directory, search) of one connection waiting or running at once; one
  /// more is answered rate_limited. The node's query queue is shared by every connection: this
  /// keeps a few connections from filling it and stalling everyone's searches. Default: 4
  std::uint32_t max_pending_queries = 4;
  /// Rooms one connection may be subscribed to; a join beyond gets bad_request. Default: 1000
  std::uint32_t max_rooms_per_connection = 1000;
  /// Connections (HTTP and WebSocket) from one source address at once, an IPv6 address counted
  /// by its /64 (what one subscriber gets); more are closed at accept. 0: no limit. Default: 1000
  std::uint32_t max_connections_per_address = 1000;
  /// Source networks (CIDR) not limited by address: a reverse proxy or load balancer in front
  /// of the node, or the bench tool on this machine. Default: 127.0.0.0/8, ::1/128
  std::vector<std::string> address_limit_exempt{"127.0.0.0/8", "::1/128"};
  /// WebSocket sessions one user holds at once, counted at hello (tabs, devices); a hello beyond
  /// gets rate_limited and close 4008. 0: no limit. Default: 100
  std::uint32_t max_connections_per_user = 100;
  /// Time to send the HTTP request (the WebSocket handshake included). Default: 30 s
  std::chrono::milliseconds handshake_timeout{30'000};
  /// Close connections that send no valid hello within this time (4001). Default: 10 s
  std::chrono::milliseconds hello_timeout{10'000};
  /// A connection silent this long gets a WebSocket ping. Default: 20 s
  std::chrono::milliseconds ping_interval{20'000};
  /// A connection that sends nothing within this time after a ping is closed (1001) and
  /// dropped. Default: 10 s
  std::chrono::milliseconds ping_timeout{10'000};
  /// Requests per second per connection (token bucket; burst 2x); WebSocket pings and pongs
  /// and refused messages count too; 0 = unlimited. Default: 10000
  std::uint32_t rate_limit = 10'000;
  /// Node id and version reported in `welcome`.
  std::string node_id = "kaiwa-1";
  std::string version = "0.1.0";
};

/// Counters for status and metrics; read from any thread.
struct gateway_stats {
  std::uint64_t connections = 0;  // current WebSocket sessions
  std::uint64_t opened = 0;
  std::uint64_t closed = 0;
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;
  std::uint64_t slow_consumers = 0;
};

class gateway {
 public:
  /// `read` answers `rooms`, `directory` and `search`; it must outlive the gateway.
  gateway(gateway_config cfg, rooms& rooms, read::read_side& read, http_handler public_http,
          http_handler admin_http);
  ~gateway();

  gateway(const gateway&) = delete;
  gateway& operator=(const gateway&) = delete;

  /// Loads the TLS certificate (if configured), binds both listeners and starts the I/O threads.
  /// Returns an error message on failure.
  std::optional<std::string> start();
  /// Reads the TLS certificate and key files again; new connections use them, open ones keep
  /// theirs. On an error (the message) the previous ones stay in use. Any thread.
  std::optional<std::string> reload_tls();
  /// Replaces the keys hellos are verified with (a rotation); connections already welcomed
  /// stay. Not to or from none: a node doesn't leave or enter dev mode. Any thread.
  void set_token_keys(token_keys keys);
  /// The ports actually bound (useful with port 0).
  std::uint16_t public_port() const;
  std::uint16_t admin_port() const;

  /// New WebSocket upgrades get 503 with `Retry-After`; plain HTTP is still served.
  void refuse_sessions();
  /// refuse_sessions(), and the public listener closes.
  void stop_accepting();
  /// Sends close 4010 to every session.
  void close_sessions();
  /// Waits until every session has closed, or `limit` passed; true if all closed.
  bool wait_sessions_closed(std::chrono::milliseconds limit);
  /// Stops the I/O threads. Idempotent.
  void stop();

  /// Pushes the frame `json` to every live session of `user` on this node (an `invited`
  /// notice). Any thread.
  void push_to_user(const user_id& user, std::string_view json);

  gateway_stats stats() const;
  /// Appends requests by op and closes by reason in Prometheus text.
  void render_metrics(std::string& out) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kaiwa::net
