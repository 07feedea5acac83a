#pragma once
// What a child process the tests started writes (its stdout and stderr on one pipe), read all
// along on a thread of its own (a full pipe would block the child), for tests to wait on.

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace kaiwa::test {

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
