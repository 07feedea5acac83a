#include "apps/admin_client.hpp"

#include "core/address.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace kaiwa::app {

namespace beast = boost::beast;
namespace http = beast::http;

std::string admin_target::address() const {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

std::optional<admin_target> parse_admin_url(const std::string& url) {
  std::string_view rest = url;
  if (rest.starts_with("http://")) rest.remove_prefix(7);
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  auto hp = parse_host_port(rest);
  if (!hp || hp->port == 0) return std::nullopt;
  admin_target t;
  t.host = std::move(hp->host);
  t.port = hp->port;
  return t;
}

std::optional<admin_response> admin_call(const admin_target& t, const std::string& method,
                                         const std::string& target, std::string& error,
                                         std::chrono::seconds timeout) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(t.host, std::to_string(t.port), ec);
  if (!ec) {
    stream.expires_after(timeout);
    stream.connect(endpoints, ec);
  }
  if (ec) {
    error = "can't reach the node's admin API at " + t.address() + ": " + ec.message() +
            " (is a node running there? --admin names its admin URL)";
    return std::nullopt;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, t.host);
  if (!t.token.empty()) req.set(http::field::authorization, "Bearer " + t.token);
  // Proves to the node that this is no web page (apps/node.cpp, browser_request_refusal).
  req.set("Kaiwa-Admin", "1");
  req.prepare_payload();
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::write(stream, req, ec);
  if (!ec) http::read(stream, buf, res, ec);
  if (ec) {
    error =
        "the node at " + t.address() + " accepted the connection but " +
        (ec == beast::error::timeout ? "didn't answer " + method + " " + target + " within " +
                                           std::to_string(timeout.count()) + " s"
                                     : "broke off " + method + " " + target + ": " + ec.message());
    return std::nullopt;
  }
  return admin_response{static_cast<int>(res.result_int()), res.body()};
}

}  // namespace kaiwa::app
