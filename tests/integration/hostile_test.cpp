// Hostile clients against a real node: the inputs that used to crash it or grow it without
// bound, slow and silent clients, floods. Each is answered by a close (or an error) on that
// connection alone; the node's memory stays bounded; a well-behaved client keeps chatting.

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/node_process.hpp"
#include "tests/support/raw_ws.hpp"
#include "tests/support/ws_client.hpp"
#include "tests/support/ws_frames.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

/// The node's resident set in bytes.
std::int64_t rss_bytes(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6)) * 1024;
  FAIL("no VmRSS for pid " << pid);
  return 0;
}

/// The node's CPU time (user + system) in clock ticks.
long cpu_ticks(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The fields after the command name (which may hold spaces): utime and stime are 14 and 15.
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

std::size_t open_fds(int pid) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
    n += 1;
  return n;
}

/// Lowers a node's open-files limit under its feet; restore() (or the destructor) puts the
/// limit it had back.
class descriptor_limit {
 public:
  descriptor_limit(int pid, rlim_t soft) : pid_(pid) {
    REQUIRE(::prlimit(pid_, RLIMIT_NOFILE, nullptr, &was_) == 0);
    rlimit lowered = was_;
    lowered.rlim_cur = soft;
    REQUIRE(::prlimit(pid_, RLIMIT_NOFILE, &lowered, nullptr) == 0);
  }
  ~descriptor_limit() { ::prlimit(pid_, RLIMIT_NOFILE, &was_, nullptr); }
  void restore() { REQUIRE(::prlimit(pid_, RLIMIT_NOFILE, &was_, nullptr) == 0); }

 private:
  int pid_;
  rlimit was_{};
};

/// While alive, nodes started get a small AddressSanitizer quarantine. ASan keeps up to 256 MB
/// of freed memory resident (to catch uses after free), so a node built with it could never be
/// seen to give memory back. Without ASan the variable is ignored.
class small_asan_quarantine {
 public:
  small_asan_quarantine() {
    if (auto* v = std::getenv("ASAN_OPTIONS")) saved_ = v;
    setenv("ASAN_OPTIONS", (saved_.value_or("") + ":quarantine_size_mb=8").c_str(), 1);
  }
  ~small_asan_quarantine() {
    if (saved_)
      setenv("ASAN_OPTIONS", saved_->c_str(), 1);
    else
      unsetenv("ASAN_OPTIONS");
  }
  small_asan_quarantine(const small_asan_quarantine&) = delete;
  small_asan_quarantine& operator=(const small_asan_quarantine&) = delete;

 private:
  std::optional<std::string> saved_;
};

bool node_answers(std::uint16_t port) {
  ws_client c(port);
  c.hello("prober");
  return c.request(R"({"op":"ping","id":1})", 1).str("op") == "pong";
}

/// Sends `count` messages of `text_bytes` to `room` and waits for the last ack.
void fill_room(std::uint16_t port, const std::string& room, int count, std::size_t text_bytes) {
  ws_client w(port);
  w.hello("writer");
  const std::string text(text_bytes, 'h');
  for (int i = 1; i <= count; ++i)
    w.send(R"({"op":"send","id":)" + std::to_string(i) + R"(,"room":")" + room + R"(","text":")" +
           text + "\"}");
  w.next_where([&](const message& m) { return m.num("id") == count; }, 60s);
}

/// A client that sends requests and measures each round trip while the node is attacked.
class chatter {
 public:
  explicit chatter(std::uint16_t port) : c_(port) {
    c_.hello("polite");
    c_.request(R"({"op":"join","id":0,"room":"polite"})", 0);
    thread_ = std::thread([this] { run(); });
  }
  ~chatter() { stop(); }

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int acks() const { return acks_; }
  std::chrono::milliseconds worst() const { return worst_; }
  /// After stop(): why the loop ended before it was stopped (empty if it didn't).
  const std::string& ended_by() const { return ended_by_; }

