#include "tests/support/netns.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <stdexcept>

#include "tests/support/loopback.hpp"

extern char** environ;

namespace kaiwa::test {

namespace {

constexpr const char* name_prefix = "kwt";

/// Namespaces (and switches) this test process made: a netns_host's /30 at
/// 10.213.(pid % 256).(4 n).
std::atomic<unsigned> made{0};

/// Moves the calling thread into the namespace `name`.
void enter(const std::string& name) {
  auto path = "/var/run/netns/" + name;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("can't open " + path);
  int rc = ::setns(fd, CLONE_NEWNET);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("can't enter " + name);
}

/// A third byte N for a switch's 10.214.N.0/24 that no route of the test's namespace uses,
/// starting from the pid's (a concurrent test that picks the same N between this read and its
/// own link is not ruled out, as with netns_host's /30s).
unsigned free_subnet() {
  std::set<unsigned> used;
  std::ifstream routes("/proc/net/route");
  std::string line;
  std::getline(routes, line);  // the header
  while (std::getline(routes, line)) {
    auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    // The destination in hex, in the kernel's (little-endian) byte order: 10.214.N.x.
    auto dest = std::strtoul(line.c_str() + tab + 1, nullptr, 16);
    if ((dest & 0xff) == 10 && ((dest >> 8) & 0xff) == 214) used.insert((dest >> 16) & 0xff);
  }
  auto start = static_cast<unsigned>(::getpid());
  for (unsigned k = 0; k < 256; ++k)
    if (!used.count((start + k) % 256)) return (start + k) % 256;
  throw std::runtime_error("no free /24 in 10.214.0.0/16");
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

/// Removes namespaces named for a test process that no longer runs.
void remove_stale() {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/var/run/netns", ec)) {
    auto n = e.path().filename().string();
    if (!n.starts_with(name_prefix)) continue;
    auto end = n.find('n', 3);
    if (end == std::string::npos) continue;
    auto pid = std::atoi(n.substr(3, end - 3).c_str());
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) run_quietly({"ip", "netns", "del", n});
  }
}

}  // namespace

