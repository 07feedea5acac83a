#pragma once
// A real etcd (Debian's etcd-server) on loopback ports picked free, with its own data dir, for
// the cluster module's tests. Stopped by its pid; restartable on the same dir and ports.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "tests/support/child_output.hpp"

namespace kaiwa::test {

/// A loopback TCP port free right now, outside the kernel's ephemeral range (no connect() takes
/// it before it is bound); a process gets a different one at each call.
std::uint16_t free_port();

class etcd_process {
 public:
  /// The etcd binary, or empty when none is installed (the tests that need one skip).
  static std::string binary();

  /// Starts a one-member etcd on `data_dir` and waits (bounded) until it serves clients.
  explicit etcd_process(std::string data_dir);
  /// The same, serving clients on `also_on` (another local address, e.g. a netns link's) too.
  etcd_process(std::string data_dir, std::string also_on);
  /// Starts member `name` of the cluster `initial_cluster` ("n1=http://127.0.0.1:P,...") on
  /// these ports without waiting: a member serves only once a majority runs (wait_ready()).
  etcd_process(std::string data_dir, std::string name, std::uint16_t client_port,
               std::uint16_t peer_port, std::string initial_cluster);
  ~etcd_process();
  etcd_process(const etcd_process&) = delete;
  etcd_process& operator=(const etcd_process&) = delete;

  std::uint16_t client_port() const { return client_port_; }
  bool running() const { return pid_ > 0; }

  /// SIGTERM, then (after 10 s) SIGKILL; waits for the exit.
  void stop();
  /// kill -9 (a crash); waits for the exit.
  void kill_now();
  /// Starts it again on the same data dir and ports; waits until it serves clients.
  void start();
  /// Waits (at most 30 s) until it serves clients; throws if it doesn't.
  void wait_ready();

 private:
  void spawn();

  std::string data_dir_;
  std::string name_ = "t";
  std::string initial_cluster_;
  std::string also_on_;  // a second client address, when not empty
  std::uint16_t client_port_ = 0;
  std::uint16_t peer_port_ = 0;
  int pid_ = -1;
  int out_fd_ = -1;
  // Read all along (etcd logs a lot; a full pipe would block it).
  std::unique_ptr<child_output> output_;
};

}  // namespace kaiwa::test