 private:
  // No Catch2 assertions here (they are not thread-safe): a lost reply ends the loop, and the
  // main thread checks the count.
  void run() {
    for (int id = 1; !stop_; ++id) {
      auto t0 = std::chrono::steady_clock::now();
      c_.send(R"({"op":"send","id":)" + std::to_string(id) +
              R"(,"room":"polite","text":"still here"})");
      std::optional<message> m;
      while ((m = c_.recv(5s)) && m->num("id") != id) {
      }
      if (!m || m->str("op") != "ack") {
        ended_by_ = m ? m->json() : "no reply in 5 s";
        return;
      }
      worst_ = std::max(worst_, std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::steady_clock::now() - t0));
      acks_ += 1;
      std::this_thread::sleep_for(20ms);  // pacing, not synchronization
    }
  }

  ws_client c_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> acks_{0};
  std::chrono::milliseconds worst_{0};
  std::string ended_by_;  // written by the thread, read after join
};

}  // namespace

TEST_CASE("the frames that crashed the node close only their connection, without growing it") {
  temp_dir dir;
  node_process node(dir.str());
  auto before = rss_bytes(node.pid());
  SECTION("a continuation declaring 2^64 - 14 bytes after 60 bytes of text: 1002") {
    raw_ws c(node.port());
    c.hello("mallory");
    c.send_raw(client_frame(ws_op::text, std::string(60, 'a'), {.fin = false}) +
               client_frame(ws_op::continuation, std::string(200, 'z'),
                            {.declared = ~std::uint64_t{0} - 13}));
    CHECK(c.close_code() == 1002);
  }
  SECTION("a discarded binary message continued by 2^62 bytes: 1009") {
    raw_ws c(node.port());
    c.hello("mallory");
    c.send_raw(client_frame(ws_op::binary, std::string(10, 'b'), {.fin = false}) +
               client_frame(ws_op::continuation, "", {.declared = std::uint64_t{1} << 62}));
    CHECK(c.close_code() == 1009);
  }
  SECTION("a discarded binary message continued by 256 MiB, on 20 connections: 1009") {
    std::vector<std::unique_ptr<raw_ws>> cs;
    for (int i = 0; i < 20; ++i) {
      cs.push_back(std::make_unique<raw_ws>(node.port()));
      cs.back()->send_raw(client_frame(ws_op::binary, std::string(10, 'b'), {.fin = false}) +
                          client_frame(ws_op::continuation, std::string(1000, 'q'),
                                       {.declared = std::uint64_t{256} << 20}));
    }
    for (auto& c : cs) CHECK(c->close_code() == 1009);
  }
  CHECK(node_answers(node.port()));
  CHECK(rss_bytes(node.pid()) - before < 32 << 20);
}

TEST_CASE("a slowloris handshake is cut at the handshake timeout") {
  temp_dir dir;
  node_process node(dir.str(), {"--handshake-timeout", "0.5"});
  raw_ws c(node.port(), false);
  auto t0 = std::chrono::steady_clock::now();
  // A byte now and then, never finishing the request line.
  for (char ch : std::string("GET /ws HTTP/1.1\r\nHost: x\r\n")) {
    if (!c.send_raw(std::string(1, ch))) break;
    if (std::chrono::steady_clock::now() - t0 > 3s) break;
    std::this_thread::sleep_for(100ms);  // the attack's pace, not synchronization
  }
  CHECK(c.wait_disconnected(5s));
  CHECK(std::chrono::steady_clock::now() - t0 < 4s);
  CHECK(node_answers(node.port()));
}

