#pragma once
// What the tests against a real etcd share.

#include <catch2/catch.hpp>
#include <cstdint>

#include "cluster/etcd_client.hpp"
#include "tests/cluster/etcd_process.hpp"

namespace kaiwa::test {

/// True when an etcd binary is installed; otherwise the test says why it does nothing.
inline bool have_etcd() {
  if (!etcd_process::binary().empty()) return true;
  WARN("no etcd binary on PATH (apt-get install etcd-server): skipping the tests against etcd");
  return false;
}

/// An etcd client's endpoint on loopback.
inline cluster::endpoint at(std::uint16_t port) { return {"127.0.0.1", port}; }

}  // namespace kaiwa::test
