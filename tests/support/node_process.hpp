#pragma once
// Runs a real `kaiwa start` process on loopback ports picked by the OS, for integration tests.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/child_output.hpp"
#include "tests/support/temp_dir.hpp"

namespace kaiwa::test {

class node_process {
 public:
  /// Starts a node on `data_dir` with `extra` flags and waits (bounded) until it listens.
  explicit node_process(const std::string& data_dir, std::vector<std::string> extra = {});
  ~node_process();

  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  std::uint16_t port() const { return port_; }
  std::uint16_t admin_port() const { return admin_port_; }
  /// The cluster listener's port; 0 for a node started without --cluster.
  std::uint16_t cluster_port() const { return cluster_port_; }
  /// The process id while it runs.
  int pid() const { return pid_; }
  /// Names the node in a failed test's output: its public and admin ports.
  std::string name() const;

  /// Sends `sig` and waits (bounded) for the exit; returns the exit status (128+sig if killed).
  int stop(int sig);
  /// Everything the node printed so far.
  std::string output();
  /// Waits until the node's output (from byte `from` on: what it wrote after output() was that
  /// long) contains `text`, at most `limit`; true if it does.
  bool wait_output(const std::string& text, std::chrono::milliseconds limit, std::size_t from = 0);
  /// Sends `sig` (SIGHUP: reload) without waiting for anything.
  void signal(int sig);
  /// Sends SIGSTOP and waits (bounded) until the kernel reports the node stopped: on a loaded
  /// machine a stop signal can take effect after a request sent right after it was answered.
  void pause();

 private:
  int pid_ = -1;
  int out_fd_ = -1;
  // Read all along, so that a node logging a lot never blocks on a full pipe.
  std::unique_ptr<child_output> output_;
  std::uint16_t port_ = 0;
  std::uint16_t admin_port_ = 0;
  std::uint16_t cluster_port_ = 0;
};

struct command_result {
  int status = -1;     // the exit status
  std::string output;  // stdout and stderr
};

/// Runs the kaiwa binary with `args` to completion; its stdin is the test's, or the file
/// `stdin_from` when given (e.g. /dev/null: not a terminal).
command_result run_kaiwa(const std::vector<std::string>& args, const std::string& stdin_from = {});

/// Runs the kaiwa binary on a pseudo-terminal (so that it sees a terminal on stdout), presses
/// Ctrl-C (SIGINT) once its output contains `wait_for` or after `limit`, and waits (bounded by
/// `limit` again) for it to exit; the output is everything it wrote to the terminal.
command_result run_kaiwa_on_terminal(const std::vector<std::string>& args,
                                     const std::string& wait_for, std::chrono::milliseconds limit);

/// A plain TCP connection to 127.0.0.1:port that sends nothing (the test's end of it, to close);
/// -1 on failure.
int tcp_connect(std::uint16_t port);

/// A plain HTTP GET to 127.0.0.1:port; returns the status code and the body.
std::pair<int, std::string> http_get(std::uint16_t port, const std::string& target);
/// A POST as the admin CLI sends it (with the Kaiwa-Admin header).
std::pair<int, std::string> http_post(std::uint16_t port, const std::string& target);
/// Any request, with these headers (Host is 127.0.0.1 unless one is given); the response's
/// headers into `reply_headers` when given.
std::pair<int, std::string> http_call(
    std::uint16_t port, const std::string& method, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::vector<std::pair<std::string, std::string>>* reply_headers = nullptr);

}  // namespace kaiwa::test