TEST_CASE("a node out of file descriptors waits to accept instead of spinning") {
  temp_dir dir;
  node_process node(dir.str(), {"--io-threads", "1", "--actor-threads", "1"});
  // Below every descriptor it has: each accept fails (EMFILE), and the connection stays in the
  // backlog.
  descriptor_limit none(node.pid(), 1);
  int fd = tcp_connect(node.port());
  REQUIRE(fd >= 0);
  CHECK(node.wait_output("accept_failed", 5s));
  auto before = cpu_ticks(node.pid());
  std::this_thread::sleep_for(1s);  // the interval measured, not synchronization
  // A busy accept loop would take a whole core: about sysconf(_SC_CLK_TCK) ticks.
  CHECK(cpu_ticks(node.pid()) - before < sysconf(_SC_CLK_TCK) / 5);
  none.restore();
  CHECK(node.wait_output("accept_recovered", 5s));
  ::close(fd);
  CHECK(node_answers(node.port()));
}

TEST_CASE("connections are refused before they take the descriptors the node keeps for itself") {
  temp_dir dir;
  node_process node(dir.str());
  // 32 descriptors left, of which the node keeps 16 (the minimum reserve) for its journal and
  // its admin API.
  auto limit = open_fds(node.pid()) + 32;
  descriptor_limit low(node.pid(), limit);
  std::vector<int> socks;
  for (int i = 0; i < 48; ++i)
    if (int fd = tcp_connect(node.port()); fd >= 0) socks.push_back(fd);
  REQUIRE(node.wait_output("connections_refused", 5s));
  // At most two of the reserve in use: a connection being refused (accepted, not yet closed)
  // and one the node opens for itself meanwhile (a RocksDB file; the sanitizers' runtime).
  CHECK(open_fds(node.pid()) <= limit - 14);
  auto [status, body] = http_get(node.admin_port(), "/metrics");
  CHECK(status == 200);
  CHECK(body.find("kaiwa_connections_refused_fds_total 0\n") == std::string::npos);
  CHECK(body.find("kaiwa_connections_refused_fds_total ") != std::string::npos);
  for (int fd : socks) ::close(fd);
  low.restore();
  CHECK(node_answers(node.port()));
}

TEST_CASE("a journal that can't write makes the node not ready, and says why") {
  temp_dir dir;
  node_process node(dir.str(), {"--durability", "async"});
  ws_client c(node.port());
  c.hello("writer");
  CHECK(c.request(R"({"op":"send","id":0,"room":"full","text":"first"})", 0).str("op") == "ack");
  CHECK(http_get(node.admin_port(), "/readyz").first == 200);
  // No descriptor to spare: when RocksDB switches its memtable it can't create the next WAL,
  // and takes no more writes until it is reopened.
  descriptor_limit none(node.pid(), 1);
  const std::string text(16000, 'f');
  for (int id = 1; id <= 6000 && !node.wait_output("journal_write_failed", 0ms); ++id) {
    c.send(R"({"op":"send","id":)" + std::to_string(id) + R"(,"room":"full","text":")" + text +
           "\"}");
    if (id % 100 == 0) c.next_where([&](const message& m) { return m.num("id") == id; }, 30s);
  }
  REQUIRE(node.wait_output("journal_write_failed", 10s));
  CHECK(node.output().find("Too many open files") != std::string::npos);
  none.restore();
  CHECK(http_get(node.admin_port(), "/readyz").first == 503);
  auto [status, body] = http_get(node.admin_port(), "/admin/v1/status");
  CHECK(status == 200);
  CHECK(body.find(R"("journal_writable":false)") != std::string::npos);
}

TEST_CASE("a connection that never sends hello is closed with 4001") {
  temp_dir dir;
  node_process node(dir.str(), {"--hello-timeout", "0.3"});
  raw_ws c(node.port());
  CHECK(c.close_code(5s) == 4001);
  CHECK(c.wait_disconnected());
}

