// The etcd client against a real etcd (Debian's etcd-server, started per test on loopback) and
// against a fake server that answers garbage.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cluster/etcd_client.hpp"
#include "tests/cluster/etcd_process.hpp"
#include "tests/cluster/etcd_test_support.hpp"
#include "tests/support/loopback.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa::cluster;
using kaiwa::test::at;
using kaiwa::test::etcd_process;
using kaiwa::test::free_port;
using kaiwa::test::have_etcd;
using kaiwa::test::temp_dir;
using namespace std::chrono_literals;

namespace {

constexpr auto call_timeout = 2000ms;

/// Collects a watch's updates for the test thread to wait on.
class collector {
 public:
  void operator()(const watch_update& u) {
    std::lock_guard lock(mtx_);
    if (u.what == watch_update::kind::compacted) compacted_ = u.compact_revision;
    for (auto& e : u.events) events_.push_back(e);
    cv_.notify_all();
  }
  /// Waits (at most 15 s) until `n` events have come; a copy of them.
  std::vector<watch_event> wait_events(std::size_t n) {
    std::unique_lock lock(mtx_);
    cv_.wait_for(lock, 15s, [&] { return events_.size() >= n; });
    return events_;
  }
  std::int64_t wait_compacted() {
    std::unique_lock lock(mtx_);
    cv_.wait_for(lock, 15s, [&] { return compacted_ != 0; });
    return compacted_;
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<watch_event> events_;
  std::int64_t compacted_ = 0;
};

std::function<void(const watch_update&)> into(collector& c) {
  return [&c](const watch_update& u) { c(u); };
}

/// A loopback HTTP "server" that reads each request and answers `reply` (raw bytes), then
/// closes, or with `hold`, keeps the connection open without a word until it is destroyed.
class fake_server {
 public:
  explicit fake_server(std::string reply, bool hold = false)
      : reply_(std::move(reply)), hold_(hold) {
    listen_fd_ = kaiwa::test::listen_on_loopback(port_);
    REQUIRE(::pipe(stop_pipe_) == 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~fake_server() {
    ::close(stop_pipe_[1]);  // wakes the server's poll: it closes everything and returns
    thread_.join();
    ::close(stop_pipe_[0]);
    ::close(listen_fd_);
  }
  std::uint16_t port() const { return port_; }
  int requests() const { return requests_.load(); }

 private:
  void serve() {
    std::vector<int> held;
    for (;;) {
      pollfd p[2] = {{listen_fd_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 || p[1].revents) break;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      read_request(fd);
      ++requests_;
      std::size_t sent = 0;
      while (sent < reply_.size()) {
        auto n = ::send(fd, reply_.data() + sent, reply_.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
      }
      if (hold_)
        held.push_back(fd);
      else
        ::close(fd);
    }
    for (int fd : held) ::close(fd);
  }

  /// Reads the request's header and its Content-Length body (the client always sends one).
  void read_request(int fd) {
    std::string in;
    char buf[4096];
    std::size_t need = std::string::npos;
    while (in.size() < need) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 5000) <= 0) return;
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<std::size_t>(n));
      auto end = in.find("\r\n\r\n");
      auto cl = in.find("Content-Length: ");
      if (end != std::string::npos && cl != std::string::npos && cl < end)
        need = end + 4 + std::stoul(in.substr(cl + 16));
    }
  }

