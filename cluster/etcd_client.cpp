#include "cluster/etcd_client.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>

#include "cluster/detail/etcd_json.hpp"
#include "core/process.hpp"

namespace kaiwa::cluster {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock = std::chrono::steady_clock;

const char* to_string(errc e) noexcept {
  switch (e) {
    case errc::unavailable:
      return "unavailable";
    case errc::timeout:
      return "timeout";
    case errc::unknown_outcome:
      return "unknown_outcome";
    case errc::protocol:
      return "protocol";
    case errc::etcd:
      return "etcd";
    case errc::invalid:
      return "invalid";
  }
  return "unknown";
}

// -- compare and txn_op factories --------------------------------------------------------------

namespace {

/// etcd's range for every key starting with `prefix`: an empty prefix is every key ("\0" up to
/// no end), since etcd refuses an empty key.
std::pair<std::string, std::string> prefix_range(const std::string& prefix) {
  if (prefix.empty()) return {std::string(1, '\0'), std::string(1, '\0')};
  return {prefix, detail::prefix_end(prefix)};
}

}  // namespace

compare compare::mod_revision(std::string key, compare_result r, std::int64_t n) {
  return {std::move(key), compare_target::mod, r, n, {}};
}
compare compare::create_revision(std::string key, compare_result r, std::int64_t n) {
  return {std::move(key), compare_target::create, r, n, {}};
}
compare compare::version(std::string key, compare_result r, std::int64_t n) {
  return {std::move(key), compare_target::version, r, n, {}};
}
compare compare::value_is(std::string key, compare_result r, std::string value) {
  return {std::move(key), compare_target::value, r, 0, std::move(value)};
}

txn_op txn_op::put(std::string key, std::string value, std::int64_t lease) {
  return {kind::put, std::move(key), {}, std::move(value), lease};
}
txn_op txn_op::del(std::string key) { return {kind::del, std::move(key), {}, {}, 0}; }
txn_op txn_op::del_prefix(const std::string& prefix) {
  auto [key, end] = prefix_range(prefix);
  return {kind::del, std::move(key), std::move(end), {}, 0};
}
txn_op txn_op::get(std::string key) { return {kind::range, std::move(key), {}, {}, 0}; }
txn_op txn_op::get_prefix(const std::string& prefix) {
  auto [key, end] = prefix_range(prefix);
  return {kind::range, std::move(key), std::move(end), {}, 0};
}

// -- transport -------------------------------------------------------------------------------

namespace {

/// One HTTP/1.1 connection to one endpoint, driven on the calling thread: each step runs the
/// io_context until the step completes or its deadline passes (then the socket is closed and
/// the step fails with timed_out). `stopping`, when given, is checked before each step; whoever
/// sets it posts abort() to the io_context, which ends the step under way.
class connection {
 public:
  connection(asio::io_context& ioc, const std::atomic<bool>* stopping)
      : ioc_(ioc), resolver_(ioc), socket_(ioc), stopping_(stopping) {}

  beast::error_code connect(const endpoint& ep, clock::time_point deadline) {
    beast::error_code ec;
    auto address = asio::ip::make_address(ep.host, ec);
    if (!ec) {
      return run(
          [&](auto handler) {
            socket_.async_connect({address, ep.port}, handler);
          },
          deadline);
    }
    tcp::resolver::results_type found;
    ec = run(
        [&](auto handler) {
          resolver_.async_resolve(ep.host, std::to_string(ep.port),
                                  [&found, handler](beast::error_code e, auto results) mutable {
                                    found = std::move(results);
                                    handler(e);
                                  });
        },
        deadline);
    if (ec) return ec;
    return run([&](auto handler) { asio::async_connect(socket_, found, handler); }, deadline);
  }

  beast::error_code write(const endpoint& ep, std::string_view target, const std::string& body,
                          clock::time_point deadline) {
    http::request<http::string_body> req{http::verb::post,
                                         beast::string_view(target.data(), target.size()), 11};
    req.set(http::field::host, ep.host + ":" + std::to_string(ep.port));
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    return run([&](auto handler) { http::async_write(socket_, req, handler); }, deadline);
  }

