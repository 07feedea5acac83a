#include "tests/support/ws_client.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <catch2/catch.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace kaiwa::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

message::message(std::string json)
    : json_(std::move(json)), parser_(std::make_shared<simdjson::dom::parser>()) {
  if (parser_->parse(json_).get(root_)) FAIL("server sent invalid JSON: " << json_);
}

std::string message::str(const char* key) const {
  std::string_view s;
  if (root_[key].get(s)) return {};
  return std::string(s);
}

std::int64_t message::num(const char* key) const {
  std::int64_t n = 0;
  if (root_[key].get(n)) return -1;
  return n;
}

bool message::has(const char* key) const { return !root_[key].error(); }

simdjson::dom::array message::array(const char* key) const {
  simdjson::dom::array a;
  if (!root_[key].get(a)) return a;
  // No such array (an error reply, e.g. `unavailable` right after a start): an empty one. A
  // default dom::array is none: it points at no document, and size() or a loop over it crashed
  // the test instead of letting its predicate be false.
  static simdjson::dom::parser parser;
  static const simdjson::dom::array empty =
      parser.parse(simdjson::padded_string(std::string_view("[]"))).get_array().value();
  return empty;
}

struct ws_client::impl {
  asio::io_context ioc;
  // Keeps the io thread alive while reading is paused and nothing is being written.
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  websocket::stream<beast::tcp_stream> ws{ioc};
  beast::flat_buffer buf;
  std::thread io;
  std::mutex mtx;
  std::condition_variable cv;
  std::deque<std::string> inbox;
  std::deque<std::pair<std::string, bool>> outbox;  // io thread only
  bool open = true;
  bool paused = false;
  bool reading = false;  // io thread only
  std::optional<std::uint16_t> close_code;

  void do_read() {
    reading = true;
    ws.async_read(buf, [this](beast::error_code ec, std::size_t) {
      reading = false;
      std::lock_guard lock(mtx);
      if (ec) {
        open = false;
        if (ws.reason().code != websocket::close_code::none) close_code = ws.reason().code;
        cv.notify_all();
        return;
      }
      inbox.push_back(beast::buffers_to_string(buf.data()));
      buf.consume(buf.size());
      cv.notify_all();
      if (!paused) do_read();
    });
  }

  void do_write() {
    auto& [data, binary] = outbox.front();
    ws.binary(binary);
    ws.async_write(asio::buffer(data), [this](beast::error_code ec, std::size_t) {
      outbox.pop_front();
      if (!ec && !outbox.empty()) do_write();
    });
  }
};

ws_client::ws_client(std::uint16_t port) : impl_(std::make_unique<impl>()) {
  auto& i = *impl_;
  beast::get_lowest_layer(i.ws).connect(
      asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  i.ws.read_message_max(64 << 20);
  i.ws.handshake("127.0.0.1", "/ws");
  i.do_read();
  i.io = std::thread([&i] { i.ioc.run(); });
}

ws_client::~ws_client() {
  asio::post(impl_->ioc, [&i = *impl_] {
    beast::error_code ignored;
    beast::get_lowest_layer(i.ws).socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(i.ws).close();
    i.work.reset();
  });
  impl_->io.join();
}

void ws_client::send(const std::string& text) {
  asio::post(impl_->ioc, [&i = *impl_, text] {
    i.outbox.emplace_back(text, false);
    if (i.outbox.size() == 1) i.do_write();
  });
}

void ws_client::send_binary(const std::string& bytes) {
  asio::post(impl_->ioc, [&i = *impl_, bytes] {
    i.outbox.emplace_back(bytes, true);
    if (i.outbox.size() == 1) i.do_write();
  });
}

std::optional<message> ws_client::recv(ms limit) {
  std::unique_lock lock(impl_->mtx);
  if (!impl_->cv.wait_for(lock, limit, [&] { return !impl_->inbox.empty() || !impl_->open; }))
    return std::nullopt;
  if (impl_->inbox.empty()) return std::nullopt;
  auto json = std::move(impl_->inbox.front());
  impl_->inbox.pop_front();
  lock.unlock();
  return message(std::move(json));
}

message ws_client::next(ms limit) {
  auto m = recv(limit);
  if (!m) FAIL("no message from the server in time");
  return std::move(*m);
}

message ws_client::next_where(const std::function<bool(const message&)>& pred, ms limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto left = std::chrono::duration_cast<ms>(deadline - std::chrono::steady_clock::now());
    auto m = recv(std::max(left, ms(0)));
    if (!m) FAIL("no matching message from the server in time");
    if (pred(*m)) return std::move(*m);
  }
}

message ws_client::request(const std::string& request_json, std::int64_t id) {
  send(request_json);
  return next_where([id](const message& m) { return m.num("id") == id; });
}

message ws_client::request_while_unavailable(const std::string& request_json, std::int64_t id,
                                             ms limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto reply = request(request_json, id);
    if (reply.str("code") != "unavailable" || std::chrono::steady_clock::now() > deadline)
      return reply;
    std::this_thread::sleep_for(ms(20));  // the retry interval, as the bench's
  }
}

void ws_client::hello(const std::string& user) {
  auto m = request(R"({"op":"hello","id":-1,"user":")" + user + "\"}", -1);
  if (m.str("op") != "welcome") FAIL("no welcome for " << user << ": " << m.json());
}

std::optional<std::uint16_t> ws_client::close_code(ms limit) {
  std::unique_lock lock(impl_->mtx);
  impl_->cv.wait_for(lock, limit, [&] { return !impl_->open; });
  return impl_->close_code;
}

bool ws_client::is_open() const {
  std::lock_guard lock(impl_->mtx);
  return impl_->open;
}

void ws_client::pause_reading() {
  std::lock_guard lock(impl_->mtx);
  impl_->paused = true;
}

}  // namespace kaiwa::test

namespace kaiwa::test {

void ws_client::resume_reading() {
  asio::post(impl_->ioc, [&i = *impl_] {
    {
      std::lock_guard lock(i.mtx);
      i.paused = false;
      if (!i.open) return;
    }
    if (!i.reading) i.do_read();
  });
}

}  // namespace kaiwa::test
