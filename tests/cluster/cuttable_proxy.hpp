#pragma once
// A loopback TCP proxy a test can cut, to take one client away from etcd while etcd runs on.

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "tests/support/loopback.hpp"

namespace kaiwa::test {

/// A loopback TCP proxy to `upstream` that a test can cut: from then on it forwards nothing
/// and closes what it accepts, the way a partition cuts one node off while etcd runs on, until
/// it is healed.
class cuttable_proxy {
 public:
  explicit cuttable_proxy(std::uint16_t upstream) : upstream_(upstream) {
    listen_fd_ = listen_on_loopback(port_);
    // Close-on-exec: a child the test spawns later (an etcd restarted) must not hold the write
    // end, or closing it would wake nothing.
    REQUIRE(::pipe2(stop_pipe_, O_CLOEXEC) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~cuttable_proxy() {
    cut();
    ::close(stop_pipe_[1]);  // wakes every poll: the threads return
    thread_.join();
    for (auto& t : pumps_) t.join();
    ::close(stop_pipe_[0]);
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }
  void cut() { cut_ = true; }
  /// Waits (at most `d`) until every connection made before the cut is closed; then heal() can't
  /// let one of them through. False on timeout.
  bool wait_closed(std::chrono::milliseconds d) {
    std::unique_lock lock(mtx_);
    return cv_.wait_for(lock, d, [&] { return open_ == 0; });
  }
  /// Forwards new connections again (the partition heals; the client reconnects).
  void heal() { cut_ = false; }

 private:
  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    return a;
  }

  void serve() {
    for (;;) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents) return;
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      int up = cut_ ? -1 : ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      auto a = loopback(upstream_);
      if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        if (up >= 0) ::close(up);
        ::close(fd);
        continue;
      }
      {
        std::lock_guard lock(mtx_);
        ++open_;
      }
      pumps_.emplace_back([this, fd, up] { pump(fd, up); });
    }
  }

  /// Copies bytes both ways until either side closes, the proxy is cut or stopped.
  void pump(int a, int b) {
    char buf[16384];
    while (!cut_) {
      pollfd p[3] = {{a, POLLIN, 0}, {b, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(p, 3, 50) < 0 || p[2].revents) break;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if (!p[i].revents) continue;
        auto n = ::recv(p[i].fd, buf, sizeof buf, 0);
        closed = n <= 0 || ::send(p[1 - i].fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n;
      }
      if (closed) break;
    }
    ::close(a);
    ::close(b);
    std::lock_guard lock(mtx_);
    --open_;
    cv_.notify_all();
  }

  std::uint16_t upstream_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<bool> cut_{false};
  std::mutex mtx_;  // with cv_: the connections open
  std::condition_variable cv_;
  int open_ = 0;
  std::thread thread_;
  std::vector<std::thread> pumps_;  // touched by the serving thread only, joined after it
};

}  // namespace kaiwa::test
