#include "core/address.hpp"

#include <charconv>

namespace kaiwa {

std::optional<host_port> parse_host_port(std::string_view s) {
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  auto digits = s.substr(colon + 1);
  std::uint32_t port = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || port > 65535)
    return std::nullopt;
  return host_port{std::string(s.substr(0, colon)), static_cast<std::uint16_t>(port)};
}

bool is_loopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

}  // namespace kaiwa
