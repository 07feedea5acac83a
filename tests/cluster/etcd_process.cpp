#include "tests/cluster/etcd_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <vector>

extern char** environ;

namespace kaiwa::test {

using namespace std::chrono_literals;

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free port");
  ::close(fd);
  return ntohs(a.sin_port);
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
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  int spawned = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (spawned != 0) {
    close(pipefd[0]);
    pid_ = -1;
    throw std::runtime_error("can't start " + args[0]);
  }
  out_fd_ = pipefd[0];
  {
    std::lock_guard lock(mtx_);
    output_.clear();
    closed_ = false;
  }
  reader_ = std::thread([this] {
    char buf[4096];
    for (;;) {
      auto n = read(out_fd_, buf, sizeof buf);
      std::lock_guard lock(mtx_);
      if (n <= 0) {
        closed_ = true;
        cv_.notify_all();
        return;
      }
      output_.append(buf, static_cast<std::size_t>(n));
      cv_.notify_all();
    }
  });
}

void etcd_process::wait_ready() {
  // etcd says so once it has a leader and serves clients (a one-member cluster elects itself).
  std::unique_lock lock(mtx_);
  bool ready = cv_.wait_for(lock, 30s, [&] {
    return closed_ || output_.find("ready to serve client requests") != std::string::npos;
  });
  if (!ready || closed_) {
    auto out = output_;
    lock.unlock();
    stop();
    throw std::runtime_error("etcd did not start: " + out);
  }
}

void etcd_process::stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  {
    std::unique_lock lock(mtx_);
    if (!cv_.wait_for(lock, 10s, [&] { return closed_; })) kill(pid_, SIGKILL);
  }
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  close(out_fd_);
  out_fd_ = -1;
}

}  // namespace kaiwa::test
