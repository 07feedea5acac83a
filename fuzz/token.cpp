// Client tokens (core/token.hpp): verify_token reads a token's base64url payload and its JSON
// before it checks the signature (to learn the key id), so both are reached by any client's
// hello. The first byte picks what the rest is:
//   0: a whole token, as a client sends it;
//   1: a payload JSON, signed here with key (second byte % 3: k2, k1, or a key the node doesn't
//      hold) by an encoder independent of core/token.cpp, so the checks after the signature
//      are reached too;
//   2: a user name, issued and verified back.
// Beyond not crashing: a token verifies only if it is signed by the key its payload names (none:
// the primary), and then the user is the payload's "sub", and the expiry is in the future.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/token.hpp"

namespace {

using namespace kaiwa;

constexpr std::int64_t now = 1'800'000'000;

const token_keys& node_keys() {
  static const token_keys keys{{"k2", "the-new-secret"}, {"k1", "the-old-secret"}};
  return keys;
}

std::string b64url(std::string_view in) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                      (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += alphabet[(v >> s) & 63];
  }
  if (auto rest = in.size() - i; rest > 0) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    if (rest == 2) v |= std::uint32_t(std::uint8_t(in[i + 1])) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (rest == 2) out += alphabet[(v >> 6) & 63];
  }
  return out;
}

std::string sign(std::string_view secret, std::string_view payload) {
  std::string signed_part = "v1." + b64url(payload);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), md, &len);
  return signed_part + "." + b64url(std::string_view(reinterpret_cast<char*>(md), len));
}

/// What a correct verifier decides for `payload` signed with the key named `signer`.
void check_signed(std::string_view payload, const std::string& signer) {
  const token_key* key = nullptr;
  for (auto& k : node_keys())
    if (k.kid == signer) key = &k;
  std::string token = sign(key ? key->secret : std::string("a-key-the-node-lacks"), payload);
  auto user = verify_token(node_keys(), token, now);
  if (!user) return;
  // Accepted: the payload must be an object whose kid names the signer (absent: the primary),
  // with a string sub equal to the user and an integer exp after now.
  simdjson::dom::parser p;
  simdjson::dom::object obj;
  if (token.size() > max_token_bytes || !key || p.parse(payload.data(), payload.size()).get(obj))
    std::abort();
  std::string_view kid = node_keys().front().kid, sub;
  auto kid_field = obj["kid"];
  if (kid_field.error() != simdjson::NO_SUCH_FIELD && kid_field.get(kid)) std::abort();
  std::int64_t exp = 0;
  if (kid != signer || obj["sub"].get(sub) || sub != user->str() || obj["exp"].get(exp) ||
      exp <= now || !valid_name(sub))
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  switch (data[0] % 3) {
    case 0:
      // Nobody here knows the keys: only a seed's signature can verify, and then as above.
      if (auto user = verify_token(node_keys(), rest, now); user && !valid_name(user->str()))
        std::abort();
      break;
    case 1:
      check_signed(rest, data[1] % 3 == 0 ? "k2" : data[1] % 3 == 1 ? "k1" : "k0");
      break;
    default: {
      if (!valid_name(rest)) return 0;
      auto& key = node_keys()[data[1] % 2];
      auto token = issue_token(key, user_id{std::string(rest)}, now + 1);
      auto user = verify_token(node_keys(), token, now);
      if (!user || user->str() != rest || verify_token(node_keys(), token, now + 1)) std::abort();
    }
  }
  return 0;
}
