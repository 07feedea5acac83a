#pragma once
// `kaiwa cert`: the cluster's CA and its members' certificates (docs/cluster.md), so that
// members can authenticate each other with mutual TLS. EC P-256 keys, SHA-256 signatures.
// Files are never overwritten; keys are written 0600.

#include <string>

namespace kaiwa::app {

/// Writes DIR/ca.pem (the CA's certificate, for every member) and DIR/ca-key.pem (its key, for
/// whoever makes node certificates; no member needs it). Returns the exit code.
int cert_ca_command(const std::string& out_dir, int days);

/// Signs a certificate for node `name` with the CA in `ca_dir`: writes OUT/NAME.pem and
/// OUT/NAME-key.pem, and OUT/ca.pem when OUT is not the CA's directory. Returns the exit code.
int cert_node_command(const std::string& ca_dir, const std::string& name,
                      const std::string& out_dir, int days);

}  // namespace kaiwa::app
