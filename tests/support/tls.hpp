#pragma once
// TLS for integration tests: self-signed certificates made at test time (none are checked in),
// a wss:// client and an https:// GET, each trusting exactly one certificate, so a test can tell
// which certificate the node presented.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "tests/support/ws_client.hpp"

namespace kaiwa::test {

/// Writes a fresh P-256 key and a self-signed certificate for 127.0.0.1 (valid for an hour)
/// as PEM files.
void write_self_signed_cert(const std::string& cert_file, const std::string& key_file,
                            const std::string& common_name);

/// Makes a cluster CA in `dir` and certificates n1..n<nodes> signed by it, with `kaiwa cert`
/// (ca.pem, n<i>.pem, n<i>-key.pem: a member's --cluster-ca, --cluster-cert, --cluster-key).
void make_cluster_certs(const std::string& dir, std::size_t nodes);

/// A WebSocket client over TLS at wss://127.0.0.1:port/ws. Each call runs the I/O it needs on
/// the calling thread, bounded by its limit; there is no background reading.
class wss_client {
 public:
  using ms = std::chrono::milliseconds;

  /// Connects, trusting only the certificate in `trusted_cert_file`; throws when the TCP, TLS
  /// or WebSocket handshake fails.
  wss_client(std::uint16_t port, const std::string& trusted_cert_file);
  ~wss_client();

  void send(const std::string& text);
  /// The next message, or nullopt if none arrives within `limit` (or the connection closed).
  std::optional<message> recv(ms limit = ms(10'000));
  /// Sends `request` and returns the reply carrying id `id` (skipping pushes before it).
  message request(const std::string& request_json, std::int64_t id);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

struct https_response {
  int status = 0;
  std::string body;
  std::string strict_transport_security;  // the header, empty when absent
};

/// GET https://127.0.0.1:port/target trusting only `trusted_cert_file`; throws on failure.
https_response https_get(std::uint16_t port, const std::string& target,
                         const std::string& trusted_cert_file);

}  // namespace kaiwa::test
