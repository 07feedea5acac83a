#include "net/gateway.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <thread>

#include "core/log.hpp"
#include "core/process.hpp"
#include "net/detail/http_session.hpp"
#include "net/detail/server_state.hpp"
#include "net/detail/tls.hpp"
#include "net/detail/ws_session.hpp"

namespace kaiwa::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

// TCP keepalive on accepted sockets: a peer that vanished (power off, NAT state lost) is found
// even while the connection is idle or its reads are paused, after about idle + interval * count
// seconds. The WebSocket pings find it sooner; this also covers HTTP and paused sessions.
constexpr int keepalive_idle_s = 60;
constexpr int keepalive_interval_s = 10;
constexpr int keepalive_count = 3;

// After a failed accept (out of file descriptors, mostly) the listener waits this long before
// accepting again: the failing connection stays in the backlog, so accepting at once would fail
// again at once, a busy loop on lane 0 until some descriptor is freed.
constexpr auto accept_retry_delay = std::chrono::milliseconds(100);

void set_keepalive(tcp::socket& s) {
  error_code ignored;
  s.set_option(asio::socket_base::keep_alive(true), ignored);
  int fd = s.native_handle();
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &keepalive_idle_s, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &keepalive_interval_s, sizeof(int));
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &keepalive_count, sizeof(int));
}

/// `a` as 16 bytes, IPv4 as IPv4-mapped IPv6, so that one comparison covers both families.
std::array<unsigned char, 16> v6_bytes(const asio::ip::address& a) {
  return a.is_v4() ? asio::ip::make_address_v6(asio::ip::v4_mapped, a.to_v4()).to_bytes()
                   : a.to_v6().to_bytes();
}

std::optional<detail::source_network> parse_network(const std::string& cidr) {
  error_code ec;
  if (auto n4 = asio::ip::make_network_v4(cidr, ec); !ec)
    return detail::source_network{v6_bytes(n4.network()), 96u + n4.prefix_length()};
  if (auto n6 = asio::ip::make_network_v6(cidr, ec); !ec)
    return detail::source_network{n6.network().to_bytes(), n6.prefix_length()};
  return std::nullopt;
}

bool in_network(const std::array<unsigned char, 16>& a, const detail::source_network& n) {
  for (unsigned bit = 0; bit < n.prefix; bit += 8) {
    unsigned bits = std::min(8u, n.prefix - bit);
    auto mask = static_cast<unsigned char>(0xff00u >> bits);
    if ((a[bit / 8] & mask) != (n.bytes[bit / 8] & mask)) return false;
  }
  return true;
}

/// What the per-address limit counts: an IPv4 address, or the /64 of an IPv6 one (a subscriber
/// is given a whole /64, so counting single IPv6 addresses would limit nothing).
std::string address_key(const asio::ip::address& a) {
  if (a.is_v4()) return a.to_string();
  auto v6 = a.to_v6();
  if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
  auto b = v6.to_bytes();
  std::fill(b.begin() + 8, b.end(), 0);
  return asio::ip::address_v6(b).to_string() + "/64";
}

/// Whether an accepted socket `fd` eats into the file descriptors kept for the node itself. The
/// journal opens files as it goes (RocksDB: one per flush and compaction output) and fails its
/// writes for good when it can't, and the admin API must stay reachable: connections may use
/// the descriptors only up to a reserve of a sixteenth of the limit (at least 16), the admin
/// listener half of it. Linux hands out the lowest free descriptor, so a socket numbered within
/// the reserve means at most that many are free. Read at each accept: the limit may change.
bool within_fd_reserve(int fd, bool public_listener) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return false;
  auto reserve = std::max<std::uint64_t>(16, rl.rlim_cur / 16);
  if (!public_listener) reserve /= 2;
  return static_cast<std::uint64_t>(fd) + reserve >= rl.rlim_cur;
}

/// Accepts connections on lane 0's io_context and deals them out to the lanes round-robin.
class listener {
 public:
  listener(std::vector<std::unique_ptr<detail::io_lane>>& lanes, detail::server_state& st,
           http_handler handler, bool websocket)
      : lanes_(lanes),
        st_(st),
        handler_(std::move(handler)),
        websocket_(websocket),
        acceptor_(lanes[0]->ioc),
        retry_(lanes[0]->ioc) {}