  template <class Parser>
  beast::error_code read_header(beast::flat_buffer& buf, Parser& parser,
                                clock::time_point deadline) {
    return run([&](auto handler) { http::async_read_header(socket_, buf, parser, handler); },
               deadline);
  }

  template <class Parser>
  beast::error_code read(beast::flat_buffer& buf, Parser& parser, clock::time_point deadline) {
    return run([&](auto handler) { http::async_read(socket_, buf, parser, handler); }, deadline);
  }

  template <class Parser>
  beast::error_code read_some(beast::flat_buffer& buf, Parser& parser, clock::time_point deadline) {
    return run([&](auto handler) { http::async_read_some(socket_, buf, parser, handler); },
               deadline);
  }

  /// Has the kernel probe a connection that stays silent (a watch with no events): 10 s idle,
  /// then every 5 s; after 3 unanswered probes the read fails. A member that vanished without a
  /// reset (powered off, partitioned) is left within 25 s, not when TCP's default 2 h passes.
  void probe_when_idle() {
    beast::error_code ignored;
    socket_.set_option(asio::socket_base::keep_alive(true), ignored);
    int idle = 10, interval = 5, count = 3;
    auto fd = socket_.native_handle();
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  }

  /// Ends the step under way (it completes with operation_aborted). On the io_context's thread.
  void abort() {
    beast::error_code ignored;
    resolver_.cancel();
    socket_.close(ignored);
  }

 private:
  template <class Start>
  beast::error_code run(Start&& start, clock::time_point deadline) {
    if (stopping_ && stopping_->load()) return asio::error::operation_aborted;
    beast::error_code result;
    bool done = false;
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc_.restart();
    if (deadline == clock::time_point::max())
      ioc_.run();
    else
      ioc_.run_until(deadline);
    if (done) return result;
    abort();
    ioc_.restart();
    ioc_.run();  // the aborted step's handler
    return asio::error::timed_out;
  }

  asio::io_context& ioc_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  const std::atomic<bool>* stopping_;
};

/// A flat_buffer big enough for a header of `limits.max_header_bytes`, and no bigger than that
/// plus one read: the parser consumes body bytes as they come.
beast::flat_buffer read_buffer(const etcd_limits& limits) {
  return beast::flat_buffer(limits.max_header_bytes + (64 << 10));
}

error transport_error(const beast::error_code& ec, const endpoint& ep, std::string_view what) {
  // A connection that broke (refused, reset, closed early) is unavailable; an answer that is
  // not HTTP or breaks a limit is a protocol error.
  auto broke = ec == http::error::end_of_stream || ec == http::error::partial_message;
  auto code =
      ec == asio::error::timed_out ? errc::timeout
      : ec.category() == http::make_error_code(http::error::end_of_stream).category() && !broke
          ? errc::protocol
          : errc::unavailable;
  return {code,
          std::string(what) + " " + ep.host + ":" + std::to_string(ep.port) + ": " + ec.message(),
          0};
}

}  // namespace

// -- the client ------------------------------------------------------------------------------

struct etcd_client::impl {
  enum class effect { read, write };

  std::vector<endpoint> endpoints;
  std::chrono::milliseconds timeout;
  etcd_limits limits;
  // The endpoint that answered last: calls start there, so a dead first endpoint costs one
  // refused connection once, not at every call.
  std::atomic<std::size_t> preferred{0};

  /// POSTs `body` to `target` at the endpoints in turn; the body of the first HTTP 200.
  result<std::string> call(std::string_view target, const std::string& body, effect fx) {
    if (endpoints.empty()) return error{errc::invalid, "no etcd endpoints", 0};
    error last{errc::unavailable, "no etcd endpoint answered", 0};
    auto first = preferred.load();
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
      auto index = (first + i) % endpoints.size();
      auto& ep = endpoints[index];
      bool sent = false;
      auto r = attempt(ep, target, body, sent);
      if (r.ok()) {
        preferred.store(index);
        return r;
      }
      last = r.err();
      // etcd's own answer ends the call (a failed compare is no error; a bad key is), unless it
      // says this member could not serve it (14: UNAVAILABLE, e.g. no leader): not applied.
      if (last.code == errc::etcd) {
        if (last.etcd_code == 14) continue;
        return last;
      }
      if (!sent || fx == effect::read) continue;
      // A write that may have been applied is not repeated: the caller re-reads.
      if (last.code == errc::protocol) return last;
      return error{errc::unknown_outcome, last.message + " (after the request was sent)", 0};
    }
    return last;
  }