  std::string reply_;
  bool hold_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string http_200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace

TEST_CASE("put, get, range and delete against etcd", "[etcd]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);

  auto p1 = client.put("a/1", "one");
  REQUIRE(p1.ok());
  REQUIRE(client.put("a/2", "").ok());
  REQUIRE(client.put("b", std::string("\0\xff", 2)).ok());

  auto one = client.get("a/1");
  REQUIRE(one.ok());
  REQUIRE(one->kvs.size() == 1);
  CHECK(one->kvs[0].value == "one");
  CHECK(one->kvs[0].create_revision == p1->revision);
  CHECK(one->kvs[0].mod_revision == p1->revision);
  CHECK(one->kvs[0].version == 1);
  CHECK(one->revision >= p1->revision + 2);

  auto binary = client.get("b");
  REQUIRE(binary.ok());
  CHECK(binary->kvs.at(0).value == std::string("\0\xff", 2));

  auto a = client.range("a/");
  REQUIRE(a.ok());
  REQUIRE(a->kvs.size() == 2);
  CHECK(a->kvs[0].key == "a/1");
  CHECK(a->kvs[1].key == "a/2");
  CHECK(a->kvs[1].value.empty());

  auto all = client.range("");
  REQUIRE(all.ok());
  CHECK(all->kvs.size() == 3);

  auto missing = client.get("nope");
  REQUIRE(missing.ok());
  CHECK(missing->kvs.empty());

  auto d = client.del_prefix("a/");
  REQUIRE(d.ok());
  CHECK(d->deleted == 2);
  auto d1 = client.del("b");
  REQUIRE(d1.ok());
  CHECK(d1->deleted == 1);
  CHECK(client.range("")->kvs.empty());

  auto empty_key = client.put("", "x");
  REQUIRE_FALSE(empty_key.ok());
  CHECK(empty_key.err().code == errc::etcd);
}

TEST_CASE("compare-and-swap succeeds on the expected revision and fails on another", "[etcd]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);

  auto created = client.put_if_mod_revision("leader", "n1", 0);
  REQUIRE(created.ok());
  CHECK(created->succeeded);
  auto taken = client.put_if_mod_revision("leader", "n2", 0);
  REQUIRE(taken.ok());
  CHECK_FALSE(taken->succeeded);
  REQUIRE(taken->responses.size() == 1);  // the failure branch's read of the key
  REQUIRE(taken->responses[0].kvs.size() == 1);
  CHECK(taken->responses[0].kvs[0].value == "n1");
  auto rev = taken->responses[0].kvs[0].mod_revision;
  CHECK(rev == created->revision);

  auto stale = client.put_if_mod_revision("leader", "n3", rev - 1);
  REQUIRE(stale.ok());
  CHECK_FALSE(stale->succeeded);
  auto swapped = client.put_if_mod_revision("leader", "n3", rev);
  REQUIRE(swapped.ok());
  CHECK(swapped->succeeded);
  CHECK(client.get("leader")->kvs.at(0).value == "n3");

  CHECK_FALSE(client.delete_if_mod_revision("leader", rev)->succeeded);
  auto deleted = client.delete_if_mod_revision("leader", swapped->revision);
  REQUIRE(deleted.ok());
  CHECK(deleted->succeeded);
  CHECK(deleted->responses.at(0).deleted == 1);

  // The general form: every compare kind, ranges in a branch.
  REQUIRE(client.put("k", "v").ok());
  auto t = client.txn({compare::value_is("k", compare_result::equal, "v"),
                       compare::version("k", compare_result::greater, 0),
                       compare::create_revision("k", compare_result::less, 1 << 30),
                       compare::mod_revision("k", compare_result::not_equal, 1)},
                      {txn_op::put("k2", "w"), txn_op::get_prefix("k")}, {});
  REQUIRE(t.ok());
  CHECK(t->succeeded);
  REQUIRE(t->responses.size() == 2);
  CHECK(t->responses[0].what == txn_op::kind::put);
  CHECK(t->responses[1].kvs.size() == 2);
  auto f = client.txn({compare::value_is("k", compare_result::equal, "other")}, {},
                      {txn_op::del_prefix("k")});
  REQUIRE(f.ok());
  CHECK_FALSE(f->succeeded);
  CHECK(f->responses.at(0).deleted == 2);
}

TEST_CASE("a lease's key goes when the lease expires; keepalive keeps it; revoke drops it",
          "[etcd]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);
  collector seen;
  auto w = client.watch("lease/", 0, into(seen));

  // etcd raises a TTL to its minimum, 1.5 election timeouts (2 s with its default timing).
  auto short_lease = client.lease_grant(1);
  REQUIRE(short_lease.ok());
  CHECK(short_lease->ttl == 2);
  REQUIRE(client.put("lease/short", "x", short_lease->id).ok());
  CHECK(client.get("lease/short")->kvs.at(0).lease == short_lease->id);

  auto kept = client.lease_grant(3);
  REQUIRE(kept.ok());
  REQUIRE(client.put("lease/kept", "y", kept->id).ok());

  // The short lease expires (etcd checks every 500 ms): its key's delete arrives by watch,
  // while the other lease is renewed every 500 ms for longer than its TTL.
  auto deadline = std::chrono::steady_clock::now() + 4s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto ttl = client.lease_keepalive(kept->id);
    REQUIRE(ttl.ok());
    CHECK(*ttl == 3);
    std::this_thread::sleep_for(500ms);  // the renewal period, not a wait for anything
  }
  auto events = seen.wait_events(3);
  REQUIRE(events.size() >= 3);
  CHECK(events[2].what == watch_event::type::del);
  CHECK(events[2].kv.key == "lease/short");
  CHECK(client.get("lease/short")->kvs.empty());
  CHECK(client.get("lease/kept")->kvs.size() == 1);

