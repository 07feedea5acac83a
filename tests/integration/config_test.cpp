// `kaiwa start` configuration: flags win over the config file, which wins over KAIWA_* variables.

#include <catch2/catch.hpp>

#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/process.hpp"
#include "tests/support/node_process.hpp"

using namespace kaiwa::test;

namespace {

/// A command line that must be refused as a usage error (exit 2) with `said` in its output.
struct usage_error {
  std::vector<std::string> args;
  std::string said;
};

void check_usage_errors(const std::vector<usage_error>& cases) {
  for (auto& c : cases) {
    auto r = run_kaiwa(c.args);
    INFO(r.output);
    CHECK(r.status == 2);
    CHECK(r.output.find(c.said) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("flags win over the config file, which wins over KAIWA_ variables") {
  temp_dir dir;
  auto file = dir.file("kaiwa.toml", "[start]\nnode-id = \"from-file\"\nidle-timeout = 9\n");
  setenv("KAIWA_NODE_ID", "from-env", 1);
  setenv("KAIWA_RATE_LIMIT", "60", 1);
  setenv("KAIWA_IDLE_TIMEOUT", "8", 1);
  auto r = run_kaiwa({"start", "--config", file, "--idle-timeout", "7", "--print-config"});
  unsetenv("KAIWA_NODE_ID");
  unsetenv("KAIWA_RATE_LIMIT");
  unsetenv("KAIWA_IDLE_TIMEOUT");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("node-id=\"from-file\"") != std::string::npos);
  CHECK(r.output.find("rate-limit=60") != std::string::npos);
  CHECK(r.output.find("idle-timeout=7") != std::string::npos);
}

TEST_CASE("a node started from a config file uses it") {
  temp_dir dir;
  auto file = dir.file("kaiwa.toml", "[start]\nnode-id = \"configured\"\n");
  node_process node(dir.str() + "/data", {"--config", file});
  CHECK(http_get(node.admin_port(), "/admin/v1/status").second.find(R"("node":"configured")") !=
        std::string::npos);
}

TEST_CASE("unknown keys and bad values fail start-up with the key named") {
  temp_dir dir;
  auto file = dir.file("a.toml", "[start]\nnode-id = \"x\"\n  listen-port = 1\n");
  auto unknown = run_kaiwa({"start", "--config", file});
  CHECK(unknown.status == 2);
  CHECK(unknown.output.find("kaiwa: unknown key 'listen-port' in [start] of " + file +
                            ", line 3") != std::string::npos);
  CHECK(unknown.output.find("INI was not able") == std::string::npos);
  auto section =
      run_kaiwa({"start", "--config", dir.file("s.toml", "\n[strat]\nlisten = \"x\"\n")});
  CHECK(section.status == 2);
  CHECK(section.output.find("kaiwa: unknown section [strat] in " + dir.str() +
                            "/s.toml, line 2; kaiwa start reads its keys (the flags' names) "
                            "under [start]") != std::string::npos);
  auto top = run_kaiwa({"start", "--config", dir.file("t.toml", "listen = \"x\"\n[start]\n")});
  CHECK(top.status == 2);
  CHECK(top.output.find("kaiwa: unknown key 'listen' of " + dir.str() +
                        "/t.toml, line 1; the keys are the flags' names (kaiwa start --help), "
                        "under [start]") != std::string::npos);
  auto bad =
      run_kaiwa({"start", "--config", dir.file("b.toml", "[start]\nrate-limit = \"lots\"\n")});
  CHECK(bad.status != 0);
  CHECK(bad.output.find("rate-limit") != std::string::npos);
  // A thread count the OS can't give (-1 wraps to SIZE_MAX) is refused, not attempted.
  for (auto count : {"-1", "1025", "4611686018427387904"})
    for (auto option : {"--io-threads", "--actor-threads"}) {
      auto threads = run_kaiwa({"start", option, count, "--print-config"});
      CHECK(threads.status == 2);
      CHECK(threads.output.find(option) != std::string::npos);
    }
  auto missing = run_kaiwa({"start", "--config", dir.str() + "/nope.toml"});
  CHECK(missing.status == 2);
  CHECK(missing.output.find("kaiwa: --config: can't read '" + dir.str() +
                            "/nope.toml': No such file or directory") != std::string::npos);
  auto token = run_kaiwa({"start", "--admin-token-file", dir.str() + "/none", "--print-config"});
  CHECK(token.status == 2);
  CHECK(token.output.find("can't read '" + dir.str() + "/none': No such file or directory") !=
        std::string::npos);
  auto flag = run_kaiwa({"start", "--durability", "sometimes"});
  CHECK(flag.status != 0);
  CHECK(flag.output.find("--durability") != std::string::npos);
}

TEST_CASE("print-config says which secrets are set, and prints none of them") {
  temp_dir dir;
  setenv("KAIWA_ADMIN_TOKEN", "very-secret", 1);
  auto keys = dir.file("keys", "k2=also-secret\nk1=old-secret\n");
  auto r = run_kaiwa({"start", "--secret-file", keys, "--print-config"});
  unsetenv("KAIWA_ADMIN_TOKEN");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("secret") != std::string::npos);
  for (auto value : {"very-secret", "also-secret", "old-secret", "***"})
    CHECK(r.output.find(value) == std::string::npos);
  CHECK(r.output.find("secret-file=\"" + keys + "\"") != std::string::npos);
  CHECK(r.output.find("# token keys: 2, from secret-file: k2, k1 (the first signs)") !=
        std::string::npos);
  CHECK(r.output.find("# admin token: set, from KAIWA_ADMIN_TOKEN") != std::string::npos);
  // What it prints reads back as the same configuration.
  auto again =
      run_kaiwa({"start", "--config", dir.file("printed.toml", r.output), "--print-config"});
  CHECK(again.status == 0);
  CHECK(again.output.find("# token keys: 2, from secret-file") != std::string::npos);
  // Every setting line reads back the same (the admin token came from the environment, which
  // the second run doesn't have: only its comment differs).
  auto settings = [](const std::string& out) {
    std::istringstream in(out);
    std::string kept;
    for (std::string line; std::getline(in, line);)
      if (!line.starts_with("#") && !line.starts_with("kaiwa:")) kept += line + "\n";
    return kept;
  };
  CHECK(settings(again.output) == settings(r.output));
  auto printed = settings(r.output);
  CHECK(std::count(printed.begin(), printed.end(), '\n') > 40);  // every option, not a few
}

TEST_CASE("secrets on the command line are refused, saying how to pass them") {
  temp_dir dir;
  auto secret = run_kaiwa({"start", "--secret", "s3cret", "--data-dir", dir.str()});
  CHECK(secret.status != 0);
  CHECK(secret.output.find("/proc/PID/cmdline") != std::string::npos);
  CHECK(secret.output.find("KAIWA_SECRET") != std::string::npos);
  CHECK(secret.output.find("--secret-file") != std::string::npos);
  auto admin = run_kaiwa({"start", "--admin-token", "t0p", "--data-dir", dir.str()});
  CHECK(admin.status != 0);
  CHECK(admin.output.find("KAIWA_ADMIN_TOKEN") != std::string::npos);
  CHECK(run_kaiwa({"token", "--user", "a", "--secret", "s"}).status != 0);
  CHECK(run_kaiwa({"status", "--admin-token", "t0p"}).output.find("--admin-token-file") !=
        std::string::npos);
  auto in_file = run_kaiwa({"start", "--config", dir.file("s.toml", "[start]\nsecret = \"x\"\n")});
  CHECK(in_file.status != 0);
  CHECK(in_file.output.find("secret") != std::string::npos);
  auto bad_file = run_kaiwa({"start", "--secret-file", dir.file("bad", "no-kid-here\n")});
  CHECK(bad_file.status != 0);
  CHECK(bad_file.output.find("line 1: expected KID=SECRET") != std::string::npos);
}

TEST_CASE(
    "token lifetimes are durations, parsed strictly: a bad one is a usage error, not a crash") {
  temp_dir dir;
  auto keys = dir.file("keys", "k1=0123456789abcdef0123456789abcdef\n");
  for (auto bad : {"abc", "24x", "-5h", "0", "1e3"}) {
    auto r = run_kaiwa({"token", "--user", "a", "--secret-file", keys, "--ttl", bad});
    INFO(bad << ": " << r.output);
    CHECK(r.status == 2);  // a usage error, not an uncaught exception (abort is 134)
    CHECK(r.output.find("--ttl") != std::string::npos);
  }
  for (auto good : {"90s", "1.5h", "2w", "24h"}) {
    auto r = run_kaiwa({"token", "--user", "a", "--secret-file", keys, "--ttl", good});
    INFO(good << ": " << r.output);
    CHECK(r.status == 0);
    CHECK(r.output.starts_with("v1."));
  }
}

TEST_CASE("durations and sizes are parsed strictly in flags and the config file alike") {
  temp_dir dir;
  check_usage_errors({
      {{"start", "--idle-timeout", "5x"}, "--idle-timeout: '5x' is not a duration"},
      {{"start", "--hello-timeout", "-1s"}, "--hello-timeout: '-1s' is not a duration"},
      {{"start", "--ping-interval", "0"}, "--ping-interval: '0' is out of range"},
      {{"start", "--gather-timeout", "2m"}, "--gather-timeout: '2m' is out of range"},
      {{"start", "--failure-timeout", "1e3"}, "--failure-timeout: '1e3' is not a duration"},
      {{"start", "--max-message-bytes", "1MiB"}, "--max-message-bytes: '1MiB' is out of "},
      {{"start", "--max-queued-bytes", "8MB"}, "--max-queued-bytes: '8MB' is not a size"},
      {{"start", "--config", dir.file("d.toml", "[start]\nping-timeout = \"soon\"\n")},
       "--ping-timeout: 'soon' is not a duration"},
      {{"drain", "--grace", "abc"}, "--grace: 'abc' is not a duration"},
      {{"bench", "fanout", "--duration", "10x"}, "--duration: '10x' is not a duration"},
      // Whole numbers: decimal digits only, within 64 bits (CLI11 alone took hex, octal
      // and an overflow as the largest value).
      {{"start", "--shards", "0x10"}, "--shards: '0x10' is not a whole number"},
      {{"start", "--slow-ms", "99999999999999999999"}, "'99999999999999999999' is out of"},
      {{"start", "--rate-limit", "-5"}, "--rate-limit: '-5' is not a whole number"},
      {{"start", "--slow-ms", "0"}, "--slow-ms: Value 0 not in range 1 to"},
      {{"start", "--config", dir.file("i.toml", "[start]\nrate-limit = \"lots\"\n")},
       "--rate-limit: 'lots' is not a whole number"},
      {{"bench", "rooms", "--rooms", "1e3"}, "--rooms: '1e3' is not a whole number"},
  });
  // A leading zero is decimal, not octal.
  auto octal = run_kaiwa({"start", "--snapshot-every", "010", "--print-config"});
  CHECK(octal.output.find("snapshot-every=10\n") != std::string::npos);
  // Units, and bare numbers as before (seconds, bytes), are taken and printed back.
  auto r = run_kaiwa({"start", "--idle-timeout", "1.5m", "--ping-interval", "250ms",
                      "--hello-timeout", "3", "--max-queued-bytes", "32MiB", "--print-config"});
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK(r.output.find("idle-timeout=\"1.5m\"") != std::string::npos);
  CHECK(r.output.find("ping-interval=\"250ms\"") != std::string::npos);
  CHECK(r.output.find("hello-timeout=3") != std::string::npos);
  CHECK(r.output.find("handshake-timeout=\"30s\"") != std::string::npos);  // a default
  auto again =
      run_kaiwa({"start", "--config", dir.file("printed.toml", r.output), "--print-config"});
  CHECK(again.status == 0);
}

TEST_CASE("bench's load options refuse a load that can't run before connecting to a node") {
  // No node listens on port 1: each must be refused as a usage error, not run (a window of
  // 10^8 allocated until the process died; 2^64-1 subscribers overflowed the count and
  // crashed; a rate of 1e-15 overflowed the pacing clock and sent unpaced; inf printed invalid
  // JSON; a payload over the protocol's 16384 bytes hung in the drain waiting for acks; resume's
  // --rate -1e30 never caught up).
  std::vector<usage_error> loads{
      {{"fanout", "--window", "0"}, "--window: Value 0 not in range 1 to 100000"},
      {{"fanout", "--window", "100000000"}, "--window: Value 100000000 not in range"},
      {{"fanout", "--subscribers", "18446744073709551615"}, "--subscribers: Value"},
      {{"fanout", "--publishers", "0"}, "--publishers: Value 0 not in range 1 to"},
      {{"fanout", "--payload", "16385"}, "--payload: Value 16385 not in range 0 to 16384"},
      {{"rooms", "--rooms", "0"}, "--rooms: Value 0 not in range 1 to"},
      {{"rooms", "--rooms", "1000", "--subscribers", "1000"},
       "1000 rooms x (1 publishers + 1000 subscribers) is more than 1000000 connections"},
      {{"rooms", "--rooms", "1000000", "--publishers", "1000000"}, "is more than 1000000"},
      {{"rooms", "--resend-after", "18446744073709551615"}, "--resend-after: Value"},
      {{"resume", "--rooms", "18446744073709551615"}, "--rooms: Value"},
      {{"resume", "--clients", "0"}, "--clients: Value 0 not in range 1 to"},
  };
  for (std::string scenario : {"fanout", "rooms", "resume"})
    for (std::string rate : {"-5", "nan", "inf", "1e-15", "0.001", "1e9", "fast", "-1e30"})
      loads.push_back({{scenario, "--rate", rate}, "--rate: '" + rate + "' is not a rate"});
  for (auto& load : loads) {
    load.args.insert(load.args.begin(), "bench");
    load.args.insert(load.args.end(), {"--target", "127.0.0.1:1", "--admin", "127.0.0.1:1"});
  }
  check_usage_errors(loads);
}

TEST_CASE("exit codes: 0 success, 1 the operation failed, 2 a usage error") {
  CHECK(run_kaiwa({"--help"}).status == 0);
  CHECK(run_kaiwa({"nosuch"}).status == 2);
  CHECK(run_kaiwa({"start", "--bogus"}).status == 2);
  CHECK(run_kaiwa({"token"}).status == 2);  // --user is required
  CHECK(run_kaiwa({"token", "--user", "a", "--ttl", "abc"}).status == 2);
  // Nothing listens on port 1: the operation fails.
  CHECK(run_kaiwa({"status", "--admin", "http://127.0.0.1:1"}).status == 1);
}

TEST_CASE("thread pools follow the CPUs the node may use, and flags override them") {
  temp_dir dir;
  {
    // The affinity mask is inherited: the node starts pinned to this process's first CPU, as
    // under `taskset -c N`.
    cpu_set_t was, one;
    REQUIRE(sched_getaffinity(0, sizeof was, &was) == 0);
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &was)) {
        CPU_SET(c, &one);
        break;
      }
    REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    std::unique_ptr<node_process> pinned;
    try {
      pinned = std::make_unique<node_process>(dir.str() + "/pinned");
    } catch (...) {
      sched_setaffinity(0, sizeof was, &was);
      throw;
    }
    REQUIRE(sched_setaffinity(0, sizeof was, &was) == 0);
    REQUIRE(pinned->wait_output("cpu_budget", std::chrono::seconds(5)));
    auto out = pinned->output();
    CHECK(out.find("cpu_budget cpus=1 affinity=1 ") != std::string::npos);
    CHECK(out.find("actor_threads=1 io_lanes=1") != std::string::npos);
    CHECK(out.find("threads_over_cpu_budget") == std::string::npos);
  }
  node_process chosen(dir.str() + "/chosen", {"--actor-threads", "3", "--io-threads", "2"});
  REQUIRE(chosen.wait_output("cpu_budget", std::chrono::seconds(5)));
  CHECK(chosen.output().find("actor_threads=3 io_lanes=2") != std::string::npos);
  // More threads than CPUs: obeyed, and warned about (logged before the node listens).
  CHECK((chosen.output().find("warn  threads_over_cpu_budget") != std::string::npos) ==
        (kaiwa::available_cpus().cpus < 3));
  // The threads themselves, by the names docs/operations.md gives them ("Threads"): as many as
  // logged, and the admin pool's named too. Polled: a thread names itself once it runs.
  auto threads = [&] {
    std::map<std::string, int> named;
    std::error_code ec;
    for (auto& task : std::filesystem::directory_iterator(
             "/proc/" + std::to_string(chosen.pid()) + "/task", ec)) {
      std::ifstream comm(task.path() / "comm");
      std::string name;
      std::getline(comm, name);
      named[name.starts_with("kaiwa-io-") ? "kaiwa-io-N" : name] += 1;
    }
    return named;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto named = threads();
  while ((named["kaiwa-io-N"] != 2 || named["caf.multiplexer"] != 3 || !named["kaiwa-admin"]) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling the threads' names
    named = threads();
  }
  CHECK(named["kaiwa-io-N"] == 2);
  CHECK(named["caf.multiplexer"] == 3);  // CAF 0.17 names its workers so
  CHECK(named["kaiwa-admin"] == 1);
  CHECK(named["kaiwa-journal"] == 1);
}