  result<std::string> attempt(const endpoint& ep, std::string_view target, const std::string& body,
                              bool& sent) {
    try {
      asio::io_context ioc(1);
      connection conn(ioc, nullptr);
      auto deadline = clock::now() + timeout;
      if (auto ec = conn.connect(ep, deadline)) return transport_error(ec, ep, "connect");
      if (auto ec = conn.write(ep, target, body, deadline))
        return transport_error(ec, ep, "send to");
      sent = true;
      auto buf = read_buffer(limits);
      http::response_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      parser.body_limit(limits.max_response_bytes);
      // The header alone first: Boost 1.74's parser, made eager by http::async_read, loses the
      // body_limit error of a response's Content-Length and reads the whole body; reading the
      // header alone refuses it before any body is read.
      if (auto ec = conn.read_header(buf, parser, deadline))
        return transport_error(ec, ep, "read from");
      if (auto ec = conn.read(buf, parser, deadline)) return transport_error(ec, ep, "read from");
      auto& res = parser.get();
      if (res.result_int() != 200) return detail::parse_error(res.result_int(), res.body());
      return std::move(res.body());
    } catch (const std::exception& e) {
      // Out of file descriptors or memory for the io_context or the answer: not sent.
      return error{errc::unavailable, std::string("etcd call failed: ") + e.what(), 0};
    }
  }
};

etcd_client::etcd_client(std::vector<endpoint> endpoints, std::chrono::milliseconds timeout,
                         etcd_limits limits)
    : impl_(std::make_unique<impl>()) {
  impl_->endpoints = std::move(endpoints);
  impl_->timeout = timeout;
  impl_->limits = limits;
}

etcd_client::~etcd_client() = default;

namespace {

template <class T, class Parse>
result<T> then(result<std::string> body, Parse parse) {
  if (!body) return body.err();
  return parse(*body);
}

}  // namespace

result<range_response> etcd_client::get(const std::string& key) {
  return then<range_response>(
      impl_->call("/v3/kv/range", detail::range_request(key, {}), impl::effect::read),
      detail::parse_range);
}

result<range_response> etcd_client::range(const std::string& prefix) {
  auto [key, end] = prefix_range(prefix);
  return then<range_response>(
      impl_->call("/v3/kv/range", detail::range_request(key, end), impl::effect::read),
      detail::parse_range);
}

result<put_response> etcd_client::put(const std::string& key, const std::string& value,
                                      std::int64_t lease) {
  return then<put_response>(
      impl_->call("/v3/kv/put", detail::put_request(key, value, lease), impl::effect::write),
      detail::parse_put);
}

result<delete_response> etcd_client::del(const std::string& key) {
  return then<delete_response>(
      impl_->call("/v3/kv/deleterange", detail::delete_request(key, {}), impl::effect::write),
      detail::parse_delete);
}

result<delete_response> etcd_client::del_prefix(const std::string& prefix) {
  auto [key, end] = prefix_range(prefix);
  return then<delete_response>(
      impl_->call("/v3/kv/deleterange", detail::delete_request(key, end), impl::effect::write),
      detail::parse_delete);
}

status etcd_client::compact(std::int64_t revision) {
  auto body =
      impl_->call("/v3/kv/compaction", detail::compaction_request(revision), impl::effect::write);
  if (!body) return body.err();
  return detail::parse_empty(*body);
}

result<txn_response> etcd_client::put_if_mod_revision(const std::string& key,
                                                      const std::string& value,
                                                      std::int64_t expected, std::int64_t lease) {
  return txn({compare::mod_revision(key, compare_result::equal, expected)},
             {txn_op::put(key, value, lease)}, {txn_op::get(key)});
}

