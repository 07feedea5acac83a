#pragma once
// `kaiwa bench`: load generators that speak the client protocol to a running node.

#include <cstdint>
#include <string>

namespace kaiwa::app {

struct rooms_bench_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;
  /// Rooms; each gets one publishing connection.
  std::size_t rooms = 1000;
  /// Sends each publisher keeps in flight (pipelining window).
  std::size_t window = 8;
  /// Message text bytes.
  std::size_t payload = 128;
  /// Offered total rate in msgs/s; 0 = as fast as acks allow.
  double rate = 0;
  double duration_s = 10;
  double warmup_s = 2;
  std::size_t threads = 1;
};

/// Runs the rooms scenario and prints its report; returns the process exit code.
int run_rooms_bench(const rooms_bench_config& cfg);

}  // namespace kaiwa::app