TEST_CASE(
    "an idle connection is pinged; one that never answers is closed with 1001 and leaves "
    "presence") {
  temp_dir dir;
  node_process node(dir.str(), {"--ping-interval", "0.3", "--ping-timeout", "0.3"});
  ws_client watcher(node.port());  // Beast answers pings by itself: it must stay
  watcher.hello("watcher");
  raw_ws mute(node.port());
  mute.hello("mute");
  mute.send_text(R"({"op":"join","id":1,"room":"lobby"})");
  REQUIRE(mute.next_text());
  auto users = [&] {
    return watcher.request(R"({"op":"presence","id":9,"room":"lobby"})", 9).json();
  };
  CHECK(users().find("mute") != std::string::npos);
  // The mute client reads the ping (after the presence pushes) and answers nothing.
  auto f = mute.next_frame(5s);
  while (f && f->opcode == ws_op::text) f = mute.next_frame(5s);
  REQUIRE(f);
  CHECK(f->opcode == ws_op::ping);
  CHECK(mute.close_code(5s) == 1001);
  CHECK(mute.wait_disconnected(5s));
  for (int i = 0; i < 50 && users().find("mute") != std::string::npos; ++i)
    std::this_thread::sleep_for(50ms);  // presence is updated by the room, asynchronously
  CHECK(users().find("mute") == std::string::npos);
  CHECK(watcher.is_open());
  CHECK(watcher.request(R"({"op":"ping","id":2})", 2).str("op") == "pong");
}

TEST_CASE(
    "a never-reading client pipelining history is paused, then closed with 4009; memory "
    "returns") {
  temp_dir dir;
  small_asan_quarantine quarantine;
  // What is measured is what the abusive client made the node hold: not the block cache, which
  // keeps what history read (up to its size, by design), nor the search projection indexing the
  // 3.2 MB of text meanwhile (its memtable grows until flushed, within its budget).
  node_process node(dir.str(),
                    {"--durability", "async", "--block-cache-mib", "16", "--projections", "off"});
  fill_room(node.port(), "big", 200, 16000);  // a history page of 200 is ~3.2 MB
  auto before = rss_bytes(node.pid());
  std::int64_t peak = before;
  {
    raw_ws hog(node.port());
    hog.hello("hog");
    std::string burst;
    for (int i = 1; i <= 1000; ++i)
      burst += client_frame(ws_op::text, R"({"op":"history","id":)" + std::to_string(i) +
                                             R"(,"room":"big","limit":200})");
    hog.send_raw(burst);  // the node stops reading; the kernel buffers hold the rest
    for (int i = 0; i < 40; ++i) {
      peak = std::max(peak, rss_bytes(node.pid()));
      std::this_thread::sleep_for(50ms);
    }
    CHECK(node_answers(node.port()));
    // Reading now finds what was written before the close: replies, then 4009.
    CHECK(hog.close_code(30s) == 4009);
  }
  INFO("RSS before " << before / 1024 << " KiB, peak " << peak / 1024 << " KiB");
  CHECK(peak - before < 400 << 20);
  std::int64_t after = 0;
  for (int i = 0; i < 40; ++i) {
    after = rss_bytes(node.pid());
    if (after - before < 64 << 20) break;
    std::this_thread::sleep_for(100ms);
  }
  INFO("RSS after " << after / 1024 << " KiB");
  CHECK(after - before < 64 << 20);
}

TEST_CASE("a client whose queue doesn't drain for a ping interval is closed with 4009") {
  temp_dir dir;
  node_process node(dir.str(), {"--durability", "async", "--max-outbound-bytes", "65536",
                                "--ping-interval", "0.3", "--ping-timeout", "0.3"});
  fill_room(node.port(), "small", 200, 100);  // a history page of 200 is ~30 KB
  raw_ws hog(node.port());
  hog.hello("hog");
  std::string burst;
  for (int i = 1; i <= 1000; ++i)  // ~30 MB of replies: more than the kernel buffers hold
    burst += client_frame(ws_op::text, R"({"op":"history","id":)" + std::to_string(i) +
                                           R"(,"room":"small","limit":200})");
  hog.send_raw(burst);
  // Not reading until the node has given up on it.
  auto slow_consumers = [&] {
    const std::string key = "\nkaiwa_slow_consumers_total ";
    auto body = http_get(node.admin_port(), "/metrics").second;
    auto at = body.find(key);
    return at == std::string::npos ? -1 : std::stoi(body.substr(at + key.size()));
  };
  for (int i = 0; i < 100 && slow_consumers() < 1; ++i) std::this_thread::sleep_for(50ms);
  CHECK(slow_consumers() == 1);
  CHECK(hog.close_code(30s) == 4009);
}

