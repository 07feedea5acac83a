#include "tests/support/tls.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <catch2/catch.hpp>

#include <cstdio>
#include <random>
#include <stdexcept>

#include "tests/support/node_process.hpp"

namespace kaiwa::test {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using boost::system::error_code;

void write_self_signed_cert(const std::string& cert_file, const std::string& key_file,
                            const std::string& common_name) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  if (!key || !cert) throw std::runtime_error("can't make a key");
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), static_cast<long>(std::random_device{}() >> 1));
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  auto* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert, name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  auto* san = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
  X509_add_ext(cert, san, -1);
  X509_EXTENSION_free(san);
  X509_sign(cert, key, EVP_sha256());
  FILE* k = std::fopen(key_file.c_str(), "w");
  FILE* c = std::fopen(cert_file.c_str(), "w");
  bool ok = k && c && PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr) == 1 &&
            PEM_write_X509(c, cert) == 1;
  if (k) std::fclose(k);
  if (c) std::fclose(c);
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) throw std::runtime_error("can't write " + cert_file + " or " + key_file);
}

namespace {

/// Runs the operation `start` begins on `ioc` for at most `limit`; nullopt if it didn't finish
/// (it is then cancelled by closing `socket`).
template <class Start>
std::optional<error_code> run_bounded(asio::io_context& ioc, asio::ip::tcp::socket& socket,
                                      std::chrono::milliseconds limit, Start start) {
  std::optional<error_code> result;
  start([&](error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run_for(limit);
  if (!result) {
    error_code ignored;
    socket.close(ignored);
    ioc.restart();
    ioc.run();
    return std::nullopt;
  }
  return result;
}

ssl::context client_context(const std::string& trusted_cert_file) {
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(trusted_cert_file);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

void require(const std::optional<error_code>& r, const char* what) {
  if (!r) throw std::runtime_error(std::string(what) + ": timed out");
  if (*r) throw std::runtime_error(std::string(what) + ": " + r->message());
}

}  // namespace

struct wss_client::impl {
  explicit impl(const std::string& trusted) : ctx(client_context(trusted)) {}

  asio::ip::tcp::socket& socket() { return beast::get_lowest_layer(ws).socket(); }

  asio::io_context ioc;
  ssl::context ctx;
  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws{ioc, ctx};
  beast::flat_buffer buf;
};

wss_client::wss_client(std::uint16_t port, const std::string& trusted_cert_file)
    : impl_(std::make_unique<impl>(trusted_cert_file)) {
  auto& i = *impl_;
  asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), port);
  constexpr auto limit = ms(10'000);
  require(run_bounded(i.ioc, i.socket(), limit,
                      [&](auto h) { beast::get_lowest_layer(i.ws).async_connect(at, h); }),
          "connect");
  require(
      run_bounded(i.ioc, i.socket(), limit,
                  [&](auto h) { i.ws.next_layer().async_handshake(ssl::stream_base::client, h); }),
      "TLS handshake");
  require(run_bounded(i.ioc, i.socket(), limit,
                      [&](auto h) { i.ws.async_handshake("127.0.0.1", "/ws", h); }),
          "WebSocket handshake");
  i.ws.text(true);
}

wss_client::~wss_client() = default;

void wss_client::send(const std::string& text) {
  auto& i = *impl_;
  auto r = run_bounded(i.ioc, i.socket(), ms(10'000),
                       [&](auto h) { i.ws.async_write(asio::buffer(text), h); });
  REQUIRE(r);
  REQUIRE_FALSE(*r);
}

std::optional<message> wss_client::recv(ms limit) {
  auto& i = *impl_;
  auto r = run_bounded(i.ioc, i.socket(), limit, [&](auto h) { i.ws.async_read(i.buf, h); });
  if (!r || *r) return std::nullopt;
  auto text = beast::buffers_to_string(i.buf.data());
  i.buf.consume(i.buf.size());
  return message(std::move(text));
}

message wss_client::request(const std::string& request_json, std::int64_t id) {
  send(request_json);
  for (;;) {
    auto m = recv();
    if (!m) FAIL("no reply to " << request_json);
    if (m->num("id") == id) return std::move(*m);
  }
}

void make_cluster_certs(const std::string& dir, std::size_t nodes) {
  auto ca = run_kaiwa({"cert", "ca", "--out", dir});
  INFO(ca.output);
  REQUIRE(ca.status == 0);
  for (std::size_t i = 0; i < nodes; ++i) {
    auto name = "n" + std::to_string(i + 1);
    auto node = run_kaiwa({"cert", "node", "--ca", dir, "--name", name, "--out", dir});
    INFO(node.output);
    REQUIRE(node.status == 0);
  }
}

https_response https_get(std::uint16_t port, const std::string& target,
                         const std::string& trusted_cert_file) {
  asio::io_context ioc;
  auto ctx = client_context(trusted_cert_file);
  beast::ssl_stream<beast::tcp_stream> s(ioc, ctx);
  auto& socket = beast::get_lowest_layer(s).socket();
  asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), port);
  constexpr auto limit = std::chrono::milliseconds(10'000);
  require(run_bounded(ioc, socket, limit,
                      [&](auto h) { beast::get_lowest_layer(s).async_connect(at, h); }),
          "connect");
  require(run_bounded(ioc, socket, limit,
                      [&](auto h) { s.async_handshake(ssl::stream_base::client, h); }),
          "TLS handshake");
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  require(run_bounded(ioc, socket, limit, [&](auto h) { http::async_write(s, req, h); }), "write");
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  require(run_bounded(ioc, socket, limit, [&](auto h) { http::async_read(s, buf, res, h); }),
          "read");
  return {static_cast<int>(res.result_int()), res.body(),
          std::string(res[http::field::strict_transport_security])};
}

}  // namespace kaiwa::test