  auto gone = client.lease_keepalive(short_lease->id);
  REQUIRE(gone.ok());
  CHECK(*gone == 0);

  REQUIRE(client.lease_revoke(kept->id).ok());
  CHECK(client.get("lease/kept")->kvs.empty());
  auto again = client.lease_revoke(kept->id);
  REQUIRE_FALSE(again.ok());
  CHECK(again.err().code == errc::etcd);
  CHECK(again.err().etcd_code == 5);
  CHECK(client.lease_grant(0).err().code == errc::invalid);
}

TEST_CASE("a watch sees puts and deletes in order and resumes across an etcd restart", "[etcd]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);

  auto first = client.put("w/a", "1");
  REQUIRE(first.ok());
  REQUIRE(client.put("other", "x").ok());  // outside the prefix
  collector seen;
  // From a revision in the past: the first put is replayed.
  auto w = client.watch("w/", first->revision, into(seen));
  REQUIRE(client.put("w/a", "2").ok());
  REQUIRE(client.put("w/b", "3").ok());
  REQUIRE(client.del("w/a").ok());
  REQUIRE(seen.wait_events(4).size() == 4);

  etcd.stop();
  etcd.start();
  // Written before the watch has reconnected (it backs off): it resumes from its revision.
  REQUIRE(client.put("w/c", "4").ok());
  REQUIRE(client.del("w/b").ok());
  auto events = seen.wait_events(6);
  REQUIRE(events.size() == 6);

  std::vector<std::pair<watch_event::type, std::string>> expect = {
      {watch_event::type::put, "w/a"}, {watch_event::type::put, "w/a"},
      {watch_event::type::put, "w/b"}, {watch_event::type::del, "w/a"},
      {watch_event::type::put, "w/c"}, {watch_event::type::del, "w/b"}};
  for (std::size_t i = 0; i < expect.size(); ++i) {
    CHECK(events[i].what == expect[i].first);
    CHECK(events[i].kv.key == expect[i].second);
    if (i > 0) CHECK(events[i].kv.mod_revision > events[i - 1].kv.mod_revision);
  }
  CHECK(events[0].kv.value == "1");
  CHECK(events[1].has_prev);
  CHECK(events[1].prev.value == "1");
  CHECK(events[3].prev.value == "2");
  CHECK(events[4].kv.value == "4");

  w->stop();
  CHECK(w->next_revision() == events[5].kv.mod_revision + 1);
  REQUIRE(client.put("w/d", "5").ok());
  CHECK(seen.wait_events(6).size() == 6);  // nothing after stop
}

TEST_CASE("a watch from a compacted revision reports the compaction", "[etcd]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(etcd.client_port())}, call_timeout);
  REQUIRE(client.put("c/1", "a").ok());
  auto last = client.put("c/1", "b");
  REQUIRE(last.ok());
  REQUIRE(client.compact(last->revision).ok());
  collector seen;
  auto w = client.watch("c/", 1, into(seen));
  CHECK(seen.wait_compacted() == last->revision);
  CHECK(seen.wait_events(0).empty());
}

TEST_CASE("a dead first endpoint: calls and watches go to the next", "[etcd]") {
  if (!have_etcd()) return;
  temp_dir dir;
  etcd_process etcd(dir.str() + "/etcd");
  etcd_client client({at(free_port()), at(etcd.client_port())}, call_timeout);
  REQUIRE(client.put("k", "v").ok());
  auto r = client.get("k");
  REQUIRE(r.ok());
  CHECK(r->kvs.at(0).value == "v");
  collector seen;
  auto w = client.watch("k", 1, into(seen));
  CHECK(seen.wait_events(1).size() == 1);

  etcd_client none({at(free_port())}, call_timeout);
  auto down = none.get("k");
  REQUIRE_FALSE(down.ok());
  CHECK(down.err().code == errc::unavailable);
  CHECK(etcd_client({}, call_timeout).get("k").err().code == errc::invalid);
}

TEST_CASE("a three-member etcd: with a member down, calls and the watch go on at the others",
          "[etcd]") {
  if (!have_etcd()) return;
  temp_dir dir;
  std::vector<std::uint16_t> client_ports, peer_ports;
  std::string initial;
  for (int i = 0; i < 3; ++i) {
    client_ports.push_back(free_port());
    peer_ports.push_back(free_port());
    initial += (i ? ",m" : "m") + std::to_string(i) +
               "=http://127.0.0.1:" + std::to_string(peer_ports.back());
  }
  std::vector<std::unique_ptr<etcd_process>> members;
  for (int i = 0; i < 3; ++i)
    members.push_back(std::make_unique<etcd_process>(dir.str() + "/m" + std::to_string(i),
                                                     "m" + std::to_string(i), client_ports[i],
                                                     peer_ports[i], initial));
  for (auto& m : members) m->wait_ready();

  etcd_client client({at(client_ports[0]), at(client_ports[1]), at(client_ports[2])}, call_timeout);
  auto first = client.put("m/1", "a");
  REQUIRE(first.ok());
  collector seen;
  // The watch's stream goes to the first member, the one stopped below.
  auto w = client.watch("m/", first->revision, into(seen));
  REQUIRE(client.put("m/2", "b").ok());
  REQUIRE(seen.wait_events(2).size() == 2);

  members[0]->stop();
  // The new leader (if m0 led) has to be elected first: a write may meet "no leader" (gRPC 14,
  // which goes to the next member) or time out, its outcome unknown; create-if-absent until
  // one answers, so that a retry of an applied write changes nothing.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  result<txn_response> third = error{errc::unavailable, {}, 0};
  while (!(third = client.put_if_mod_revision("m/3", "c", 0)).ok() &&
         std::chrono::steady_clock::now() < deadline)
    WARN("put while electing: " << third.err().message);
  REQUIRE(third.ok());
  REQUIRE(client.del("m/1").ok());
  auto r = client.range("m/");
  REQUIRE(r.ok());
  CHECK(r->kvs.size() == 2);

  auto events = seen.wait_events(4);
  REQUIRE(events.size() == 4);
  CHECK(events[0].kv.key == "m/1");
  CHECK(events[1].kv.key == "m/2");
  CHECK(events[2].kv.key == "m/3");
  CHECK(events[3].what == watch_event::type::del);
  for (std::size_t i = 1; i < events.size(); ++i)
    CHECK(events[i].kv.mod_revision > events[i - 1].kv.mod_revision);
}

TEST_CASE("garbage, oversized and truncated answers are errors, not crashes", "[etcd][fake]") {
  etcd_limits limits;
  limits.max_response_bytes = 64 << 10;
  struct reply_case {
    const char* name;
    std::string reply;
    errc expect;
  };
  std::vector<reply_case> cases = {
      {"not HTTP", "garbage\r\n\r\n", errc::protocol},
      {"not JSON", http_200("{\"kvs\":[oops"), errc::protocol},
      {"bad base64", http_200("{\"kvs\":[{\"key\":\"!!!!\"}]}"), errc::protocol},
      {"a 1 GiB body declared", "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n{}",
       errc::protocol},
      {"a body over the limit", http_200(std::string(65 << 10, ' ') + "{}"), errc::protocol},
      {"a chunk of 2^60 bytes declared",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n{}\r\n",
       errc::protocol},
      {"small chunks adding up to over the limit",
       [] {
         std::string r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
         for (int i = 0; i < 70; ++i) r += "400\r\n" + std::string(1024, ' ') + "\r\n";
         return r + "2\r\n{}\r\n0\r\n\r\n";
       }(),
       errc::protocol},
      {"a chunk size beyond 64 bits",
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n",
       errc::protocol},
      {"a header over the limit",
       "HTTP/1.1 200 OK\r\nX: " + std::string(32 << 10, 'x') + "\r\n\r\n", errc::protocol},
      {"a truncated body",
       "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"kvs\":", errc::unavailable},
      {"closed without a word", "", errc::unavailable},
      {"an error page", "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 6\r\n\r\n<html>",
       errc::protocol},
  };
  for (auto& c : cases) {
    SECTION(c.name) {
      fake_server fake(c.reply);
      etcd_client client({at(fake.port())}, call_timeout, limits);
      auto r = client.get("k");
      REQUIRE_FALSE(r.ok());
      INFO(r.err().message);
      CHECK(r.err().code == c.expect);
      // A write whose answer is unreadable is not sent again (it may have been applied).
      (void)client.put("k", "v");
      CHECK(fake.requests() == 2);
    }
  }
}

TEST_CASE("a server that never answers costs the call's timeout, then the next endpoint",
          "[etcd][fake]") {
  fake_server silent("", true);
  fake_server good(http_200(R"({"kvs":[{"key":"aw==","value":"dg=="}]})"));
  etcd_client one({at(silent.port())}, 300ms);
  auto start = std::chrono::steady_clock::now();
  auto r = one.get("k");
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r.ok());
  CHECK(r.err().code == errc::timeout);
  CHECK(took >= 300ms);
  CHECK(took < 3s);
  auto w = one.put("k", "v");
  REQUIRE_FALSE(w.ok());
  CHECK(w.err().code == errc::unknown_outcome);

