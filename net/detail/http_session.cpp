#include "net/detail/http_session.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "net/detail/ws_session.hpp"

namespace kaiwa::net::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

namespace {

constexpr std::size_t max_request_body = 8 * 1024;

std::string websocket_accept(std::string_view key) {
  static constexpr std::string_view guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::string in(key);
  in += guid;
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), digest);
  unsigned char out[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  int n = EVP_EncodeBlock(out, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<char*>(out), n);
}

class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(stream s, connection_counts::slot slot, io_lane& l, server_state& st,
               const http_handler& h, bool websocket)
      : stream_(std::move(s)),
        slot_(std::move(slot)),
        timer_(l.ioc),
        lane_(l),
        st_(st),
        handler_(h),
        websocket_(websocket) {}

  void start() {
    if (!stream_.is_tls()) return do_read();
    // Until then a connection that never finishes its handshake holds a socket and a session.
    arm_timer(st_.cfg.tls_handshake_timeout);
    stream_.tls().async_handshake(asio::ssl::stream_base::server,
                                  [self = shared_from_this()](error_code ec) {
                                    self->timer_.cancel();
                                    if (!ec) self->do_read();
                                  });
  }

 private:
  /// Closes the connection unless the operations under way finish within `limit`: reading a
  /// request, writing a response, or the TLS handshake.
  void arm_timer(std::chrono::steady_clock::duration limit) {
    timer_.expires_after(limit);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      // Cancelled: the operation finished. A deadline that expired just as the upgrade
      // completed finds the stream handed to the ws_session: not ours to close.
      if (ec || self->upgraded_) return;
      error_code ignored;
      self->stream_.close(ignored);
    });
  }

  void do_read() {
    parser_.emplace();
    parser_->body_limit(max_request_body);
    arm_timer(st_.cfg.handshake_timeout);  // whole request: no slowloris
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    timer_.cancel();
    if (ec) return;  // closed, timed out or malformed: nothing to answer
    auto& req = parser_->get();
    auto target = std::string(req.target());
    if (websocket_ && target == "/ws" && beast::websocket::is_upgrade(req)) return upgrade(req);

    http_request request{std::string(req.method_string()),
                         target,
                         std::string(req[http::field::host]),
                         std::string(req[http::field::origin]),
                         std::string(req[http::field::authorization]),
                         std::string(req["Kaiwa-Admin"]),
                         std::string(req[http::field::if_none_match]),
                         req.body()};
    auto version = req.version();
    bool keep_alive = req.keep_alive();
    auto respond = [self = shared_from_this(), version, keep_alive](http_reply reply) {
      asio::post(self->stream_.get_executor(),
                 [self, version, keep_alive, reply = std::move(reply)]() mutable {
                   self->write(self->make_response(version, keep_alive, std::move(reply)));
                 });
    };
    if (!handler_(request, respond))
      write(make_response(version, keep_alive,
                          http_reply{404, "text/plain; charset=utf-8", "not found\n", "", "", ""}));
  }

  http::response<http::string_body> make_response(unsigned version, bool keep_alive,
                                                  http_reply reply) {
    http::response<http::string_body> res;
    res.version(version);
    res.keep_alive(keep_alive);
    res.set(http::field::server, "kaiwa/" + st_.cfg.version);
    res.result(static_cast<http::status>(reply.status));
    res.set(http::field::content_type, reply.content_type);
    if (!reply.cache_control.empty()) res.set(http::field::cache_control, reply.cache_control);
    if (!reply.etag.empty()) res.set(http::field::etag, reply.etag);
    if (!reply.allow.empty()) res.set(http::field::allow, reply.allow);
    // Browsers take it only over HTTPS, and remember to use nothing else for this host.
    if (stream_.is_tls() && st_.cfg.hsts_max_age > 0)
      res.set(http::field::strict_transport_security,
              "max-age=" + std::to_string(st_.cfg.hsts_max_age));
    res.body() = std::move(reply.body);
    res.prepare_payload();
    return res;
  }

  void write(http::response<http::string_body> res) {
    auto sp = std::make_shared<http::response<http::string_body>>(std::move(res));
    arm_timer(st_.cfg.handshake_timeout);
    http::async_write(stream_, *sp, [self = shared_from_this(), sp](error_code ec, std::size_t) {
      self->timer_.cancel();
      if (ec) return;
      if (sp->keep_alive()) return self->do_read();
      error_code ignored;
      self->stream_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    });
  }

  void upgrade(const http::request<http::string_body>& req) {
    auto key = req[http::field::sec_websocket_key];
    if (key.empty() || req[http::field::sec_websocket_version] != "13") {
      http::response<http::string_body> res{http::status::bad_request, req.version()};
      res.set(http::field::sec_websocket_version, "13");
      res.body() = "bad WebSocket handshake\n";
      res.keep_alive(false);
      res.prepare_payload();
      return write(std::move(res));
    }
    if (!st_.accepting) {
      http::response<http::string_body> res{http::status::service_unavailable, req.version()};
      // A draining node's clients reconnect elsewhere (or here after a restart): a few seconds
      // spreads them out without keeping anyone waiting long.
      res.set(http::field::retry_after, "5");
      res.body() = "node is draining\n";
      res.keep_alive(false);
      res.prepare_payload();
      return write(std::move(res));
    }
    auto res = std::make_shared<http::response<http::empty_body>>(http::status::switching_protocols,
                                                                  req.version());
    res->set(http::field::upgrade, "websocket");
    res->set(http::field::connection, "Upgrade");
    res->set(http::field::sec_websocket_accept,
             websocket_accept(std::string_view(key.data(), key.size())));
    res->set(http::field::server, "kaiwa/" + st_.cfg.version);
    arm_timer(st_.cfg.handshake_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](error_code ec, std::size_t) {
      self->timer_.cancel();
      if (ec) return;
      auto data = self->buffer_.data();
      std::string_view leftover(static_cast<const char*>(data.data()), data.size());
      self->upgraded_ = true;
      auto ws = std::make_shared<ws_session>(std::move(self->stream_), std::move(self->slot_),
                                             self->lane_, self->st_, leftover);
      ws->start();
    });
  }

  stream stream_;
  connection_counts::slot slot_;  // the address's count; goes to the ws_session on upgrade
  asio::steady_timer timer_;      // the deadline of the operation under way
  bool upgraded_ = false;         // stream_ now belongs to a ws_session
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  io_lane& lane_;
  server_state& st_;
  const http_handler& handler_;
  bool websocket_;
};

}  // namespace

void serve_http(stream s, connection_counts::slot slot, io_lane& l, server_state& st,
                const http_handler& handler, bool websocket) {
  std::make_shared<http_session>(std::move(s), std::move(slot), l, st, handler, websocket)->start();
}

}  // namespace kaiwa::net::detail