result<txn_response> etcd_client::delete_if_mod_revision(const std::string& key,
                                                         std::int64_t expected) {
  return txn({compare::mod_revision(key, compare_result::equal, expected)}, {txn_op::del(key)},
             {txn_op::get(key)});
}

result<txn_response> etcd_client::txn(const std::vector<compare>& compares,
                                      const std::vector<txn_op>& success,
                                      const std::vector<txn_op>& failure) {
  return then<txn_response>(
      impl_->call("/v3/kv/txn", detail::txn_request(compares, success, failure),
                  impl::effect::write),
      detail::parse_txn);
}

result<lease_grant_response> etcd_client::lease_grant(std::int64_t ttl_seconds) {
  if (ttl_seconds <= 0) return error{errc::invalid, "lease TTL must be positive", 0};
  return then<lease_grant_response>(
      impl_->call("/v3/lease/grant", detail::lease_grant_request(ttl_seconds), impl::effect::write),
      detail::parse_lease_grant);
}

result<std::int64_t> etcd_client::lease_keepalive(std::int64_t id) {
  // Renewing twice is harmless: a keepalive retries at the next endpoint like a read.
  return then<std::int64_t>(
      impl_->call("/v3/lease/keepalive", detail::lease_id_request(id), impl::effect::read),
      detail::parse_lease_keepalive);
}

status etcd_client::lease_revoke(std::int64_t id) {
  auto body = impl_->call("/v3/lease/revoke", detail::lease_id_request(id), impl::effect::write);
  if (!body) return body.err();
  return detail::parse_empty(*body);
}

// -- watch ---------------------------------------------------------------------------------

// A revision a watch could not resume after (revision + 1 would overflow): only a broken peer
// sends it.
constexpr auto max_revision = std::numeric_limits<std::int64_t>::max();

struct watcher::state {
  std::vector<endpoint> endpoints;
  std::chrono::milliseconds timeout{};
  etcd_limits limits;
  std::string key;
  std::string range_end;
  std::function<void(const watch_update&)> callback;

  std::atomic<std::int64_t> next_revision{0};  // 0: from now on (until etcd says which)
  std::atomic<bool> stopping{false};
  asio::io_context ioc{1};
  // The stream's connection while one is open; read and written on the watch thread only (the
  // abort posted by stop() runs there too, inside ioc.run()).
  connection* current = nullptr;
  std::mutex mtx;  // with cv: the backoff between streams, cut short by stop()
  std::condition_variable cv;
  std::thread thread;

  void run() {
    auto backoff = std::chrono::milliseconds(50);
    for (std::size_t i = 0; !stopping.load(); ++i) {
      bool created = false;
      if (stream(endpoints[i % endpoints.size()], created)) return;  // compacted: ended
      if (created) backoff = std::chrono::milliseconds(50);
      std::unique_lock lock(mtx);
      cv.wait_for(lock, backoff, [&] { return stopping.load(); });
      backoff = std::min(backoff * 2, std::chrono::milliseconds(1000));
    }
  }

