#pragma once
// Signed client tokens (PROTOCOL.md, Identity): "v1." + base64url(payload) + "." +
// base64url(HMAC-SHA256(secret, "v1." + base64url(payload))), payload
// {"sub":U,"exp":S[,"kid":K]}. The optional "kid" names the key that signed it, so that a node
// can hold several keys while they rotate; a token without one was signed with the primary key.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/ids.hpp"

namespace kaiwa {

/// One signing key. `kid` names it in the tokens it signs; empty signs tokens without a kid
/// (the format before key ids).
struct token_key {
  std::string kid;
  std::string secret;
};

/// The keys a node accepts; the first (primary) signs, and verifies tokens that name no key.
using token_keys = std::vector<token_key>;

/// Tokens longer than this are refused unread (a real one is under 400 bytes).
inline constexpr std::size_t max_token_bytes = 1024;

/// A key id: 1 to 32 chars of [A-Za-z0-9_.-].
bool valid_kid(std::string_view kid) noexcept;

/// Parses a key file: `KID=SECRET` lines (the secret is everything after the first `=`),
/// blank lines and `#` comments ignored, ids unique, at least one key, the first primary. On
/// failure, `error` names the line.
std::optional<token_keys> parse_token_keys(std::string_view text, std::string& error);

/// A token for `user` that expires at `expires_unix_s`, signed with `key`.
std::string issue_token(const token_key& key, const user_id& user, std::int64_t expires_unix_s);

/// The user a token names, if it is signed by the key it names (none: the primary), names a
/// valid user and has not expired at `now_unix_s`. No keys: nothing verifies.
std::optional<user_id> verify_token(std::span<const token_key> keys, std::string_view token,
                                    std::int64_t now_unix_s);

/// Compares two secrets in time that depends only on their lengths.
bool secrets_equal(std::string_view a, std::string_view b);

}  // namespace kaiwa
