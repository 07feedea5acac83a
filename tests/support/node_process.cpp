#include "tests/support/node_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
// The listener interface below (node_logs_on_failure).
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <thread>

namespace kaiwa::test {

using namespace std::chrono_literals;

namespace {

// What the nodes of the running test case wrote, so that a failed test shows their logs (a CI
// run's only record of why a cluster test failed): at its first failed assertion, the last
// 48 KiB of every node still running and of the last 12 that ended in this test case.
constexpr std::size_t shown_tail = 48 * 1024;
std::mutex nodes_mtx;
std::set<node_process*> live_nodes;
std::vector<std::pair<std::string, std::string>> ended_nodes;  // the node, its output's tail
bool nodes_shown = false;                                      // for this test case

std::string tail_of(const std::string& text) {
  return text.size() > shown_tail ? text.substr(text.size() - shown_tail) : text;
}

void show(const std::string& node, const std::string& tail) {
  std::fprintf(stderr, "---- %s wrote (its last %zu bytes) ----\n%s\n---- end of %s ----\n",
               node.c_str(), tail.size(), tail.c_str(), node.c_str());
}

class node_logs_on_failure : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo&) override {
    std::lock_guard lock(nodes_mtx);
    ended_nodes.clear();
    nodes_shown = false;
  }
  bool assertionEnded(const Catch::AssertionStats& stats) override {
    if (stats.assertionResult.isOk()) return true;
    std::lock_guard lock(nodes_mtx);
    if (nodes_shown) return true;
    nodes_shown = true;
    for (auto& [node, tail] : ended_nodes) show(node, tail);
    for (auto* n : live_nodes) show(n->name() + " (running)", tail_of(n->output()));
    return true;
  }
};

/// A node built with sanitizers (the asan preset) prints their reports and, for UBSan
/// (-fno-sanitize-recover), aborts. Tests must not pass over them unseen: an abort after a
/// test's last request, or a report on a path no assertion covers, would otherwise go unnoticed.
void check_no_sanitizer_report(const std::string& output) {
  for (const char* marker : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"}) {
    auto at = output.find(marker);
    if (at == std::string::npos) continue;
    // From the start of its line: UBSan puts the source location before the marker.
    auto line = output.rfind('\n', at);
    FAIL_CHECK("sanitizer report from kaiwa:\n"
               << output.substr(line == std::string::npos ? 0 : line + 1));
  }
}

}  // namespace

CATCH_REGISTER_LISTENER(node_logs_on_failure)

node_process::node_process(const std::string& data_dir, std::vector<std::string> extra) {
  std::vector<std::string> args = {KAIWA_BINARY, "start",       "--listen",   "127.0.0.1:0",
                                   "--admin",    "127.0.0.1:0", "--data-dir", data_dir};
  args.insert(args.end(), extra.begin(), extra.end());
  auto child = spawn_with_output(std::move(args));
  pid_ = child.pid;
  out_fd_ = child.out_fd;

  static const std::regex ready(
      R"(listening public=[^:]+:(\d+) admin=[^:]+:(\d+)(?: cluster=[^:]+:(\d+))?\n)");
  auto deadline = std::chrono::steady_clock::now() + 20s;
  std::string seen;  // what the node wrote before it said where it listens
  std::smatch m;
  while (!std::regex_search(seen, m, ready)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{out_fd_, POLLIN, 0};
    if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
      throw std::runtime_error("node did not start: " + seen);
    char buf[4096];
    auto n = read(out_fd_, buf, sizeof buf);
    if (n <= 0) throw std::runtime_error("node exited: " + seen);
    seen.append(buf, n);
  }
  port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
  admin_port_ = static_cast<std::uint16_t>(std::stoi(m[2]));
  if (m[3].matched) cluster_port_ = static_cast<std::uint16_t>(std::stoi(m[3]));
  output_ = std::make_unique<child_output>(out_fd_, std::move(seen));
  std::lock_guard lock(nodes_mtx);
  live_nodes.insert(this);
}