TEST_CASE("ping and pong floods count against the rate limit and end in 4008") {
  temp_dir dir;
  node_process node(dir.str(), {"--rate-limit", "50"});
  SECTION("pings") {
    raw_ws c(node.port());
    std::string flood;
    for (int i = 0; i < 1000; ++i) flood += client_frame(ws_op::ping, "flood");
    c.send_raw(flood);
    int pongs = 0;
    std::optional<std::uint16_t> code;
    while (auto f = c.next_frame()) {
      if (f->opcode == ws_op::pong) ++pongs;
      if (f->opcode == ws_op::close) {
        code = f->close_code();
        break;
      }
    }
    CHECK(code == 4008);
    CHECK(pongs <= 200);  // the burst (2x the rate) and what refilled meanwhile
  }
  SECTION("pongs") {
    raw_ws c(node.port());
    std::string flood;
    for (int i = 0; i < 1000; ++i) flood += client_frame(ws_op::pong, "");
    c.send_raw(flood);
    CHECK(c.close_code() == 4008);
  }
  CHECK(node_answers(node.port()));
}

TEST_CASE("a flood of refused frames is closed with 4000") {
  temp_dir dir;
  node_process node(dir.str());
  raw_ws c(node.port());
  c.hello("mallory");
  std::string flood;
  for (int i = 0; i < 50; ++i)
    flood +=
        client_frame(ws_op::binary, "bin") + client_frame(ws_op::text, std::string(70000, ' '));
  c.send_raw(flood);
  CHECK(c.close_code() == 4000);
  CHECK(node_answers(node.port()));
}

TEST_CASE("joins beyond the per-connection bound are refused; leaving makes room") {
  temp_dir dir;
  node_process node(dir.str(), {"--max-rooms-per-connection", "20"});
  ws_client c(node.port());
  c.hello("joiner");
  for (int i = 0; i < 20; ++i)
    REQUIRE(c.request(R"({"op":"join","id":)" + std::to_string(i) + R"(,"room":"r)" +
                          std::to_string(i) + "\"}",
                      i)
                .str("op") == "joined");
  auto refused = c.request(R"({"op":"join","id":100,"room":"r20"})", 100);
  CHECK(refused.str("code") == "bad_request");
  // Joining a room it is in already is not a new subscription.
  CHECK(c.request(R"({"op":"join","id":101,"room":"r3"})", 101).str("op") == "joined");
  CHECK(c.request(R"({"op":"leave","id":102,"room":"r0"})", 102).str("op") == "left");
  CHECK(c.request(R"({"op":"join","id":103,"room":"r20"})", 103).str("op") == "joined");
}

