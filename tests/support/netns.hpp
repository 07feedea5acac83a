#pragma once
// A second host for tests that need a network between processes: a network namespace the test
// creates, joined to the test's own by a veth pair with a /30 of 10.213.0.0/16, removed by the
// destructor. cut() takes the link down, so packets are dropped both ways with no reset: a
// partition, as a dead switch or a firewall makes one, not a closed connection. Needs root (CI
// runs as root) and iproute2; `available()` says whether this machine can.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kaiwa::test {

class netns_host {
 public:
  /// Root, `ip` on PATH, and a namespace can be made.
  static bool available();

  /// Creates the namespace and the link, up; throws when it can't. Names carry the test's pid,
  /// so concurrent tests don't collide, and namespaces left by a test that was killed are
  /// removed by the next one.
  netns_host();
  ~netns_host();
  netns_host(const netns_host&) = delete;
  netns_host& operator=(const netns_host&) = delete;

  const std::string& name() const { return name_; }
  /// This side's address on the link, and the namespace's.
  const std::string& outside_address() const { return outside_; }
  const std::string& inside_address() const { return inside_; }

  /// Moves the calling thread into the namespace: the sockets it opens, and the threads it
  /// starts from now on, are the namespace's. Throws when it can't.
  void enter_from_this_thread() const;

  /// The link down (a partition), and up again.
  void cut();
  void heal();

 private:
  std::string name_;
  std::string outside_if_;
  std::string outside_;
  std::string inside_;
};

/// Several hosts on one switch: a namespace per host and one for the switch (a bridge), each
/// host's link and one of the test's own on it, all in a /24 of 10.214.0.0/16 that no route of
/// the test's namespace uses yet; removed by the destructor. cut(i) takes host i's port on the
/// switch down: packets between it and every other host, and the test's namespace, are dropped
/// both ways with no reset, while the others still reach each other and the test. Needs what
/// netns_host needs, and bridges.
class netns_lan {
 public:
  /// Root, `ip` on PATH, and a switch with one host can be made.
  static bool available();

  /// Creates the namespaces and links, up; throws when it can't. Names carry the test's pid
  /// (netns_host's scheme, so its stale-namespace sweep removes a killed test's).
  explicit netns_lan(std::size_t hosts);
  ~netns_lan();
  netns_lan(const netns_lan&) = delete;
  netns_lan& operator=(const netns_lan&) = delete;

  std::size_t size() const { return hosts_.size(); }
  /// The test's address on the switch, and host i's.
  const std::string& outside_address() const { return outside_; }
  std::string address(std::size_t host) const;

  /// Moves the calling thread into host i's namespace (see netns_host).
  void enter_from_this_thread(std::size_t host) const;
  /// Runs `f` on a thread of its own in host i's namespace and waits for it: the sockets it
  /// opens and the processes it starts are the host's. Rethrows what `f` threw.
  void run_inside(std::size_t host, const std::function<void()>& f) const;

  /// Host i's port on the switch down (a partition of host i), and up again.
  void cut(std::size_t host);
  void heal(std::size_t host);

 private:
  void remove();

  std::string name_;     // of the switch's namespace; the hosts' are name_ + "h<i>"
  std::string net_;      // "10.214.N."
  std::string outside_;  // net_ + "1"
  std::vector<std::string> hosts_;
};

/// A TCP forwarder from 127.0.0.1:port() in the test's namespace to 127.0.0.1:`upstream` in
/// host `host`'s namespace of `lan`: how a test's clients reach a process that listens on its
/// own loopback there. One thread accepts, one a connection copies. cut() closes what is open
/// and refuses what comes until heal(). `lan` must outlive it.
class netns_forward {
 public:
  netns_forward(const netns_lan& lan, std::size_t host, std::uint16_t upstream);
  ~netns_forward();
  netns_forward(const netns_forward&) = delete;
  netns_forward& operator=(const netns_forward&) = delete;

  std::uint16_t port() const { return port_; }
  void cut() { cut_ = true; }
  void heal() { cut_ = false; }

 private:
  void serve();
  void pump(int a, int b);

  std::uint16_t upstream_;
  std::uint16_t port_ = 0;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};  // closing the write end wakes every poll: the threads end
  std::atomic<bool> cut_{false};
  std::mutex mtx_;  // with cv_: the connections being copied, whose threads are detached
  std::condition_variable cv_;
  int open_ = 0;
  std::thread thread_;
};

/// Runs `argv` (argv[0] found on PATH), waits; true when it exited with 0. Its output is
/// discarded.
bool run_quietly(const std::vector<std::string>& argv);

}  // namespace kaiwa::test
