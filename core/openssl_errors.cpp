#include "core/openssl_errors.hpp"

#include <openssl/err.h>

namespace kaiwa {

std::string openssl_errors(std::string_view when_none) {
  std::string out;
  while (auto e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? std::string(when_none) : out;
}

}  // namespace kaiwa