TEST_CASE("a well-behaved client keeps chatting with bounded latency through every attack") {
  temp_dir dir;
  node_process node(dir.str(), {"--durability", "async", "--handshake-timeout", "1",
                                "--hello-timeout", "1", "--rate-limit", "1000"});
  fill_room(node.port(), "big", 100, 16000);
  chatter polite(node.port());
  {
    std::vector<std::unique_ptr<raw_ws>> attackers;
    auto attacker = [&](bool hello) -> raw_ws& {
      attackers.push_back(std::make_unique<raw_ws>(node.port()));
      if (hello) attackers.back()->hello("mallory");
      return *attackers.back();
    };
    attacker(true).send_raw(
        client_frame(ws_op::text, std::string(60, 'a'), {.fin = false}) +
        client_frame(ws_op::continuation, "", {.declared = ~std::uint64_t{0} - 13}));
    attacker(true).send_raw(
        client_frame(ws_op::binary, std::string(10, 'b'), {.fin = false}) +
        client_frame(ws_op::continuation, "", {.declared = std::uint64_t{256} << 20}));
    std::string pings, junk, history;
    for (int i = 0; i < 5000; ++i) pings += client_frame(ws_op::ping, "x");
    attacker(false).send_raw(pings);
    for (int i = 0; i < 20; ++i)
      junk +=
          client_frame(ws_op::text, std::string(100000, ' ')) + client_frame(ws_op::binary, "b");
    attacker(true).send_raw(junk);
    for (int i = 1; i <= 300; ++i)
      history += client_frame(ws_op::text, R"({"op":"history","id":)" + std::to_string(i) +
                                               R"(,"room":"big","limit":200})");
    auto& hog = attacker(true);
    hog.send_raw(history);
    attacker(false);  // never says hello
    raw_ws slow(node.port(), false);
    slow.send_raw("GET /ws HTTP/1.1\r\n");  // and never finishes
    std::string joins;
    auto& joiner = attacker(true);
    for (int i = 0; i < 2000; ++i)
      joins += client_frame(ws_op::text, R"({"op":"join","room":"j)" + std::to_string(i) + "\"}");
    joiner.send_raw(joins);
    // Hold the attack for a while, then let every attacker go.
    auto until = std::chrono::steady_clock::now() + 3s;
    while (std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(100ms);
    CHECK(slow.wait_disconnected(5s));
  }
  polite.stop();
  INFO("acks " << polite.acks() << ", worst latency " << polite.worst().count()
               << " ms, ended by: " << polite.ended_by());
  CHECK(polite.acks() >= 50);
  CHECK(polite.worst() < 1500ms);
}

