// `kaiwa start` configuration: flags win over the config file, which wins over KAIWA_* variables.

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>

#include "tests/support/node_process.hpp"

using namespace kaiwa::test;

namespace {

std::string write_file(const temp_dir& dir, const std::string& name, const std::string& text) {
  auto path = (dir.path() / name).string();
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("flags win over the config file, which wins over KAIWA_ variables") {
  temp_dir dir;
  auto file = write_file(dir, "kaiwa.toml", "[start]\nnode-id = \"from-file\"\nidle-timeout = 9\n");
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
  auto file = write_file(dir, "kaiwa.toml", "[start]\nnode-id = \"configured\"\n");
  node_process node(dir.str() + "/data", {"--config", file});
  CHECK(http_get(node.admin_port(), "/admin/v1/status").second.find(R"("node":"configured")") !=
        std::string::npos);
}

TEST_CASE("unknown keys and bad values fail start-up with the key named") {
  temp_dir dir;
  auto unknown =
      run_kaiwa({"start", "--config", write_file(dir, "a.toml", "[start]\nlisten-port = 1\n")});
  CHECK(unknown.status != 0);
  CHECK(unknown.output.find("listen-port") != std::string::npos);
  auto bad = run_kaiwa(
      {"start", "--config", write_file(dir, "b.toml", "[start]\nrate-limit = \"lots\"\n")});
  CHECK(bad.status != 0);
  CHECK(bad.output.find("rate-limit") != std::string::npos);
  auto flag = run_kaiwa({"start", "--durability", "sometimes"});
  CHECK(flag.status != 0);
  CHECK(flag.output.find("--durability") != std::string::npos);
}

TEST_CASE("print-config masks secrets") {
  setenv("KAIWA_SECRET", "very-secret", 1);
  auto r = run_kaiwa({"start", "--print-config"});
  unsetenv("KAIWA_SECRET");
  CHECK(r.status == 0);
  CHECK(r.output.find("very-secret") == std::string::npos);
  CHECK(r.output.find("secret=\"***\"") != std::string::npos);
}
