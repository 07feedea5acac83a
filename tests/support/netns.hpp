#pragma once
// A second host for tests that need a network between processes: a network namespace the test
// creates, joined to the test's own by a veth pair with a /30 of 10.213.0.0/16, removed by the
// destructor. cut() takes the link down, so packets are dropped both ways with no reset: a
// partition, as a dead switch or a firewall makes one, not a closed connection. Needs root (CI
// runs as root) and iproute2; `available()` says whether this machine can.

#include <string>
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

/// Runs `argv` (argv[0] found on PATH), waits; true when it exited with 0. Its output is
/// discarded.
bool run_quietly(const std::vector<std::string>& argv);

}  // namespace kaiwa::test