namespace {

/// Whether `user` is welcomed on a new connection within `limit` (the node gives a closed
/// connection's place back when it notices the close, a moment after the client's).
bool welcomed_within(std::uint16_t port, const std::string& user, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  do {
    raw_ws c(port, false);
    if (!c.try_upgrade()) continue;  // refused at accept: the address has no place yet
    c.send_text(R"({"op":"hello","id":1,"user":")" + user + "\"}");
    auto reply = c.next_text();
    if (reply && reply->find("\"welcome\"") != std::string::npos) return true;
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

}  // namespace

TEST_CASE("a user holds at most --max-connections-per-user sessions; closing one makes room") {
  temp_dir dir;
  node_process node(dir.str(), {"--max-connections-per-user", "2"});
  auto first = std::make_unique<ws_client>(node.port());
  first->hello("alice");
  ws_client second(node.port());
  second.hello("alice");

  raw_ws third(node.port());
  third.send_text(R"({"op":"hello","id":"h","user":"alice"})");
  auto refused = third.next_text();
  REQUIRE(refused);
  CHECK(refused->find(R"("code":"rate_limited")") != std::string::npos);
  CHECK(refused->find(R"("id":"h")") != std::string::npos);
  CHECK(third.close_code() == 4008);

  ws_client bob(node.port());
  bob.hello("bob");  // other users are not affected
  CHECK(second.request(R"({"op":"ping","id":1})", 1).str("op") == "pong");

  first.reset();
  CHECK(welcomed_within(node.port(), "alice", 10s));
  auto metrics = http_get(node.admin_port(), "/metrics").second;
  CHECK(metrics.find("kaiwa_connections_refused_user_total 1") != std::string::npos);
}

TEST_CASE("a source address holds at most --max-connections-per-address connections") {
  temp_dir dir;
  node_process node(dir.str(),
                    {"--max-connections-per-address", "3", "--address-limit-exempt", ""});
  std::vector<std::unique_ptr<raw_ws>> held;
  for (int i = 0; i < 3; ++i) held.push_back(std::make_unique<raw_ws>(node.port(), false));
  // Held open without a byte sent: the place is taken at accept, not at the handshake.
  raw_ws refused(node.port(), false);
  CHECK(refused.wait_disconnected(5s));
  auto metrics = http_get(node.admin_port(), "/metrics").second;  // the admin listener is apart
  CHECK(metrics.find("kaiwa_connections_refused_address_total 1") != std::string::npos);

  held.pop_back();
  CHECK(welcomed_within(node.port(), "carol", 10s));
}

TEST_CASE("loopback is exempt from the address limit by default (a proxy, the bench)") {
  temp_dir dir;
  node_process node(dir.str(), {"--max-connections-per-address", "1"});
  ws_client a(node.port()), b(node.port()), c(node.port());
  a.hello("a");
  b.hello("b");
  c.hello("c");
  CHECK(c.request(R"({"op":"ping","id":1})", 1).str("op") == "pong");
}

TEST_CASE("a reconnect storm and a send flood leave chat working and memory near its baseline") {
  temp_dir dir;
  small_asan_quarantine quarantine;
  // The flood ends in 4008 only if the node takes sends faster than the rate limit refills.
  // 200/s holds on a sanitizer build too; with 2,000/s the ASan node stored the sends slower
  // than its bucket refilled, and the flooder was never closed.
  node_process node(dir.str(), {"--durability", "async", "--rate-limit", "200"});
  chatter polite(node.port());
  auto baseline = rss_bytes(node.pid());

  // A flood of sends on one connection: far more than the rate limit lets through.
  raw_ws flooder(node.port());
  flooder.hello("flooder");
  std::string flood;
  for (int i = 1; i <= 20000; ++i)
    flood += client_frame(ws_op::text, R"({"op":"send","id":)" + std::to_string(i) +
                                           R"(,"room":"flooded","text":"spam spam spam"})");
  flooder.send_raw(flood);

  // A reconnect storm: clients of many users connect, join rooms with backfill, and drop,
  // from four threads at once.
  std::atomic<int> welcomed{0};
  std::vector<std::thread> storm;
  for (int t = 0; t < 4; ++t)
    storm.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        raw_ws c(node.port());
        c.send_text(R"({"op":"hello","id":1,"user":"storm-)" + std::to_string(t * 1000 + i) +
                    "\"}");
        auto w = c.next_text();
        if (w && w->find("welcome") != std::string::npos) welcomed += 1;
        c.send_text(R"({"op":"join","id":2,"room":"storm-)" + std::to_string(i % 50) +
                    R"(","since":0})");
      }  // dropped without a close frame
    });
  for (auto& t : storm) t.join();
  CHECK(welcomed == 2000);
  CHECK(flooder.close_code(30s) == 4008);  // rate-limited 100 times in a row

  // It went on all along (one send per 20 ms at best) and goes on after. The storm can be over
  // before it sent 5 (its thread gets little CPU on a loaded machine): 5 s more to reach 5.
  auto go_on_until = std::chrono::steady_clock::now() + 5s;
  while (polite.acks() < 5 && std::chrono::steady_clock::now() < go_on_until)
    std::this_thread::sleep_for(20ms);  // polling the chatter's count
  polite.stop();
  INFO("acks " << polite.acks() << ", worst latency " << polite.worst().count()
               << " ms, ended by: " << polite.ended_by());
  CHECK(polite.ended_by().empty());
  CHECK(polite.acks() >= 5);
  CHECK(polite.worst() < 1500ms);
  CHECK(node_answers(node.port()));

  // Back near the baseline once the storm's sessions are gone (the node trims its heap after
  // churn, at most every 10 s): allow RocksDB's memtable and caches some growth.
  auto bound = baseline + (48 << 20);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (rss_bytes(node.pid()) > bound && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(200ms);  // polling a figure the node changes on its own clock
  INFO("baseline " << (baseline >> 20) << " MiB, now " << (rss_bytes(node.pid()) >> 20) << " MiB");
  CHECK(rss_bytes(node.pid()) <= bound);
}
