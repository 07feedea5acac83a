#pragma once
// Facts about this process that the node and the bench tool both need.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace kaiwa {

/// Raises the open-files limit to the hard limit; returns the limit now in force.
std::uint64_t raise_fd_limit() noexcept;

/// The CPUs this process may use, what thread pools are sized by (the CAF scheduler's workers,
/// the gateway's I/O lanes) unless configured. Not hardware_concurrency(), which counts every
/// online CPU: pinned to one core (`taskset -c 0`), or in a container with a CPU quota, a node
/// would run more busy threads than it gets cores, and they would only contend.
struct cpu_budget {
  unsigned cpus = 1;      // min(affinity, the quota rounded up), at least 1
  unsigned affinity = 0;  // CPUs in the affinity mask (sched_getaffinity); 0 when unknown
  unsigned online = 0;    // std::thread::hardware_concurrency()
  /// The cgroup CPU quota, in CPUs (v2 cpu.max's or v1 cpu.cfs_quota_us's quota / period), the
  /// least along this process's cgroups and their ancestors; nullopt when none is set.
  std::optional<double> quota;
};
cpu_budget available_cpus();

/// cgroup v2's cpu.max ("QUOTA PERIOD", microseconds): QUOTA / PERIOD CPUs; nullopt for "max"
/// (no quota) or text that isn't two positive integers.
std::optional<double> parse_cpu_max(std::string_view text);
/// The budget from its parts: the quota rounded up (0.5 CPU still needs a thread), capped by
/// the affinity mask (or, unknown, the online CPUs), at least 1.
unsigned budget_cpus(unsigned affinity, std::optional<double> quota, unsigned online);

/// Names the calling thread as `top -H`, `ps -L` and perf show it (Linux keeps 15 bytes:
/// longer names are cut). The node's own threads are named `kaiwa-<job>`, CAF's `caf.*`.
void name_this_thread(std::string_view name) noexcept;

/// A thread that names itself `name` (as above), then runs `run`: how the node starts its own.
template <class Run>
std::thread named_thread(std::string name, Run run) {
  return std::thread([name = std::move(name), run = std::move(run)]() mutable {
    name_this_thread(name);
    run();
  });
}

}  // namespace kaiwa
