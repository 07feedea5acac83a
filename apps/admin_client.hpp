#pragma once
// The admin CLI's side of the admin API: one HTTP request to a node, with one-line errors.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace kaiwa::app {

struct admin_target {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8081;
  std::string token;  // sent as a bearer token when set

  /// "HOST:PORT", as messages name the node.
  std::string address() const;
};

/// Parses "http://HOST:PORT", "HOST:PORT" (a trailing "/" is fine); nullopt if it is neither.
std::optional<admin_target> parse_admin_url(const std::string& url);

struct admin_response {
  int status = 0;
  std::string body;
};

/// Sends METHOD target to the node. On failure `error` says in one line which of two things
/// went wrong: nothing accepts connections there ("can't reach ..."), or the connection was
/// made and the node broke it off or didn't answer in `timeout`.
std::optional<admin_response> admin_call(const admin_target& t, const std::string& method,
                                         const std::string& target, std::string& error,
                                         std::chrono::seconds timeout = std::chrono::seconds(60));

}  // namespace kaiwa::app
