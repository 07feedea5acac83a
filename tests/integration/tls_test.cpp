// TLS on the public listener: wss:// and https:// with a certificate made at test time, and
// its reload on SIGHUP.

#include <catch2/catch.hpp>

#include <signal.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <filesystem>
#include <fstream>

#include "tests/support/node_process.hpp"
#include "tests/support/tls.hpp"
#include "tests/support/ws_client.hpp"

using namespace kaiwa::test;
using namespace std::chrono_literals;

namespace {

struct tls_node {
  temp_dir dir;
  std::string cert = dir.str() + "/cert.pem";
  std::string key = dir.str() + "/key.pem";
  std::string first_cert = dir.str() + "/first.pem";  // a copy of the first certificate
  node_process node;

  explicit tls_node(std::vector<std::string> extra = {})
      : node((write_first(), dir.str() + "/data"), with_tls(std::move(extra))) {}

  void write_first() {
    write_self_signed_cert(cert, key, "first");
    std::filesystem::copy_file(cert, first_cert);
  }

  std::vector<std::string> with_tls(std::vector<std::string> extra) {
    extra.insert(extra.end(), {"--tls-cert", cert, "--tls-key", key});
    return extra;
  }
};

/// The text of the next chat message pushed to `c` (skipping other pushes); empty if none.
std::string next_message(wss_client& c) {
  while (auto m = c.recv())
    if (m->str("op") == "event" && m->str("type") == "message") return m->str("text");
  return {};
}

}  // namespace

TEST_CASE("over TLS a client says hello, sends and hears its event on wss://") {
  tls_node n;
  wss_client alice(n.node.port(), n.cert);
  CHECK(alice.request(R"({"op":"hello","id":1,"user":"alice"})", 1).str("op") == "welcome");
  CHECK(alice.request(R"({"op":"join","id":2,"room":"r"})", 2).str("op") == "joined");
  CHECK(alice.request(R"({"op":"send","id":3,"room":"r","text":"over tls"})", 3).str("op") ==
        "ack");
  CHECK(next_message(alice) == "over tls");
  // Over a TLS record's 16 KiB in both directions once the event is echoed in history.
  std::string big(16'000, 'x');
  CHECK(alice.request(R"({"op":"send","id":4,"room":"r","text":")" + big + R"("})", 4).str("op") ==
        "ack");
  auto history = alice.request(R"({"op":"history","id":5,"room":"r"})", 5);
  CHECK(history.json().find(big) != std::string::npos);
  // Pipelined requests, one TLS record each, several per read: every one answered, in order.
  for (int id = 10; id < 60; ++id) alice.send(R"({"op":"ping","id":)" + std::to_string(id) + "}");
  for (int id = 10; id < 60; ++id) {
    auto pong = alice.recv();
    REQUIRE(pong);
    CHECK(pong->num("id") == id);
  }
  // The listener speaks only TLS: a plain WebSocket handshake fails.
  CHECK_THROWS(ws_client(n.node.port()));
}

TEST_CASE("a client that doesn't finish its TLS handshake is disconnected after the timeout") {
  tls_node n({"--tls-handshake-timeout", "0.2"});
  namespace asio = boost::asio;
  asio::io_context ioc;
  asio::ip::tcp::socket s(ioc);
  s.connect({asio::ip::make_address("127.0.0.1"), n.node.port()});
  asio::write(s, asio::buffer(std::string("\x16\x03\x01\x02\x00", 5)));  // half a ClientHello
  auto started = std::chrono::steady_clock::now();
  char byte;
  boost::system::error_code ec;
  s.async_read_some(asio::buffer(&byte, 1),
                    [&](boost::system::error_code e, std::size_t) { ec = e; });
  ioc.run_for(10s);
  CHECK(ec == asio::error::eof);
  CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("https:// serves the web client and probes with Strict-Transport-Security") {
  tls_node n({"--hsts-max-age", "600"});
  auto page = https_get(n.node.port(), "/", n.cert);
  CHECK(page.status == 200);
  CHECK(page.body.find("<html") != std::string::npos);
  CHECK(page.strict_transport_security == "max-age=600");
  CHECK(https_get(n.node.port(), "/healthz", n.cert).strict_transport_security == "max-age=600");
  // The admin listener stays plain HTTP and sends no HSTS (it is no browser's).
  CHECK(http_get(n.node.admin_port(), "/healthz").first == 200);
}

TEST_CASE(
    "SIGHUP loads a new certificate for new connections, open ones keep theirs; a bad one is "
    "refused and the previous kept") {
  tls_node n;
  wss_client before(n.node.port(), n.cert);
  before.request(R"({"op":"hello","id":1,"user":"before"})", 1);
  before.request(R"({"op":"join","id":2,"room":"r"})", 2);

  write_self_signed_cert(n.cert, n.key, "second");
  n.node.signal(SIGHUP);
  REQUIRE(n.node.wait_output("tls_reloaded", 10s));
  // A client trusting only the new certificate connects; one trusting only the old can't.
  wss_client after(n.node.port(), n.cert);
  CHECK_THROWS(wss_client(n.node.port(), n.first_cert));
  after.request(R"({"op":"hello","id":1,"user":"after"})", 1);
  after.request(R"({"op":"send","id":2,"room":"r","text":"across"})", 2);
  // The connection from before the reload is still up, on its old session.
  CHECK(next_message(before) == "across");
  CHECK(before.request(R"({"op":"ping","id":3})", 3).str("op") == "pong");

  auto second_cert = n.dir.str() + "/second.pem";
  std::filesystem::copy_file(n.cert, second_cert);
  std::ofstream(n.cert) << "not a certificate\n";
  n.node.signal(SIGHUP);
  REQUIRE(n.node.wait_output("tls_reload_failed", 10s));
  CHECK(https_get(n.node.port(), "/healthz", second_cert).status == 200);
}
