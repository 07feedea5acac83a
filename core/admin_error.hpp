#pragma once
// The admin API's one error shape (docs/operations.md, "Admin API errors"): every admin
// endpoint, an unknown path and a wrong method included, answers a failure with
//   {"error":{"code":"not_found","message":"no such room","hint":"..."}}
// and the HTTP status of its code. `hint`, when present, says what to do about it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa {

enum class admin_errc : std::uint8_t {
  bad_request,         // 400: a parameter is missing or malformed
  unauthorized,        // 401: no or the wrong admin token
  forbidden,           // 403: a request a web page could have made
  not_found,           // 404: no such path, room, projection or member
  method_not_allowed,  // 405
  conflict,            // 409: refused in the node's current state (a move, a rebuild under way)
  internal,            // 500
  unavailable,         // 503: not now (the coordinator is down, the node is stopping)
  timeout,             // 504: another member didn't answer in time
};

/// The wire name of a code, e.g. "not_found".
std::string_view to_string(admin_errc c) noexcept;
/// The code of a wire name; nullopt for an unknown one.
std::optional<admin_errc> admin_errc_from(std::string_view name) noexcept;
/// The HTTP status a code is answered with.
int http_status(admin_errc c) noexcept;

/// The error body (one line, no newline).
std::string admin_error_json(admin_errc c, std::string_view message, std::string_view hint = {});

struct admin_error {
  admin_errc code = admin_errc::internal;
  std::string message;
  std::string hint;  // empty: none
};

/// An error body parsed back; nullopt when `body` is not in the admin error shape.
std::optional<admin_error> parse_admin_error(std::string_view body);

}  // namespace kaiwa