  std::optional<std::string> open(const endpoint& ep) {
    error_code ec;
    auto addr = asio::ip::make_address(ep.host, ec);
    if (ec) return "invalid address '" + ep.host + "'";
    tcp::endpoint where(addr, ep.port);
    acceptor_.open(where.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(where, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec)
      return "can't listen on " + ep.host + ":" + std::to_string(ep.port) + ": " + ec.message();
    port_ = acceptor_.local_endpoint().port();
    do_accept();
    return std::nullopt;
  }

  std::uint16_t port() const { return port_; }

  void close() {
    asio::post(acceptor_.get_executor(), [this] {
      error_code ignored;
      acceptor_.close(ignored);
      retry_.cancel();
    });
  }

 private:
  void do_accept() {
    auto& l = *lanes_[next_++ % lanes_.size()];
    acceptor_.async_accept(l.ioc, [this, &l](error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) return retry_later(ec);
      if (failing_) {
        failing_ = false;
        log(log_level::info, "accept_recovered", {{"port", port_}});
      }
      if (within_fd_reserve(socket.native_handle(), websocket_)) {
        st_.refused_by_fds.fetch_add(1, std::memory_order_relaxed);
        if (!refusing_)
          log(log_level::warn, "connections_refused", {{"port", port_}, {"reason", "open files"}});
        refusing_ = true;
        error_code ignored;
        socket.close(ignored);
        return do_accept();
      }
      refusing_ = false;
      if (auto slot = admit(socket)) {
        set_keepalive(socket);
        auto tls = websocket_ ? st_.tls_context() : nullptr;
        asio::post(l.ioc, [this, &l, s = std::move(socket), tls = std::move(tls),
                           slot = std::move(*slot)]() mutable {
          detail::serve_http(
              tls ? detail::stream(std::move(s), std::move(tls)) : detail::stream(std::move(s)),
              std::move(slot), l, st_, handler_, websocket_);
        });
      }
      do_accept();
    });
  }

  void retry_later(const error_code& ec) {
    if (!failing_) {
      failing_ = true;
      log(log_level::warn, "accept_failed", {{"port", port_}, {"error", ec.message()}});
    }
    retry_.expires_after(accept_retry_delay);
    retry_.async_wait([this](error_code ec) {
      if (!ec && acceptor_.is_open()) do_accept();
    });
  }

  /// A place in the count of the peer's address (an empty one on the admin listener or for an
  /// exempt network), or nullopt, having closed the socket, when the address holds its limit.
  std::optional<detail::connection_counts::slot> admit(tcp::socket& socket) {
    if (!websocket_) return detail::connection_counts::slot();
    error_code ec;
    auto peer = socket.remote_endpoint(ec);
    if (ec) return std::nullopt;  // already gone
    auto addr = peer.address();
    auto bytes = v6_bytes(addr);
    for (auto& n : st_.address_limit_exempt)
      if (in_network(bytes, n)) return detail::connection_counts::slot();
    auto slot = st_.by_address.take(address_key(addr), st_.cfg.max_connections_per_address);
    if (!slot) {
      st_.refused_by_address.fetch_add(1, std::memory_order_relaxed);
      socket.close(ec);  // at once: answering would cost what the limit is there to protect
    }
    return slot;
  }

  std::vector<std::unique_ptr<detail::io_lane>>& lanes_;
  detail::server_state& st_;
  http_handler handler_;
  bool websocket_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;  // the wait after a failed accept
  bool failing_ = false;      // accepting fails (logged once until an accept succeeds)
  bool refusing_ = false;     // the last connection was refused (logged once until one is taken)
  std::size_t next_ = 0;
  std::uint16_t port_ = 0;
};

}  // namespace

