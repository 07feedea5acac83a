#include "tests/support/netns.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

extern char** environ;

namespace kaiwa::test {

namespace {

constexpr const char* name_prefix = "kwt";

/// Namespaces this test process made: a /30 each, at 10.213.(pid % 256).(4 n).
std::atomic<unsigned> made{0};

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

void netns_host::enter_from_this_thread() const {
  auto path = "/var/run/netns/" + name_;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("can't open " + path);
  int rc = ::setns(fd, CLONE_NEWNET);
  ::close(fd);
  if (rc != 0) throw std::runtime_error("can't enter " + name_);
}

void netns_host::cut() {
  if (!run_quietly({"ip", "link", "set", outside_if_, "down"}))
    throw std::runtime_error("can't take " + outside_if_ + " down");
}

void netns_host::heal() {
  if (!run_quietly({"ip", "link", "set", outside_if_, "up"}))
    throw std::runtime_error("can't bring " + outside_if_ + " up");
}

}  // namespace kaiwa::test
