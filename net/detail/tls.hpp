#pragma once
// The public listener's TLS context: made from the certificate chain and key files at start and
// again on each reload (SIGHUP). Internal to net/.

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <string>

namespace kaiwa::net::detail {

/// A server context with kaiwa's defaults (docs/operations.md, TLS): TLS 1.2 and 1.3 only, for
/// TLS 1.2 only ECDHE key exchange with AEAD ciphers (Mozilla's "intermediate" list without the
/// DHE suites), TLS 1.3 with OpenSSL's default suites; no renegotiation, no compression.
/// nullptr and `error` when a file can't be read or the key doesn't match the certificate.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const std::string& cert_chain_file,
                                                            const std::string& key_file,
                                                            std::string& error);

}  // namespace kaiwa::net::detail