struct gateway::impl {
  impl(gateway_config cfg, rooms& r, read::read_side& rs, http_handler pub, http_handler adm)
      : st(std::move(cfg), r, rs) {
    // By default one lane a CPU this process may use (its affinity mask and cgroup quota).
    auto n = st.cfg.io_threads ? st.cfg.io_threads : available_cpus().cpus;
    for (std::size_t i = 0; i < n; ++i) lanes.push_back(std::make_unique<detail::io_lane>());
    public_listener = std::make_unique<listener>(lanes, st, std::move(pub), true);
    admin_listener = std::make_unique<listener>(lanes, st, std::move(adm), false);
  }

  /// Sums one of the lanes' traffic counters; `pick` selects it from a lane_traffic.
  template <class Pick>
  std::uint64_t traffic(Pick pick) const {
    std::uint64_t n = 0;
    for (auto& l : lanes) n += pick(l->traffic).load(std::memory_order_relaxed);
    return n;
  }

  detail::server_state st;
  std::vector<std::unique_ptr<detail::io_lane>> lanes;
  std::unique_ptr<listener> public_listener;
  std::unique_ptr<listener> admin_listener;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::vector<std::thread> threads;
};

gateway::gateway(gateway_config cfg, rooms& r, read::read_side& rs, http_handler public_http,
                 http_handler admin_http)
    : impl_(std::make_unique<impl>(std::move(cfg), r, rs, std::move(public_http),
                                   std::move(admin_http))) {}

void gateway::push_to_user(const user_id& user, std::string_view json) {
  auto links = impl_->st.sessions_by_user.of(user.str());
  if (links.empty()) return;
  auto f = text_frame(json);  // encoded once for all of them
  for (auto& link : links) link->post([link, f] { link->push(f); });
}

gateway::~gateway() { stop(); }

std::optional<std::string> gateway::start() {
  auto& cfg = impl_->st.cfg;
  if (cfg.tls_cert.empty() != cfg.tls_key.empty())
    return std::string("TLS needs both a certificate chain and a key file");
  if (!cfg.tls_cert.empty())
    if (auto err = reload_tls()) return err;
  for (auto& cidr : cfg.address_limit_exempt) {
    auto n = parse_network(cidr);
    if (!n) return "'" + cidr + "' is not a network in CIDR form (like 10.0.0.0/8 or fd00::/8)";
    impl_->st.address_limit_exempt.push_back(*n);
  }
  if (auto err = impl_->public_listener->open(impl_->st.cfg.listen)) return err;
  if (auto err = impl_->admin_listener->open(impl_->st.cfg.admin)) return err;
  for (auto& l : impl_->lanes) {
    impl_->guards.push_back(asio::make_work_guard(l->ioc));
    impl_->threads.push_back(named_thread("kaiwa-io-" + std::to_string(impl_->threads.size()),
                                          [&ioc = l->ioc] { ioc.run(); }));
  }
  return std::nullopt;
}

std::optional<std::string> gateway::reload_tls() {
  auto& cfg = impl_->st.cfg;
  if (cfg.tls_cert.empty()) return std::string("no TLS certificate is configured");
  std::string error;
  auto ctx = detail::make_tls_context(cfg.tls_cert, cfg.tls_key, error);
  if (!ctx) return error;
  impl_->st.set_tls_context(std::move(ctx));
  return std::nullopt;
}

void gateway::set_token_keys(token_keys keys) {
  impl_->st.set_token_keys(std::make_shared<const token_keys>(std::move(keys)));
}

std::uint16_t gateway::public_port() const { return impl_->public_listener->port(); }
std::uint16_t gateway::admin_port() const { return impl_->admin_listener->port(); }

void gateway::refuse_sessions() { impl_->st.accepting = false; }

void gateway::stop_accepting() {
  refuse_sessions();
  impl_->public_listener->close();
}

void gateway::close_sessions() {
  for (auto& l : impl_->lanes) {
    asio::post(l->ioc, [lp = l.get()] {
      // close() may end a session at once, which erases it from the set: iterate a copy.
      std::vector<detail::ws_session*> sessions(lp->sessions.begin(), lp->sessions.end());
      for (auto* s : sessions) s->close(close_code::going_away, "node shutting down");
    });
  }
}