  etcd_client two({at(silent.port()), at(good.port())}, 300ms);
  auto read = two.get("k");
  REQUIRE(read.ok());
  CHECK(read->kvs.at(0).value == "v");
}

TEST_CASE("a watch fed garbage delivers nothing and stops promptly", "[etcd][fake]") {
  etcd_limits limits;
  limits.max_response_bytes = 1024;
  const std::string chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto chunk = [](const std::string& s) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", s.size());
    return size + s + "\r\n";
  };
  for (std::string reply :
       {std::string("garbage"), chunked + chunk("{\"result\":{\"events\":[{\"kv\":7}]}}\n"),
        chunked + chunk(std::string(2000, 'x')),  // a message over the limit, no newline
        chunked + chunk("{\"result\":{\"created\":true}}\n") + "zz\r\n",
        chunked + chunk(R"({"result":{"events":[{"kv":{"key":"aw==","mod_revision":)"
                        R"("9223372036854775807"}}]}})"
                        "\n"),
        chunked + chunk(R"({"result":{"events":[{"kv":{"key":"aw==","mod_revision":"5"}},)"
                        R"({"kv":{"key":"aw==","mod_revision":"4"}}]}})"
                        "\n")}) {
    fake_server fake(reply, true);
    collector seen;
    etcd_client client({at(fake.port())}, call_timeout, limits);
    auto w = client.watch("k", 1, into(seen));
    // The watch reconnects after each failure (backing off): wait for a second request.
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (fake.requests() < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);  // polling the fake's counter
    CHECK(fake.requests() >= 2);
    auto start = std::chrono::steady_clock::now();
    w.reset();
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(seen.wait_events(0).empty());
  }
}

TEST_CASE("a watch with no reachable endpoint retries quietly and stops promptly", "[etcd][fake]") {
  fake_server counter("");  // answers nothing: each try is counted, then closed
  etcd_client client({at(free_port()), at(counter.port())}, call_timeout);
  collector seen;
  auto w = client.watch("k", 0, into(seen));
  // It goes round the endpoints (backing off up to 1 s): the second one sees a few tries.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (counter.requests() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);  // polling the fake's counter
  CHECK(counter.requests() >= 3);
  auto start = std::chrono::steady_clock::now();
  w.reset();  // in a backoff or a connect: either ends at once
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(seen.wait_events(0).empty());
}
