// A few seconds of every `kaiwa bench` scenario against a real node, so that the tool and its
// checker can't rot. Figures are not asserted here (docs/benchmarks.md records them); a run
// must finish cleanly: exit 0, its report printed, no violations, no errors.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <sstream>

#include "tests/support/node_process.hpp"
#include "tests/support/tls.hpp"

using namespace kaiwa::test;

namespace {

command_result bench(const node_process& node, std::vector<std::string> args) {
  args.insert(args.begin(), "bench");
  std::vector<std::string> common = {"--target",   "127.0.0.1:" + std::to_string(node.port()),
                                     "--admin",    "127.0.0.1:" + std::to_string(node.admin_port()),
                                     "--duration", "1",
                                     "--warmup",   "0.5",
                                     "--quiet",    "--json"};
  args.insert(args.end(), common.begin(), common.end());
  return run_kaiwa(args);
}

}  // namespace

TEST_CASE("every bench scenario runs clean against a real node") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  struct scenario {
    std::vector<std::string> args;
    const char* name;
  };
  std::vector<scenario> scenarios = {
      {{"fanout", "--subscribers", "50"}, "fanout"},
      {{"rooms", "--rooms", "20"}, "rooms"},
      {{"conns", "--connections", "200", "--per-room", "20", "--procs", "2"}, "conns"},
      {{"history", "--rooms", "2", "--events", "300", "--clients", "4"}, "history"},
      {{"resume", "--clients", "50", "--rooms", "5", "--rate", "500", "--away", "0.2"}, "resume"},
      {{"chat", "--users", "50", "--rooms", "20", "--send-rate", "2"}, "chat"},
  };
  for (auto& s : scenarios) {
    INFO(s.name);
    auto r = bench(node, s.args);
    INFO(r.output);
    CHECK(r.status == 0);
    CHECK(r.output.find(std::string(R"({"scenario":")") + s.name) != std::string::npos);
    CHECK(r.output.find("VIOLATION") == std::string::npos);
  }
}

TEST_CASE("bench prints one progress line a second, in order, for its whole duration") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  for (auto args : std::vector<std::vector<std::string>>{
           {"resume", "--clients", "20", "--rooms", "4", "--rate", "200", "--away", "0.2"},
           {"conns", "--connections", "100", "--per-room", "10", "--procs", "2"}}) {
    INFO(args[0]);
    args.insert(args.begin(), "bench");
    for (std::string flag : {"--target", "--admin"}) {
      args.push_back(flag);
      args.push_back("127.0.0.1:" +
                     std::to_string(flag == "--target" ? node.port() : node.admin_port()));
    }
    for (std::string a : {"--duration", "3", "--warmup", "0.5"}) args.push_back(a);
    auto r = run_kaiwa(args);
    INFO(r.output);
    CHECK(r.status == 0);
    // "bench:    2.0s <what is going on>"
    std::vector<double> times;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      char* end = nullptr;
      if (!line.starts_with("bench: ")) continue;
      auto t = std::strtod(line.c_str() + 7, &end);
      if (end == line.c_str() + 7 || *end != 's') continue;  // not a progress line
      CHECK(std::string_view(end + 1).find_first_not_of(' ') != std::string_view::npos);
      if (!times.empty()) CHECK(t >= times.back() + 0.9);
      times.push_back(t);
    }
    REQUIRE_FALSE(times.empty());
    CHECK(times.back() >= 3.0);  // it ran its duration, and said so every second
    CHECK(times.size() + 1 >= static_cast<std::size_t>(times.back()));
  }
}

TEST_CASE("bench speaks wss:// to a node with a certificate") {
  temp_dir dir;
  auto cert = dir.str() + "/cert.pem", key = dir.str() + "/key.pem";
  write_self_signed_cert(cert, key, "bench");
  node_process node(dir.str() + "/data", {"--tls-cert", cert, "--tls-key", key});
  auto r = bench(node, {"fanout", "--subscribers", "20", "--tls"});
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find(R"("delivered events/s":0.000)") == std::string::npos);
  CHECK(r.output.find(R"({"scenario":"fanout")") != std::string::npos);
  CHECK(bench(node, {"fanout", "--subscribers", "2"}).status != 0);  // plain ws:// can't
}

TEST_CASE("bench fails at once, in one line, when nothing accepts connections at the target") {
  // A port bound and not listening: connections to it are refused, and no one else takes it.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  auto target = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  for (auto scenario : {"chat", "resume", "rooms"}) {
    auto started = std::chrono::steady_clock::now();
    auto r =
        run_kaiwa({"bench", scenario, "--target", target, "--admin", target, "--duration", "1"});
    INFO(scenario << ": " << r.output);
    CHECK(r.status == 1);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
    auto refusals = std::count(r.output.begin(), r.output.end(), '\n');
    CHECK(refusals <= 3);
    CHECK(r.output.find("could not connect") != std::string::npos);
  }
  ::close(fd);
}

TEST_CASE("bench stops at once, saying why, when the node refuses its texts as too large") {
  temp_dir dir;
  node_process node(dir.str() + "/data", {"--max-message-bytes", "4096"});
  for (auto scenario : {"rooms", "fanout"}) {
    auto started = std::chrono::steady_clock::now();
    // The node answers too_large without the id it couldn't read: before, the run waited out
    // its 30 s drain for answers that never came.
    auto r = bench(node, {scenario, "--payload", "8000", "--rate", "100"});
    INFO(scenario << ": " << r.output);
    CHECK(r.status == 1);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
    CHECK(r.output.find("refuses 8000-byte texts as too_large") != std::string::npos);
  }
}

TEST_CASE("bench refuses targets beyond loopback") {
  auto r = run_kaiwa({"bench", "rooms", "--target", "10.1.2.3:8080"});
  CHECK(r.status != 0);
  CHECK(r.output.find("loopback") != std::string::npos);
}

namespace {

/// A figure of a `--json` report; -1 when absent.
double figure(const std::string& report, const std::string& name) {
  auto key = "\"" + name + "\":";
  auto at = report.find(key);
  return at == std::string::npos ? -1 : std::strtod(report.c_str() + at + key.size(), nullptr);
}

}  // namespace

TEST_CASE("bench search loads a corpus through send and finds it") {
  temp_dir dir;
  node_process node(dir.str() + "/data");
  auto r = bench(node, {"search", "--messages", "2000", "--rooms", "50", "--users", "20",
                        "--rounds", "2", "--index-timeout", "60"});
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find(R"({"scenario":"search")") != std::string::npos);
  CHECK(figure(r.output, "load acked msgs/s") > 0);
  CHECK(figure(r.output, "queries with hits") > 0);
  CHECK(r.output.find(R"("kaiwa search":{"count":)") != std::string::npos);
}

TEST_CASE("bench search's offline load is indexed by the node's catch-up and found") {
  temp_dir dir;
  auto data = dir.str() + "/data";
  std::vector<std::string> corpus = {"--messages", "2000", "--rooms", "50", "--users", "20"};
  auto args = corpus;
  args.insert(args.begin(), {"bench", "search", "--load", "offline", "--data-dir", data, "--json"});
  auto loaded = run_kaiwa(args);
  INFO(loaded.output);
  REQUIRE(loaded.status == 0);
  CHECK(figure(loaded.output, "events") == 2050);  // a `created` event per room

  node_process node(data);
  args = corpus;
  args.insert(args.begin(), {"search", "--load", "none", "--rounds", "2", "--index-timeout", "60"});
  auto r = bench(node, args);
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(figure(r.output, "events applied") >= 2000);
  CHECK(figure(r.output, "queries with hits") > 0);
}
