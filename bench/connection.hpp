#pragma once
// One simulated client: a WebSocket connection speaking kaiwa's protocol, on one io_context.
// Internal to bench/ (it exposes Asio types; nothing outside bench/ includes it).
//
// Frames are written masked with a zero key (RFC 6455 lets the server accept any key; a zero
// one spares the client the XOR) and everything sent between two writes goes out in one write.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace kaiwa::bench {

class connection;

/// What a scenario hears from its connections; called on the connection's io_context thread.
class connection_events {
 public:
  virtual ~connection_events() = default;
  /// The server welcomed the connection's hello.
  virtual void on_ready(connection& c) = 0;
  virtual void on_message(connection& c, std::string_view json) = 0;
  /// The connection ended: `close_code` is the server's close code, 0 if none was received.
  virtual void on_closed(connection& c, std::uint16_t close_code, std::string_view why) = 0;
};

struct endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
};

class connection : public std::enable_shared_from_this<connection> {
 public:
  /// `local` is the source address to bind (empty: any), for spreading past 60k connections.
  /// With `tls` (not null, outliving the connection) it speaks wss://.
  connection(boost::asio::io_context& ioc, const endpoint& server, std::string local,
             std::string user, connection_events& events, std::size_t index,
             boost::asio::ssl::context* tls);

  void start();
  void send(std::string_view json);
  void close();

  std::size_t index() const noexcept { return index_; }
  const std::string& user() const noexcept { return user_; }
  bool ready() const noexcept { return ready_; }

 private:
  void fail(std::string_view what, const boost::system::error_code& ec);
  void handshake();
  void read();
  void parse();
  void flush();

  boost::asio::ip::tcp::socket socket_;
  boost::asio::ssl::context* tls_;
  // Over socket_ once connected, for wss://; reads and writes go through it when set.
  std::unique_ptr<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_stream_;
  boost::asio::ip::tcp::endpoint server_;
  std::string local_;
  std::string user_;
  connection_events& events_;
  std::size_t index_;
  std::string rbuf_;
  std::size_t rlen_ = 0;
  std::string out_, writing_;
  bool ready_ = false;
  bool closed_ = false;
  bool upgraded_ = false;
};

}  // namespace kaiwa::bench
