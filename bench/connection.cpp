#include "bench/connection.hpp"

#include <fmt/format.h>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>

#include <cstring>

namespace kaiwa::bench {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr std::size_t read_chunk = 64 * 1024;

/// A final frame: text (0x81) unless `first` says another opcode.
void append_frame(std::string& out, std::string_view payload, char first = char(0x81)) {
  out += first;
  if (payload.size() < 126) {
    out += static_cast<char>(0x80 | payload.size());
  } else if (payload.size() <= 0xffff) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(payload.size() >> 8);
    out += static_cast<char>(payload.size() & 0xff);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int i = 7; i >= 0; --i)
      out += static_cast<char>((std::uint64_t{payload.size()} >> (8 * i)) & 0xff);
  }
  out.append(4, '\0');  // the mask key
  out += payload;
}

}  // namespace

connection::connection(asio::io_context& ioc, const endpoint& server, std::string local,
                       std::string user, connection_events& events, std::size_t index,
                       asio::ssl::context* tls)
    : socket_(ioc),
      tls_(tls),
      server_(asio::ip::make_address(server.host), server.port),
      local_(std::move(local)),
      user_(std::move(user)),
      events_(events),
      index_(index) {}

void connection::start() {
  error_code ec;
  socket_.open(tcp::v4(), ec);
  if (!ec && !local_.empty()) socket_.bind(tcp::endpoint(asio::ip::make_address(local_), 0), ec);
  if (ec) return fail("socket", ec);
  socket_.async_connect(server_, [self = shared_from_this()](error_code ec) {
    if (ec) return self->fail("connect", ec);
    error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    if (!self->tls_) return self->handshake();
    self->tls_stream_ =
        std::make_unique<asio::ssl::stream<tcp::socket&>>(self->socket_, *self->tls_);
    self->tls_stream_->async_handshake(asio::ssl::stream_base::client, [self](error_code ec) {
      if (ec) return self->fail("tls handshake", ec);
      self->handshake();
    });
  });
}

void connection::handshake() {
  out_ = fmt::format(
      "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
      server_.address().to_string());
  append_frame(out_, fmt::format(R"({{"op":"hello","id":"hello","user":"{}"}})", user_));
  flush();
  read();
}

void connection::send(std::string_view json) {
  if (closed_) return;
  append_frame(out_, json);
  if (writing_.empty()) flush();
}

void connection::flush() {
  if (out_.empty() || closed_) return;
  writing_.swap(out_);
  out_.clear();
  auto done = [self = shared_from_this()](error_code ec, std::size_t) {
    self->writing_.clear();
    if (ec) return self->fail("write", ec);
    self->flush();
  };
  if (tls_stream_)
    asio::async_write(*tls_stream_, asio::buffer(writing_), std::move(done));
  else
    asio::async_write(socket_, asio::buffer(writing_), std::move(done));
}

void connection::read() {
  if (rbuf_.size() < rlen_ + read_chunk) rbuf_.resize(rlen_ + read_chunk);
  auto into = asio::buffer(rbuf_.data() + rlen_, rbuf_.size() - rlen_);
  auto done = [self = shared_from_this()](error_code ec, std::size_t n) {
    if (ec) return self->fail("read", ec);
    self->rlen_ += n;
    self->parse();
    if (!self->closed_) self->read();
  };
  if (tls_stream_)
    tls_stream_->async_read_some(into, std::move(done));
  else
    socket_.async_read_some(into, std::move(done));
}

void connection::parse() {
  std::size_t pos = 0;
  if (!upgraded_) {
    auto end = std::string_view(rbuf_.data(), rlen_).find("\r\n\r\n");
    if (end == std::string_view::npos) return;
    if (std::string_view(rbuf_.data(), end).find(" 101 ") == std::string_view::npos) {
      closed_ = true;
      events_.on_closed(*this, 0, std::string_view(rbuf_.data(), std::min<std::size_t>(end, 80)));
      return;
    }
    upgraded_ = true;
    pos = end + 4;
  }
  auto* b = reinterpret_cast<const unsigned char*>(rbuf_.data());
  while (rlen_ - pos >= 2 && !closed_) {
    unsigned opcode = b[pos] & 0x0f;
    std::uint64_t len = b[pos + 1] & 0x7f;
    std::size_t hdr = len == 126 ? 4 : len == 127 ? 10 : 2;
    if (rlen_ - pos < hdr) break;
    if (len == 126) {
      len = (std::uint64_t{b[pos + 2]} << 8) | b[pos + 3];
    } else if (len == 127) {
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | b[pos + 2 + i];
    }
    if (rlen_ - pos < hdr + len) break;
    std::string_view payload(rbuf_.data() + pos + hdr, len);
    pos += hdr + len;
    if (opcode == 0x8) {
      std::uint16_t code =
          len >= 2 ? static_cast<std::uint16_t>((b[pos - len] << 8) | b[pos - len + 1]) : 0;
      closed_ = true;
      error_code ignored;
      socket_.close(ignored);
      events_.on_closed(*this, code, len > 2 ? payload.substr(2) : std::string_view("closed"));
      return;
    }
    // A ping is answered (a pong with its payload): the node closes a connection silent past
    // its ping timeout, and a subscriber that only listens is silent otherwise.
    if (opcode == 0x9) {
      append_frame(out_, payload, char(0x8a));
      if (writing_.empty()) flush();
      continue;
    }
    if (opcode != 0x1) continue;
    if (!ready_ && payload.starts_with(R"({"op":"welcome")")) {
      ready_ = true;
      events_.on_ready(*this);
      continue;
    }
    events_.on_message(*this, payload);
  }
  std::memmove(rbuf_.data(), rbuf_.data() + pos, rlen_ - pos);
  rlen_ -= pos;
}

void connection::close() {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

void connection::fail(std::string_view what, const error_code& ec) {
  if (closed_) return;
  closed_ = true;
  error_code ignored;
  socket_.close(ignored);
  events_.on_closed(*this, 0, fmt::format("{}: {}", what, ec.message()));
}

}  // namespace kaiwa::bench
