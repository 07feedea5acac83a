#include "core/token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <algorithm>

#include "core/json.hpp"

namespace kaiwa {

namespace {

constexpr std::string_view b64url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url_encode(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += b64url[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += b64url[(acc << (6 - bits)) & 0x3f];
  return out;
}

/// Strict: only the canonical encoding decodes (no padding, no stray length, zero leftover
/// bits), so a token has exactly one spelling.
std::optional<std::string> base64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    auto pos = b64url.find(c);
    if (pos == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace

bool valid_kid(std::string_view kid) noexcept {
  return !kid.empty() && kid.size() <= 32 && std::all_of(kid.begin(), kid.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

std::optional<token_keys> parse_token_keys(std::string_view text, std::string& error) {
  token_keys keys;
  std::size_t line_no = 0;
  while (!text.empty()) {
    auto nl = text.find('\n');
    auto line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    auto eq = line.find('=');
    auto where = "line " + std::to_string(line_no) + ": ";
    if (eq == std::string_view::npos || !valid_kid(line.substr(0, eq)) || eq + 1 == line.size()) {
      error = where + "expected KID=SECRET (KID: 1 to 32 chars of [A-Za-z0-9_.-])";
      return std::nullopt;
    }
    token_key key{std::string(line.substr(0, eq)), std::string(line.substr(eq + 1))};
    if (std::any_of(keys.begin(), keys.end(), [&](auto& k) { return k.kid == key.kid; })) {
      error = where + "key id '" + key.kid + "' appears twice";
      return std::nullopt;
    }
    keys.push_back(std::move(key));
  }
  if (keys.empty()) {
    error = "no KID=SECRET line";
    return std::nullopt;
  }
  return keys;
}

std::string issue_token(const token_key& key, const user_id& user, std::int64_t expires_unix_s) {
  std::string payload;
  json_writer w(payload);
  w.begin_object().field("sub", user.str()).field("exp", expires_unix_s);
  if (!key.kid.empty()) w.field("kid", key.kid);
  w.end_object();
  std::string signed_part = "v1." + base64url_encode(payload);
  return signed_part + "." + base64url_encode(hmac_sha256(key.secret, signed_part));
}

std::optional<user_id> verify_token(std::span<const token_key> keys, std::string_view token,
                                    std::int64_t now_unix_s) {
  if (keys.empty() || token.size() > max_token_bytes || !token.starts_with("v1."))
    return std::nullopt;
  auto dot = token.rfind('.');
  if (dot <= 2) return std::nullopt;
  auto signed_part = token.substr(0, dot);
  // The payload is read before the signature is checked, to learn which key to check it with:
  // it is bounded (max_token_bytes) and nothing in it is trusted until the signature is.
  auto payload = base64url_decode(signed_part.substr(3));
  if (!payload) return std::nullopt;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(*payload).get(obj)) return std::nullopt;
  const token_key* key = &keys.front();
  auto kid_field = obj["kid"];
  if (kid_field.error() != simdjson::NO_SUCH_FIELD) {
    std::string_view kid;
    if (kid_field.get(kid)) return std::nullopt;
    auto it = std::find_if(keys.begin(), keys.end(), [&](auto& k) { return k.kid == kid; });
    if (kid.empty() || it == keys.end()) return std::nullopt;
    key = &*it;
  }
  auto sig = base64url_decode(token.substr(dot + 1));
  auto want = hmac_sha256(key->secret, signed_part);
  if (!sig || !secrets_equal(*sig, want)) return std::nullopt;
  std::string_view sub;
  std::int64_t exp = 0;
  if (obj["sub"].get(sub) || obj["exp"].get(exp)) return std::nullopt;
  if (exp <= now_unix_s || !valid_name(sub)) return std::nullopt;
  return user_id{std::string(sub)};
}

bool secrets_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace kaiwa
