#pragma once
// A WebSocket test client built on Beast (an implementation independent of the server's own
// framing). It reads continuously on its own thread; tests wait for frames with deadlines. Its
// checks call Catch only when they fail (Catch's assertions are not thread-safe; a test may run
// clients on threads of its own while it asserts).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <simdjson.h>

namespace kaiwa::test {

/// A received JSON message, parsed.
class message {
 public:
  explicit message(std::string json);
  const std::string& json() const { return json_; }
  std::string str(const char* key) const;   // "" when absent
  std::int64_t num(const char* key) const;  // -1 when absent
  bool has(const char* key) const;
  /// The array at `key`; empty when absent.
  simdjson::dom::array array(const char* key) const;
  simdjson::dom::element root() const { return root_; }

 private:
  std::string json_;
  std::shared_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
};

class ws_client {
 public:
  using ms = std::chrono::milliseconds;

  explicit ws_client(std::uint16_t port);
  ~ws_client();

  void send(const std::string& text);
  void send_binary(const std::string& bytes);
  /// The next message, or nullopt if none arrives within `limit` (or the connection closed).
  std::optional<message> recv(ms limit = ms(10'000));
  /// The next message; fails the test if none arrives.
  message next(ms limit = ms(10'000));
  /// Skips messages until one satisfies `pred`; fails the test if none does in time.
  message next_where(const std::function<bool(const message&)>& pred, ms limit = ms(10'000));
  /// Sends `request` and returns the reply carrying id `id` (skipping pushes before it).
  message request(const std::string& request_json, std::int64_t id);
  /// request(), sent again every 20 ms (as clients retry) while it is answered `unavailable`
  /// ("not applied": a room whose shard is moving or whose new leader does not serve yet), for
  /// at most `limit`; the last answer.
  message request_while_unavailable(const std::string& request_json, std::int64_t id,
                                    ms limit = ms(20'000));
  /// hello in dev mode; fails the test unless welcomed.
  void hello(const std::string& user);

  /// The close code the server sent, waiting up to `limit` for the connection to close.
  std::optional<std::uint16_t> close_code(ms limit = ms(10'000));
  bool is_open() const;
  /// Stops reading from the socket (to simulate a slow consumer), and starts again.
  void pause_reading();
  void resume_reading();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kaiwa::test
