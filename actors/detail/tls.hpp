#pragma once
// Mutual TLS for the cluster port: kaiwa's own TLS transport for CAF's middleman (BASP over
// TLS 1.3, each end presenting a certificate the cluster CA signed and verifying the other's).
// Only rooms.cpp includes this.
//
// Why not CAF 0.17's OpenSSL module (libcaf_openssl): it never empties OpenSSL's per-thread
// error queue (it does so only in log statements, which Debian's build compiles out), and
// SSL_get_error reads that queue. So after one failed handshake on the cluster port (anyone
// who connects and sends junk) the next read of a healthy member's connection on the same
// I/O thread fails, and that member is declared down. It also busy-loops the I/O thread while
// an accepted connection's handshake is pending (BASP's first message waits to be written),
// and loads the certificate files again for every connection.
//
// Here: one SSL_CTX for the process (credentials loaded and checked once, at start); the error
// queue is emptied before and after every OpenSSL call; a dial completes its handshake on the
// middleman actor's own thread (bounded by a timeout) before CAF sees the connection; an
// accepted connection holds back its writes until its handshake is done, so nothing it waits
// for spins; silent connections are bounded (spawn_tls_middleman). Nothing reaches CAF's BASP
// decoder from a peer before its certificate verified.

#include <caf/io/middleman_actor.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <variant>

#include "actors/rooms.hpp"

namespace kaiwa::detail {

class tls_context;

/// Loads the CA, this node's certificate and key, and checks them: the key is the
/// certificate's and the CA verifies the certificate. The context, or what is wrong, naming
/// the file.
std::variant<std::shared_ptr<const tls_context>, std::string> make_tls_context(
    const cluster_tls& tls);

/// A middleman actor whose `publish` listens and whose `connect` dials over mutual TLS (the
/// same interface as CAF's `middleman().actor_handle()`). Hidden; the caller ends it with an
/// exit message when the node stops. A dial whose handshake takes longer than
/// `handshake_timeout` fails; an accepted connection whose handshake takes longer is closed
/// when the next connection arrives, and at most 64 may be pending at once (the oldest goes).
caf::io::middleman_actor spawn_tls_middleman(caf::actor_system& sys,
                                             std::shared_ptr<const tls_context> ctx,
                                             std::chrono::milliseconds handshake_timeout);

}  // namespace kaiwa::detail