bool run_quietly(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return false;
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool netns_host::available() {
  if (::geteuid() != 0) return false;
  try {
    netns_host probe;
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

netns_host::netns_host() {
  remove_stale();
  auto pid = static_cast<unsigned>(::getpid());
  auto n = made++ % 64;
  name_ = name_prefix + std::to_string(pid) + "n" + std::to_string(n);
  outside_if_ = name_ + "o";  // at most 3 + 7 + 1 + 2 + 1 = 14 chars: under IFNAMSIZ
  auto inside_if = name_ + "i";
  auto net = "10.213." + std::to_string(pid % 256) + ".";
  outside_ = net + std::to_string(4 * n + 1);
  inside_ = net + std::to_string(4 * n + 2);
  bool ok = run_quietly({"ip", "netns", "add", name_});
  ok = ok && run_quietly({"ip", "link", "add", outside_if_, "type", "veth", "peer", "name",
                          inside_if, "netns", name_});
  ok = ok && run_quietly({"ip", "addr", "add", outside_ + "/30", "dev", outside_if_});
  ok = ok && run_quietly({"ip", "link", "set", outside_if_, "up"});
  ok = ok && run_quietly({"ip", "-n", name_, "addr", "add", inside_ + "/30", "dev", inside_if});
  ok = ok && run_quietly({"ip", "-n", name_, "link", "set", inside_if, "up"});
  ok = ok && run_quietly({"ip", "-n", name_, "link", "set", "lo", "up"});
  if (!ok) {
    run_quietly({"ip", "netns", "del", name_});  // takes the veth pair with it
    throw std::runtime_error("can't make network namespace " + name_);
  }
}

netns_host::~netns_host() { run_quietly({"ip", "netns", "del", name_}); }

void netns_host::enter_from_this_thread() const { enter(name_); }

void netns_host::cut() {
  if (!run_quietly({"ip", "link", "set", outside_if_, "down"}))
    throw std::runtime_error("can't take " + outside_if_ + " down");
}

void netns_host::heal() {
  if (!run_quietly({"ip", "link", "set", outside_if_, "up"}))
    throw std::runtime_error("can't bring " + outside_if_ + " up");
}

bool netns_lan::available() {
  if (::geteuid() != 0) return false;
  try {
    netns_lan probe(1);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

netns_lan::netns_lan(std::size_t hosts) {
  remove_stale();
  name_ = name_prefix + std::to_string(::getpid()) + "n" + std::to_string(made++ % 64);
  net_ = "10.214." + std::to_string(free_subnet()) + ".";
  outside_ = net_ + "1";
  auto outside_if = name_ + "s";  // the test's link, named like netns_host's: under IFNAMSIZ
  // Inside the switch's namespace, ports: "t" the test's, "p<i>" host i's; in host i's, "eth0".
  bool ok = run_quietly({"ip", "netns", "add", name_});
  ok = ok && run_quietly({"ip", "-n", name_, "link", "add", "name", "sw", "type", "bridge"});
  ok = ok && run_quietly({"ip", "-n", name_, "link", "set", "dev", "sw", "up"});
  ok = ok && run_quietly({"ip", "link", "add", "name", outside_if, "type", "veth", "peer", "name",
                          "t", "netns", name_});
  ok = ok && run_quietly({"ip", "-n", name_, "link", "set", "dev", "t", "master", "sw", "up"});
  ok = ok && run_quietly({"ip", "addr", "add", outside_ + "/24", "dev", outside_if});
  ok = ok && run_quietly({"ip", "link", "set", "dev", outside_if, "up"});
  for (std::size_t i = 0; ok && i < hosts; ++i) {
    auto host = name_ + "h" + std::to_string(i);
    auto port = "p" + std::to_string(i);
    hosts_.push_back(host);
    ok = run_quietly({"ip", "netns", "add", host});
    ok = ok && run_quietly({"ip", "-n", name_, "link", "add", "name", port, "type", "veth", "peer",
                            "name", "eth0", "netns", host});
    ok = ok && run_quietly({"ip", "-n", name_, "link", "set", "dev", port, "master", "sw", "up"});
    ok = ok && run_quietly({"ip", "-n", host, "addr", "add", address(i) + "/24", "dev", "eth0"});
    ok = ok && run_quietly({"ip", "-n", host, "link", "set", "dev", "eth0", "up"});
    ok = ok && run_quietly({"ip", "-n", host, "link", "set", "dev", "lo", "up"});
  }
  if (!ok) {
    remove();
    throw std::runtime_error("can't make the switch " + name_ + " and its hosts");
  }
}

netns_lan::~netns_lan() { remove(); }

void netns_lan::remove() {
  // The test's link first, at once: a namespace goes in the background, and with it its end of
  // the link and the route to this /24.
  run_quietly({"ip", "link", "del", "dev", name_ + "s"});
  for (auto& h : hosts_) run_quietly({"ip", "netns", "del", h});
  run_quietly({"ip", "netns", "del", name_});
}

std::string netns_lan::address(std::size_t host) const { return net_ + std::to_string(host + 2); }

void netns_lan::enter_from_this_thread(std::size_t host) const { enter(hosts_.at(host)); }

void netns_lan::run_inside(std::size_t host, const std::function<void()>& f) const {
  std::exception_ptr failed;
  std::thread([&] {
    try {
      enter_from_this_thread(host);
      f();
    } catch (...) {
      failed = std::current_exception();
    }
  }).join();
  if (failed) std::rethrow_exception(failed);
}

void netns_lan::cut(std::size_t host) {
  if (!run_quietly({"ip", "-n", name_, "link", "set", "dev", "p" + std::to_string(host), "down"}))
    throw std::runtime_error("can't take host " + std::to_string(host) + "'s port down");
}

void netns_lan::heal(std::size_t host) {
  if (!run_quietly({"ip", "-n", name_, "link", "set", "dev", "p" + std::to_string(host), "up"}))
    throw std::runtime_error("can't bring host " + std::to_string(host) + "'s port up");
}

netns_forward::netns_forward(const netns_lan& lan, std::size_t host, std::uint16_t upstream)
    : upstream_(upstream) {
  listen_fd_ = listen_on_loopback(port_);  // in the test's namespace: the calling thread's
  // Neither end may leak into the processes the test starts (one would keep it open).
  ::fcntl(listen_fd_, F_SETFD, FD_CLOEXEC);
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("pipe failed");
  }
  std::promise<void> entered;
  auto inside = entered.get_future();
  thread_ = std::thread([this, &lan, host, &entered] {
    try {
      lan.enter_from_this_thread(host);
    } catch (...) {
      entered.set_exception(std::current_exception());
      return;
    }
    entered.set_value();
    serve();
  });
  try {
    inside.get();
  } catch (...) {
    thread_.join();
    ::close(stop_pipe_[0]);
    ::close(stop_pipe_[1]);
    ::close(listen_fd_);
    throw;
  }
}

netns_forward::~netns_forward() {
  cut_ = true;
  ::close(stop_pipe_[1]);
  thread_.join();
  {
    std::unique_lock lock(mtx_);
    cv_.wait(lock, [&] { return open_ == 0; });
  }
  ::close(stop_pipe_[0]);
  ::close(listen_fd_);
}

void netns_forward::serve() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if ((::poll(p, 2, -1) < 0 && errno != EINTR) || p[1].revents) return;
    if (!p[0].revents) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // This thread is in the host's namespace: so is the socket it opens.
    int up = cut_ ? -1 : ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto a = loopback(upstream_);
    if (up < 0 || ::connect(up, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (up >= 0) ::close(up);
      ::close(fd);
      continue;
    }
    // A reader that stops reading for long ends its connection rather than the destructor's
    // wait: a send blocks at most this long.
    timeval limit{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    ::setsockopt(up, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    {
      std::lock_guard lock(mtx_);
      ++open_;
    }
    std::thread([this, fd, up] { pump(fd, up); }).detach();
  }
}

void netns_forward::pump(int a, int b) {
  char buf[16384];
  while (!cut_) {
    pollfd p[3] = {{a, POLLIN, 0}, {b, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    // The timeout: a cut is seen within 50 ms.
    if ((::poll(p, 3, 50) < 0 && errno != EINTR) || p[2].revents) break;
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
  // Notified under the lock: the destructor can't go on (and destroy cv_) before this returns.
  std::lock_guard lock(mtx_);
  --open_;
  cv_.notify_all();
}

}  // namespace kaiwa::test
