#include "core/process.hpp"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>

#include <charconv>
#include <cmath>
#include <fstream>
#include <string>
#include <thread>

namespace kaiwa {

std::uint64_t raise_fd_limit() noexcept {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

namespace {

std::optional<std::uint64_t> positive(std::string_view s) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v == 0) return std::nullopt;
  return v;
}

/// Reads one line of a file; empty when it can't be read.
std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

/// Keeps in `least` the smaller of it and `q` (either may be none).
void keep_least(std::optional<double>& least, std::optional<double> q) {
  if (q && (!least || *q < *least)) least = q;
}

/// The least of `quota_at(dir)` from `path` (a cgroup, "/a/b") up to the root: a parent's
/// limit holds for every child (a container's quota is often set a level above the process).
template <class QuotaAt>
std::optional<double> least_up(std::string path, QuotaAt quota_at) {
  std::optional<double> least;
  for (;;) {
    keep_least(least, quota_at(path == "/" ? std::string() : path));
    if (path == "/" || path.empty()) break;
    auto slash = path.rfind('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
  return least;
}

/// The CPU quota of this process's cgroups, v2 (cpu.max, where the unified hierarchy is mounted
/// at /sys/fs/cgroup) or v1 (cpu.cfs_quota_us / cpu.cfs_period_us under /sys/fs/cgroup/cpu).
std::optional<double> cgroup_quota() {
  std::ifstream in("/proc/self/cgroup");
  std::optional<double> least;
  for (std::string line; std::getline(in, line);) {
    // "ID:CONTROLLERS:PATH"; v2's line is "0::PATH".
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos || b + 1 >= line.size() ||
        line[b + 1] != '/')
      continue;
    auto controllers = std::string_view(line).substr(a + 1, b - a - 1);
    auto path = line.substr(b + 1);
    if (controllers.empty()) {
      keep_least(least, least_up(path, [](const std::string& dir) {
                   return parse_cpu_max(first_line("/sys/fs/cgroup" + dir + "/cpu.max"));
                 }));
      continue;
    }
    bool cpu = false;
    for (std::size_t at = 0; at <= controllers.size();) {
      auto comma = std::min(controllers.find(',', at), controllers.size());
      cpu = cpu || controllers.substr(at, comma - at) == "cpu";
      at = comma + 1;
    }
    if (!cpu) continue;
    keep_least(least, least_up(path, [](const std::string& dir) -> std::optional<double> {
                 auto base = "/sys/fs/cgroup/cpu" + dir;
                 return parse_cpu_max(first_line(base + "/cpu.cfs_quota_us") + ' ' +
                                      first_line(base + "/cpu.cfs_period_us"));
               }));
  }
  return least;
}

}  // namespace

std::optional<double> parse_cpu_max(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  auto space = text.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto quota = positive(text.substr(0, space));
  auto period = positive(text.substr(space + 1));
  if (!quota || !period) return std::nullopt;  // "max PERIOD": no quota
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

unsigned budget_cpus(unsigned affinity, std::optional<double> quota, unsigned online) {
  unsigned cpus = affinity ? affinity : online;
  if (quota) {
    // A quota's CPUs, rounded up; bounded so that a huge quota can't overflow the cast.
    auto q = static_cast<unsigned>(std::ceil(std::min(*quota, 65536.0)));
    if (cpus == 0 || q < cpus) cpus = q;
  }
  return cpus ? cpus : 1;
}

cpu_budget available_cpus() {
  cpu_budget b;
  b.online = std::thread::hardware_concurrency();
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0)
    b.affinity = static_cast<unsigned>(CPU_COUNT(&set));
  b.quota = cgroup_quota();
  b.cpus = budget_cpus(b.affinity, b.quota, b.online);
  return b;
}

void name_this_thread(std::string_view name) noexcept {
  char buf[16] = {};
  name.copy(buf, sizeof buf - 1);
  pthread_setname_np(pthread_self(), buf);
}

}  // namespace kaiwa
