#pragma once
// "HOST:PORT" as flags, config files and the cluster's member list spell addresses.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kaiwa {

struct host_port {
  std::string host;
  std::uint16_t port = 0;
};

/// Splits at the last colon; the host must not be empty and the port must be 0 to 65535 in
/// decimal digits only. nullopt for anything else.
std::optional<host_port> parse_host_port(std::string_view s);

/// True for the loopback spellings kaiwa accepts without credentials: "localhost", "::1" and
/// 127.0.0.0/8 in dotted form. Any other host (a name, 0.0.0.0, "") counts as reachable from
/// outside.
bool is_loopback(std::string_view host);

}  // namespace kaiwa
