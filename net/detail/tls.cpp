#include "net/detail/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/openssl_errors.hpp"

namespace kaiwa::net::detail {

namespace ssl = boost::asio::ssl;

namespace {

// Mozilla's "intermediate" TLS 1.2 suites (ssl-config.mozilla.org, v5.7) that use ECDHE.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const std::string& cert_chain_file,
                                               const std::string& key_file, std::string& error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  auto* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  if (SSL_CTX_set_cipher_list(native, tls12_ciphers) != 1) {
    error = "can't set the TLS 1.2 ciphers: " + openssl_errors();
    return nullptr;
  }
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native, cert_chain_file.c_str()) != 1) {
    error = "can't load the certificate chain '" + cert_chain_file + "': " + openssl_errors();
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(native, key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    error = "can't load the private key '" + key_file + "': " + openssl_errors();
    return nullptr;
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    error = "the key '" + key_file + "' doesn't match the certificate '" + cert_chain_file + "'";
    ERR_clear_error();
    return nullptr;
  }
  return ctx;
}

}  // namespace kaiwa::net::detail