  /// One streaming request, until it breaks or the watch stops; true when the watch has ended
  /// (compaction reported).
  bool stream(const endpoint& ep, bool& created) {
    try {
      connection conn(ioc, &stopping);
      current = &conn;
      struct reset {
        connection*& c;
        ~reset() { c = nullptr; }
      } on_exit{current};
      auto deadline = clock::now() + timeout;
      if (conn.connect(ep, deadline) ||
          conn.write(ep, "/v3/watch",
                     detail::watch_create_request(key, range_end, next_revision.load()), deadline))
        return false;
      conn.probe_when_idle();

      std::string pending;  // the stream's bytes after its last complete message
      bool overflow = false;
      auto on_chunk_header = [&](std::uint64_t size, beast::string_view, beast::error_code& ec) {
        if (size > limits.max_response_bytes) ec = http::error::body_limit;
      };
      auto on_chunk_body = [&](std::uint64_t, beast::string_view data,
                               beast::error_code& ec) -> std::size_t {
        // One message (plus its newline) at most is ever pending.
        if (pending.size() + data.size() > limits.max_response_bytes + 2) {
          overflow = true;
          ec = http::error::body_limit;
          return 0;
        }
        pending.append(data.data(), data.size());
        return data.size();
      };
      http::response_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.max_header_bytes));
      parser.body_limit(limits.max_response_bytes);
      parser.on_chunk_header(on_chunk_header);
      parser.on_chunk_body(on_chunk_body);
      auto buf = read_buffer(limits);
      if (conn.read_header(buf, parser, deadline)) return false;
      // An error is a plain (bounded) answer; a watch streams chunks, as long as it lasts.
      if (parser.get().result_int() != 200 || !parser.chunked()) return false;
      parser.body_limit(boost::none);
      while (!parser.is_done()) {
        if (conn.read_some(buf, parser, clock::time_point::max()) || overflow) return false;
        std::size_t start = 0;
        for (auto nl = pending.find('\n'); nl != std::string::npos;
             nl = pending.find('\n', start)) {
          auto line = std::string_view(pending).substr(start, nl - start);
          start = nl + 1;
          if (line.find_first_not_of(" \r\t") == std::string_view::npos) continue;
          auto m = detail::parse_watch(line);
          if (!m) return false;
          if (m->created) {
            created = true;
            // Watching from now on: now is the header's revision; a resumed stream continues
            // from the revision after it.
            if (m->revision < 0 || m->revision == max_revision) return false;
            if (next_revision.load() == 0) next_revision.store(m->revision + 1);
          }
          if (m->canceled) {
            if (m->compact_revision <= 0) return false;
            watch_update u;
            u.what = watch_update::kind::compacted;
            u.compact_revision = m->compact_revision;
            callback(u);
            return true;
          }
          if (m->events.empty()) continue;
          if (!deliver(std::move(m->events))) return false;
        }
        pending.erase(0, start);
      }
      return false;
    } catch (const std::exception&) {
      // No memory or descriptors for this stream: the next try comes after the backoff.
      return false;
    }
  }

  /// Hands the events on in revision order; false if they are out of order or at a revision
  /// that can't be resumed after (a broken peer).
  bool deliver(std::vector<watch_event> events) {
    auto next = next_revision.load();
    std::int64_t last = 0;
    watch_update u;
    for (auto& e : events) {
      if (e.kv.mod_revision < last || e.kv.mod_revision == max_revision) return false;
      last = e.kv.mod_revision;
      if (last >= next) u.events.push_back(std::move(e));
    }
    if (u.events.empty()) return true;
    // After the callback: one that throws gets the same events again from the next stream.
    callback(u);
    next_revision.store(last + 1);
    return true;
  }
};

watcher::watcher(std::shared_ptr<state> s) : state_(std::move(s)) {
  state_->thread = named_thread("kaiwa-etcd", [s = state_] { s->run(); });
}

watcher::~watcher() { stop(); }

void watcher::stop() {
  auto& s = *state_;
  if (!s.stopping.exchange(true)) {
    {
      // A backoff between its check of `stopping` and its wait sees the flag or the notify.
      std::lock_guard lock(s.mtx);
    }
    s.cv.notify_all();
    asio::post(s.ioc, [p = &s] {
      if (p->current) p->current->abort();
    });
  }
  if (!s.thread.joinable()) return;
  // From the callback (its own thread): the thread ends when the callback returns; the state
  // it holds outlives this watcher.
  if (s.thread.get_id() == std::this_thread::get_id())
    s.thread.detach();
  else
    s.thread.join();
}

std::int64_t watcher::next_revision() const { return state_->next_revision.load(); }

std::unique_ptr<watcher> etcd_client::watch(const std::string& prefix, std::int64_t start_revision,
                                            std::function<void(const watch_update&)> callback) {
  auto s = std::make_shared<watcher::state>();
  s->endpoints = impl_->endpoints;
  s->timeout = impl_->timeout;
  s->limits = impl_->limits;
  std::tie(s->key, s->range_end) = prefix_range(prefix);
  s->callback = std::move(callback);
  s->next_revision.store(start_revision);
  if (s->endpoints.empty()) s->stopping.store(true);
  return std::make_unique<watcher>(std::move(s));
}

}  // namespace kaiwa::cluster
