#pragma once
// A client connection's byte stream: the TCP socket itself, or TLS over it (a public listener
// with a certificate). Chosen at accept; http_session and ws_session read and write through it
// without knowing which. Internal to net/.
//
// It is an AsyncReadStream and AsyncWriteStream, so Beast's HTTP functions and asio::async_write
// work on it; a gather write over TLS is coalesced into records by Beast's flat_stream rather
// than written one TLS record per buffer. The socket operations the sessions use (options,
// shutdown, close) act on the TCP socket under TLS too: a session ends its side with a TCP
// shutdown after its WebSocket close frame, which says the connection is over, so no TLS
// close_notify is sent (it would need a read of its own, alongside the session's).
//
// Lane thread only, like the session that owns it.

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <memory>
#include <type_traits>
#include <utility>
#include <variant>

namespace kaiwa::net::detail {

class stream {
 public:
  using socket_type = boost::asio::ip::tcp::socket;
  using tls_type = boost::beast::ssl_stream<socket_type>;
  using executor_type = socket_type::executor_type;

  /// Plain TCP.
  explicit stream(socket_type s) : s_(std::in_place_type<socket_type>, std::move(s)) {}
  /// TLS, the handshake still to do. The stream keeps `ctx` alive: a reload makes a new context
  /// for new connections, and this one keeps its own.
  stream(socket_type s, std::shared_ptr<boost::asio::ssl::context> ctx)
      : ctx_(std::move(ctx)), s_(std::in_place_type<tls_type>, std::move(s), *ctx_) {}

  bool is_tls() const noexcept { return std::holds_alternative<tls_type>(s_); }
  /// The TLS layer; only when is_tls().
  tls_type& tls() { return std::get<tls_type>(s_); }
  socket_type& socket() { return is_tls() ? tls().next_layer() : std::get<socket_type>(s_); }
  executor_type get_executor() { return socket().get_executor(); }

  /// Over TLS into one buffer, records the TLS layer has already received are read in the same
  /// operation (see tls_read_op): a client's pipelined frames are then handled, and answered,
  /// in one batch as over TCP, instead of one record, one pass and one write at a time.
  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    if constexpr (std::is_convertible_v<MutableBuffers, boost::asio::mutable_buffer>) {
      if (is_tls()) {
        boost::asio::mutable_buffer b = buffers;
        tls().async_read_some(
            b, tls_read_op<std::decay_t<Handler>>{tls(), b, 0, std::forward<Handler>(handler)});
        return;
      }
    }
    std::visit([&](auto& s) { s.async_read_some(buffers, std::forward<Handler>(handler)); }, s_);
  }

  template <class ConstBuffers, class Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    std::visit([&](auto& s) { s.async_write_some(buffers, std::forward<Handler>(handler)); }, s_);
  }

  // -- the TCP socket's operations ------------------------------------------------------------

  socket_type::endpoint_type remote_endpoint(boost::system::error_code& ec) {
    return socket().remote_endpoint(ec);
  }
  template <class Option>
  void set_option(const Option& o, boost::system::error_code& ec) {
    socket().set_option(o, ec);
  }
  void shutdown(socket_type::shutdown_type what, boost::system::error_code& ec) {
    socket().shutdown(what, ec);
  }
  void close(boost::system::error_code& ec) { socket().close(ec); }

 private:
  /// Whether a read would complete without waiting on the socket: OpenSSL holds decrypted bytes,
  /// or a whole record sits in the BIO that Asio's engine feeds it (a TLS record header is 5
  /// bytes, the last two its length). Half a record would make the read wait for the rest while
  /// the bytes already read wait with it.
  static bool record_ready(SSL* ssl) {
    if (SSL_pending(ssl) > 0) return true;
    char* p = nullptr;
    auto n = BIO_nread0(SSL_get_rbio(ssl), &p);  // peeks, consumes nothing
    if (n < 5) return false;
    auto len =
        (std::size_t{static_cast<unsigned char>(p[3])} << 8) | static_cast<unsigned char>(p[4]);
    return static_cast<std::size_t>(n) >= 5 + len;
  }

  /// A TLS read returns at most one record. While the buffer has room and another record is
  /// ready (record_ready), this reads on. Bytes already read are delivered even if a later read
  /// fails: the next read reports the error.
  template <class Handler>
  struct tls_read_op {
    tls_type& s;
    boost::asio::mutable_buffer rest;
    std::size_t done;
    Handler handler;

    void operator()(boost::system::error_code ec, std::size_t n) {
      done += n;
      rest += n;
      if (!ec && rest.size() > 0 && record_ready(s.native_handle()))
        return s.async_read_some(rest, std::move(*this));
      handler(done > 0 ? boost::system::error_code{} : ec, done);
    }
  };

  std::shared_ptr<boost::asio::ssl::context> ctx_;  // TLS: outlives s_ (declared first)
  std::variant<socket_type, tls_type> s_;
};

}  // namespace kaiwa::net::detail
