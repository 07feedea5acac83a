#include "core/token.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

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

std::optional<std::string> base64url_decode(std::string_view in) {
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

std::string issue_token(std::string_view secret, const user_id& user, std::int64_t expires_unix_s) {
  std::string payload;
  json_writer(payload)
      .begin_object()
      .field("sub", user.str())
      .field("exp", expires_unix_s)
      .end_object();
  std::string signed_part = "v1." + base64url_encode(payload);
  return signed_part + "." + base64url_encode(hmac_sha256(secret, signed_part));
}

std::optional<user_id> verify_token(std::string_view secret, std::string_view token,
                                    std::int64_t now_unix_s) {
  if (!token.starts_with("v1.")) return std::nullopt;
  auto dot = token.rfind('.');
  if (dot <= 2) return std::nullopt;
  auto signed_part = token.substr(0, dot);
  auto sig = base64url_decode(token.substr(dot + 1));
  auto want = hmac_sha256(secret, signed_part);
  if (!sig || sig->size() != want.size() ||
      CRYPTO_memcmp(sig->data(), want.data(), want.size()) != 0)
    return std::nullopt;
  auto payload = base64url_decode(signed_part.substr(3));
  if (!payload) return std::nullopt;
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  std::string_view sub;
  std::int64_t exp = 0;
  if (parser.parse(*payload).get(obj) || obj["sub"].get(sub) || obj["exp"].get(exp))
    return std::nullopt;
  if (exp <= now_unix_s || !valid_name(sub)) return std::nullopt;
  return user_id{std::string(sub)};
}

}  // namespace kaiwa