bool gateway::wait_sessions_closed(std::chrono::milliseconds limit) {
  std::unique_lock lock(impl_->st.closed_mtx);
  return impl_->st.closed_cv.wait_for(lock, limit, [&] { return impl_->st.connections == 0; });
}

void gateway::stop() {
  if (impl_->threads.empty()) return;
  impl_->admin_listener->close();
  impl_->public_listener->close();
  impl_->guards.clear();
  for (auto& l : impl_->lanes) l->ioc.stop();
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

void gateway::render_metrics(std::string& out) const {
  auto& s = impl_->st;
  out +=
      "# HELP kaiwa_requests_total Client requests by op (unknown: unparseable or unknown op).\n"
      "# TYPE kaiwa_requests_total counter\n";
  for (std::size_t i = 0; i < detail::request_ops.size(); ++i)
    out += "kaiwa_requests_total{op=\"" + std::string(detail::request_ops[i]) + "\"} " +
           std::to_string(impl_->traffic([i](auto& t) -> auto& { return t.requests_by_op[i]; })) +
           "\n";
  out +=
      "# HELP kaiwa_messages_out_total Messages queued to clients, by op (control: close, pong).\n"
      "# TYPE kaiwa_messages_out_total counter\n";
  for (std::size_t i = 0; i < frame_op_count; ++i)
    out += "kaiwa_messages_out_total{op=\"" + std::string(frame_ops[i]) + "\"} " +
           std::to_string(impl_->traffic([i](auto& t) -> auto& { return t.out_by_op[i]; })) + "\n";
  out +=
      "# HELP kaiwa_connections_closed_by_reason_total WebSocket sessions closed, by reason "
      "(client: the client hung up or the network failed).\n"
      "# TYPE kaiwa_connections_closed_by_reason_total counter\n";
  for (std::size_t i = 0; i < detail::close_reasons.size(); ++i)
    out += "kaiwa_connections_closed_by_reason_total{reason=\"" +
           std::string(detail::close_reasons[i]) + "\"} " +
           std::to_string(s.closes_by_reason[i].load(std::memory_order_relaxed)) + "\n";
  out +=
      "# HELP kaiwa_ws_messages_refused_total Client messages refused and skipped unread, by "
      "reason.\n"
      "# TYPE kaiwa_ws_messages_refused_total counter\n";
  for (std::size_t i = 0; i < detail::refusals.size(); ++i)
    out += "kaiwa_ws_messages_refused_total{reason=\"" + std::string(detail::refusals[i]) + "\"} " +
           std::to_string(s.refused_messages[i].load(std::memory_order_relaxed)) + "\n";
  auto counter = [&out](const char* name, const char* help, const std::atomic<std::uint64_t>& v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v.load(std::memory_order_relaxed)) + "\n";
  };
  counter("kaiwa_ws_pings_sent_total", "WebSocket pings sent to idle connections.", s.pings_sent);
  counter("kaiwa_connections_refused_address_total",
          "Connections closed at accept: their source address held --max-connections-per-address.",
          s.refused_by_address);
  counter("kaiwa_connections_refused_user_total",
          "Hellos refused: the user held --max-connections-per-user sessions.", s.refused_by_user);
  counter("kaiwa_ws_read_pauses_total",
          "Times a connection's input was paused: its queue or its pending requests were over "
          "their bound.",
          s.read_pauses);
  counter("kaiwa_ws_joins_refused_total",
          "Joins refused because the connection was subscribed to its most rooms.",
          s.joins_refused);
  counter("kaiwa_connections_refused_fds_total",
          "Connections closed as soon as accepted because the node's free file descriptors were "
          "down to the reserve kept for its storage and admin API.",
          s.refused_by_fds);
}

gateway_stats gateway::stats() const {
  auto& s = impl_->st;
  return {s.connections.load(),
          s.opened.load(),
          s.closed.load(),
          impl_->traffic([](auto& t) -> auto& { return t.frames_in; }),
          impl_->traffic([](auto& t) -> auto& { return t.frames_out; }),
          s.slow_consumers.load()};
}

}  // namespace kaiwa::net
