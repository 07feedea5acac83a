#pragma once
// A WebSocket client on a plain blocking socket that sends whatever bytes a test gives it
// (tests/support/ws_frames.hpp builds them, valid or not) and reads the server's frames one by
// one, control frames included. For conformance and hostile-client tests; ws_client is the
// well-behaved client. Its checks call Catch only when they fail (Catch's assertions are not
// thread-safe; a test may run clients on threads of its own while it asserts).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa::test {

struct server_frame {
  std::uint8_t opcode = 0;
  bool fin = true;
  std::string payload;
  /// The close code of a close frame (1005 when it has none).
  std::uint16_t close_code() const;
};

class raw_ws {
 public:
  using ms = std::chrono::milliseconds;

  /// Connects to 127.0.0.1:port and, if `upgrade`, performs the WebSocket handshake.
  explicit raw_ws(std::uint16_t port, bool upgrade = true);
  ~raw_ws();
  raw_ws(const raw_ws&) = delete;
  raw_ws& operator=(const raw_ws&) = delete;

  void upgrade();
  /// The handshake, reporting instead of failing the test (for a connection that may be refused).
  bool try_upgrade();
  /// The status line and headers the server answered the handshake with (to check a refusal).
  const std::string& handshake_reply() const { return handshake_reply_; }
  /// Writes all of `bytes`; false when the server has closed the connection.
  bool send_raw(std::string_view bytes);
  /// Sends a text frame, and `{"op":"hello",...}` expecting welcome (fails the test otherwise).
  void send_text(std::string_view text);
  void hello(const std::string& user);

  /// The next frame from the server; nullopt when none arrives in time or the connection ended.
  std::optional<server_frame> next_frame(ms limit = ms(10'000));
  /// The next text frame, skipping control frames; nullopt as for next_frame.
  std::optional<std::string> next_text(ms limit = ms(10'000));
  /// Reads until the server's close frame and returns its code; nullopt if the connection ended
  /// without one or nothing came in time.
  std::optional<std::uint16_t> close_code(ms limit = ms(10'000));
  /// Waits until the server ends the TCP connection (reads and drops whatever comes first).
  bool wait_disconnected(ms limit = ms(10'000));

 private:
  /// Reads at least `n` bytes into buf_ in total; false on timeout or EOF.
  bool fill(std::size_t n, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::string buf_;  // read and not yet parsed
  std::string handshake_reply_;
  bool eof_ = false;
};

}  // namespace kaiwa::test
