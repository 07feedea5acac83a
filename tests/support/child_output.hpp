#pragma once
// What a child process the tests started writes (its stdout and stderr on one pipe), read all
// along on a thread of its own (a full pipe would block the child), for tests to wait on.

#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace kaiwa::test {

struct spawned_child {
  pid_t pid = -1;
  int out_fd = -1;  // its stdout and stderr, one pipe
};

/// Starts `args[0]` (a path) with `args`, its stdout and stderr on one pipe; throws when it
/// can't.
inline spawned_child spawn_with_output(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  spawned_child c;
  int failed = posix_spawn(&c.pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (failed != 0) {
    ::close(pipefd[0]);
    throw std::runtime_error("can't start " + args[0]);
  }
  c.out_fd = pipefd[0];
  return c;
}

class child_output {
 public:
  /// Reads `fd` until the child closes its end; `already`: what the caller read from it first.
  child_output(int fd, std::string already = {}) : text_(std::move(already)) {
    reader_ = std::thread([this, fd] {
      char buf[4096];
      for (;;) {
        auto n = ::read(fd, buf, sizeof buf);
        std::lock_guard lock(mtx_);
        if (n <= 0) {
          closed_ = true;
          cv_.notify_all();
          return;
        }
        text_.append(buf, static_cast<std::size_t>(n));
        cv_.notify_all();
      }
    });
  }
  /// Joins the reader: call once the child has exited (or its end is closed), not before.
  ~child_output() { reader_.join(); }
  child_output(const child_output&) = delete;
  child_output& operator=(const child_output&) = delete;

  std::string text() {
    std::lock_guard lock(mtx_);
    return text_;
  }
  /// Waits at most `limit` until `done(text)` holds or the child has closed its end; whether
  /// `done` held.
  bool wait(std::chrono::milliseconds limit, const std::function<bool(const std::string&)>& done) {
    std::unique_lock lock(mtx_);
    cv_.wait_for(lock, limit, [&] { return closed_ || done(text_); });
    return done(text_);
  }
  /// Waits at most `limit` for the child to close its end (it exited); whether it did.
  bool wait_closed(std::chrono::milliseconds limit) {
    std::unique_lock lock(mtx_);
    return cv_.wait_for(lock, limit, [&] { return closed_; });
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::string text_;
  bool closed_ = false;
  std::thread reader_;
};

}  // namespace kaiwa::test