std::string node_process::name() const {
  return "node public 127.0.0.1:" + std::to_string(port_) + " admin " + std::to_string(admin_port_);
}

node_process::~node_process() {
  // A graceful stop: the shutdown path runs after every test, and under ASan so does the leak
  // check at exit, whose report stop() turns into a failure.
  {
    std::lock_guard lock(nodes_mtx);
    live_nodes.erase(this);
  }
  if (pid_ > 0) stop(SIGTERM);
  if (output_) {
    std::lock_guard lock(nodes_mtx);
    if (ended_nodes.size() >= 12) ended_nodes.erase(ended_nodes.begin());
    ended_nodes.emplace_back(name(), tail_of(output_->text()));
  }
  output_.reset();  // the node has exited: its reader is at the end of the pipe
  if (out_fd_ >= 0) close(out_fd_);
}

std::string node_process::output() { return output_->text(); }

bool node_process::wait_output(const std::string& text, std::chrono::milliseconds limit,
                               std::size_t from) {
  return output_->wait(
      limit, [&](const std::string& out) { return out.find(text, from) != std::string::npos; });
}

void node_process::signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

void node_process::pause() {
  signal(SIGSTOP);
  // Every thread's /proc/PID/task/TID/stat reads "tid (comm) T ..." once it has stopped.
  auto stopped = [&] {
    std::error_code ec;
    for (auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      auto paren = line.rfind(')');
      if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] != 'T')
        return false;
    }
    return !ec;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!stopped()) {
    if (std::chrono::steady_clock::now() > deadline) FAIL("node " << pid_ << " did not stop");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling the threads' state
  }
}

int node_process::stop(int sig) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  {
    // The node's output closes when it exits; give it 20 s, then make sure.
    if (!output_->wait_closed(20s)) kill(pid_, SIGKILL);
  }
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  check_no_sanitizer_report(output_->text());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

command_result run_kaiwa(const std::vector<std::string>& args, const std::string& stdin_from) {
  std::string cmd = KAIWA_BINARY;
  for (auto& a : args) cmd += " '" + a + "'";
  if (!stdin_from.empty()) cmd += " <'" + stdin_from + "'";
  cmd += " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed");
  char buf[4096];
  while (auto n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int status = pclose(p);
  check_no_sanitizer_report(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, std::move(out)};
}

command_result run_kaiwa_on_terminal(const std::vector<std::string>& args,
                                     const std::string& wait_for, std::chrono::milliseconds limit) {
  std::vector<std::string> all = {KAIWA_BINARY};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  int terminal = -1;
  winsize size{40, 120, 0, 0};
  pid_t pid = forkpty(&terminal, nullptr, nullptr, &size);
  if (pid < 0) throw std::runtime_error("forkpty failed");
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  std::string out;
  bool interrupted = false;
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (!interrupted &&
        (out.find(wait_for) != std::string::npos || std::chrono::steady_clock::now() > deadline)) {
      ::kill(pid, SIGINT);
      interrupted = true;
      deadline = std::chrono::steady_clock::now() + limit;
    } else if (interrupted && std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);  // ignored Ctrl-C: the test fails on the status below
    }
    pollfd p{terminal, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    auto n = ::read(terminal, buf, sizeof buf);
    if (n <= 0) break;  // EIO: the program exited and its side of the terminal closed
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(terminal);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), std::move(out)};
}

std::pair<int, std::string> http_call(
    std::uint16_t port, const std::string& method, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::vector<std::pair<std::string, std::string>>* reply_headers) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (auto& [name, value] : headers) req.set(name, value);
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  if (reply_headers)
    for (auto& field : res)
      reply_headers->emplace_back(std::string(field.name_string()), std::string(field.value()));
  return {res.result_int(), res.body()};
}

int tcp_connect(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

std::pair<int, std::string> http_get(std::uint16_t port, const std::string& target) {
  return http_call(port, "GET", target, {});
}

std::pair<int, std::string> http_post(std::uint16_t port, const std::string& target) {
  return http_call(port, "POST", target, {{"Kaiwa-Admin", "1"}});
}

}  // namespace kaiwa::test
