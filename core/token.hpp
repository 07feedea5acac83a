#pragma once
// Signed client tokens (PROTOCOL.md, Identity): "v1." + base64url(payload) + "." +
// base64url(HMAC-SHA256(secret, "v1." + base64url(payload))), payload {"sub":U,"exp":S}.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/ids.hpp"

namespace kaiwa {

/// A token for `user` that expires at `expires_unix_s`.
std::string issue_token(std::string_view secret, const user_id& user, std::int64_t expires_unix_s);

/// The user a token names, if its signature is right and it has not expired at `now_unix_s`.
std::optional<user_id> verify_token(std::string_view secret, std::string_view token,
                                    std::int64_t now_unix_s);

}  // namespace kaiwa
