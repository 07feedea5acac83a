#include "core/admin_error.hpp"

#include <simdjson.h>

#include <array>
#include <utility>

#include "core/json.hpp"

namespace kaiwa {

namespace {

constexpr std::array<std::pair<admin_errc, std::string_view>, 9> names{{
    {admin_errc::bad_request, "bad_request"},
    {admin_errc::unauthorized, "unauthorized"},
    {admin_errc::forbidden, "forbidden"},
    {admin_errc::not_found, "not_found"},
    {admin_errc::method_not_allowed, "method_not_allowed"},
    {admin_errc::conflict, "conflict"},
    {admin_errc::internal, "internal"},
    {admin_errc::unavailable, "unavailable"},
    {admin_errc::timeout, "timeout"},
}};

}  // namespace

std::string_view to_string(admin_errc c) noexcept {
  for (auto [code, name] : names)
    if (code == c) return name;
  return "internal";
}

std::optional<admin_errc> admin_errc_from(std::string_view name) noexcept {
  for (auto [code, n] : names)
    if (n == name) return code;
  return std::nullopt;
}

int http_status(admin_errc c) noexcept {
  switch (c) {
    case admin_errc::bad_request:
      return 400;
    case admin_errc::unauthorized:
      return 401;
    case admin_errc::forbidden:
      return 403;
    case admin_errc::not_found:
      return 404;
    case admin_errc::method_not_allowed:
      return 405;
    case admin_errc::conflict:
      return 409;
    case admin_errc::internal:
      return 500;
    case admin_errc::unavailable:
      return 503;
    case admin_errc::timeout:
      return 504;
  }
  return 500;
}

std::string admin_error_json(admin_errc c, std::string_view message, std::string_view hint) {
  std::string out;
  json_writer w(out);
  w.begin_object()
      .key("error")
      .begin_object()
      .field("code", to_string(c))
      .field("message", message);
  if (!hint.empty()) w.field("hint", hint);
  w.end_object().end_object();
  return out;
}

std::optional<admin_error> parse_admin_error(std::string_view body) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  std::string_view code, message, hint;
  if (p.parse(body.data(), body.size()).get(e) || e["error"]["code"].get(code) ||
      e["error"]["message"].get(message))
    return std::nullopt;
  auto c = admin_errc_from(code);
  if (!c) return std::nullopt;
  if (e["error"]["hint"].get(hint)) hint = {};
  return admin_error{*c, std::string(message), std::string(hint)};
}

}  // namespace kaiwa
