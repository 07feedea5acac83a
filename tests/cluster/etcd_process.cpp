#include "tests/cluster/etcd_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace kaiwa::test {

using namespace std::chrono_literals;

namespace {

/// The ports the kernel hands out to connect() and to bind(port 0): its ephemeral range.
std::pair<int, int> ephemeral_ports() {
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 32768, high = 60999;  // Linux's defaults
  range >> low >> high;
  return {low, high};
}

/// Whether 127.0.0.1:port can be bound now (nothing bound there, not even in TIME_WAIT).
bool bindable(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

// Picked outside the ephemeral range: a port from it, free when picked, can be taken before etcd
// binds it by any connect() of the test's own processes (CI saw etcd exit with "bind: address
// already in use"). Outside it only an explicit bind takes a port, and each call of a process
// tries the next one, from an offset of its own (tests of concurrent processes don't collide).
std::uint16_t free_port() {
  static std::mutex mtx;
  static std::uint32_t next = static_cast<std::uint32_t>(::getpid()) * 7919u;
  auto [low, high] = ephemeral_ports();
  // The 16,384 ports below the range, or above it when the range starts too low for that.
  int from = std::max(1024, low - 16384), to = low;
  if (to - from < 1024) from = high + 1, to = 65536;
  std::lock_guard lock(mtx);
  for (int tries = 0; tries < to - from; ++tries) {
    auto port = static_cast<std::uint16_t>(from + static_cast<int>(next++ % (to - from)));
    if (bindable(port)) return port;
  }
  throw std::runtime_error("no free port outside the ephemeral range");
}

std::string etcd_process::binary() {
  std::istringstream path(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin");
  for (std::string dir; std::getline(path, dir, ':');) {
    auto candidate = std::filesystem::path(dir) / "etcd";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

etcd_process::etcd_process(std::string data_dir)
    : data_dir_(std::move(data_dir)), client_port_(free_port()), peer_port_(free_port()) {
  initial_cluster_ = name_ + "=http://127.0.0.1:" + std::to_string(peer_port_);
  start();
}

etcd_process::etcd_process(std::string data_dir, std::string also_on)
    : data_dir_(std::move(data_dir)),
      also_on_(std::move(also_on)),
      client_port_(free_port()),
      peer_port_(free_port()) {
  initial_cluster_ = name_ + "=http://127.0.0.1:" + std::to_string(peer_port_);
  start();
}

etcd_process::etcd_process(std::string data_dir, std::string name, std::uint16_t client_port,
                           std::uint16_t peer_port, std::string initial_cluster)
    : data_dir_(std::move(data_dir)),
      name_(std::move(name)),
      initial_cluster_(std::move(initial_cluster)),
      client_port_(client_port),
      peer_port_(peer_port) {
  spawn();
}

etcd_process::~etcd_process() { stop(); }

void etcd_process::start() {
  spawn();
  wait_ready();
}

void etcd_process::spawn() {
  auto client = "http://127.0.0.1:" + std::to_string(client_port_);
  auto peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  auto listen = client;
  if (!also_on_.empty()) listen += ",http://" + also_on_ + ":" + std::to_string(client_port_);
  std::vector<std::string> args = {binary(),
                                   "--name",
                                   name_,
                                   "--data-dir",
                                   data_dir_,
                                   "--listen-client-urls",
                                   listen,
                                   "--advertise-client-urls",
                                   client,
                                   "--listen-peer-urls",
                                   peer,
                                   "--initial-advertise-peer-urls",
                                   peer,
                                   "--initial-cluster",
                                   initial_cluster_};
  auto child = spawn_with_output(std::move(args));
  pid_ = child.pid;
  out_fd_ = child.out_fd;
  output_ = std::make_unique<child_output>(out_fd_);
}

void etcd_process::wait_ready() {
  // etcd says so once it has a leader and serves clients (a one-member cluster elects itself).
  if (!output_->wait(30s, [](const std::string& out) {
        return out.find("ready to serve client requests") != std::string::npos;
      })) {
    auto out = output_->text();
    stop();
    throw std::runtime_error("etcd did not start: " + out);
  }
}

void etcd_process::kill_now() {
  if (pid_ > 0) kill(pid_, SIGKILL);
  stop();
}

void etcd_process::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  if (!output_->wait_closed(10s)) kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  output_.reset();  // etcd has exited: its reader is at the end of the pipe
  close(out_fd_);
  out_fd_ = -1;
}

}  // namespace kaiwa::test
