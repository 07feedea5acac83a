#include "tests/support/raw_ws.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>

#include "tests/support/ws_frames.hpp"

namespace kaiwa::test {

std::uint16_t server_frame::close_code() const {
  if (payload.size() < 2) return 1005;
  return static_cast<std::uint16_t>(static_cast<unsigned char>(payload[0]) << 8 |
                                    static_cast<unsigned char>(payload[1]));
}

raw_ws::raw_ws(std::uint16_t port, bool upgrade_now) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd_ < 0) FAIL("socket() failed: " << std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    FAIL("can't connect to 127.0.0.1:" << port << ": " << std::strerror(errno));
  if (upgrade_now) upgrade();
}

raw_ws::~raw_ws() {
  if (fd_ >= 0) ::close(fd_);
}

void raw_ws::upgrade() {
  if (!try_upgrade()) FAIL("the WebSocket handshake failed: " << handshake_reply_);
}

bool raw_ws::try_upgrade() {
  if (!send_raw(
          "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
    return false;
  auto deadline = std::chrono::steady_clock::now() + ms(10'000);
  std::size_t end;
  while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
    if (!fill(buf_.size() + 1, deadline)) return false;
  handshake_reply_ = buf_.substr(0, end);
  if (!buf_.starts_with("HTTP/1.1 101") || buf_.find("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") > end)
    return false;
  buf_.erase(0, end + 4);
  return true;
}

bool raw_ws::send_raw(std::string_view bytes) {
  while (!bytes.empty()) {
    auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void raw_ws::send_text(std::string_view text) {
  if (!send_raw(client_frame(ws_op::text, text))) FAIL("the server closed the connection");
}

void raw_ws::hello(const std::string& user) {
  send_text(R"({"op":"hello","id":-1,"user":")" + user + "\"}");
  auto m = next_text();
  if (!m || m->find("\"welcome\"") == std::string::npos)
    FAIL("no welcome for " << user << ": " << m.value_or("nothing"));
}

bool raw_ws::fill(std::size_t n, std::chrono::steady_clock::time_point deadline) {
  char tmp[16384];
  while (buf_.size() < n) {
    if (eof_) return false;
    auto left = std::chrono::duration_cast<ms>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    auto got = ::recv(fd_, tmp, sizeof tmp, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      eof_ = true;  // FIN or reset
      return false;
    }
    buf_.append(tmp, static_cast<std::size_t>(got));
  }
  return true;
}

std::optional<server_frame> raw_ws::next_frame(ms limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  if (!fill(2, deadline)) return std::nullopt;
  auto b0 = static_cast<unsigned char>(buf_[0]), b1 = static_cast<unsigned char>(buf_[1]);
  if (b1 & 0x80) FAIL("a masked server frame");  // server frames never are
  std::size_t hdr = 2;
  std::uint64_t len = b1 & 0x7f;
  if (len >= 126) {
    hdr += len == 126 ? 2 : 8;
    if (!fill(hdr, deadline)) return std::nullopt;
    std::uint64_t l = 0;
    for (std::size_t i = 2; i < hdr; ++i) l = l << 8 | static_cast<unsigned char>(buf_[i]);
    len = l;
  }
  if (len >= (std::uint64_t{1} << 30)) FAIL("a server frame of " << len << " bytes");
  if (!fill(hdr + len, deadline)) return std::nullopt;
  server_frame f;
  f.opcode = b0 & 0x0f;
  f.fin = b0 & 0x80;
  f.payload = buf_.substr(hdr, len);
  buf_.erase(0, hdr + len);
  return f;
}

std::optional<std::string> raw_ws::next_text(ms limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<ms>(deadline - std::chrono::steady_clock::now());
    auto f = next_frame(std::max(left, ms(0)));
    if (!f) return std::nullopt;
    if (f->opcode == ws_op::text) return std::move(f->payload);
    if (f->opcode == ws_op::close) return std::nullopt;
  }
}

std::optional<std::uint16_t> raw_ws::close_code(ms limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<ms>(deadline - std::chrono::steady_clock::now());
    auto f = next_frame(std::max(left, ms(0)));
    if (!f) return std::nullopt;
    if (f->opcode == ws_op::close) return f->close_code();
  }
}

bool raw_ws::wait_disconnected(ms limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!eof_) {
    buf_.clear();
    if (!fill(1, deadline) && !eof_) return false;
  }
  return true;
}

}  // namespace kaiwa::test
