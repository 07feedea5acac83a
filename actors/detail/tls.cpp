#include "actors/detail/tls.hpp"
#include "core/openssl_errors.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>
#include <unistd.h>
#include <caf/io/basp_broker.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor_impl.hpp>
#include <caf/io/network/default_multiplexer.hpp>
#include <caf/io/network/doorman_impl.hpp>
#include <caf/io/network/stream_impl.hpp>
#include <caf/io/scribe.hpp>

#include <algorithm>
#include <atomic>
#include <climits>
#include <deque>
#include <functional>

#include "core/log.hpp"
#include "core/openssl_errors.hpp"

namespace kaiwa::detail {

namespace {

namespace net = caf::io::network;

// Keys must be unencrypted (a daemon has no terminal to ask on): a callback that gives no
// passphrase makes an encrypted key fail to load instead of prompting.
int no_passphrase(char*, int, int, void*) { return 0; }

/// A refused handshake is logged, at most once a second (anyone can connect to the port): the
/// others in between are counted in the next line's `suppressed`.
void log_refused(const std::string& peer, const std::string& why) {
  static std::atomic<std::int64_t> last_ms{0};
  static std::atomic<std::uint64_t> suppressed{0};
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  auto last = last_ms.load();
  if (now - last < 1000 || !last_ms.compare_exchange_strong(last, now)) {
    suppressed.fetch_add(1);
    return;
  }
  log(log_level::warn, "cluster_tls_refused",
      {{"peer", peer}, {"error", why}, {"suppressed", suppressed.exchange(0)}});
}

std::string peer_of(net::native_socket fd) {
  auto host = net::remote_addr_of_fd(fd);
  auto port = net::remote_port_of_fd(fd);
  return (host ? *host : std::string("?")) + ":" + (port ? std::to_string(*port) : "?");
}

}  // namespace

class tls_context {
 public:
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{nullptr, SSL_CTX_free};
};

namespace {

/// An accepted connection whose handshake is not done yet, as its doorman tracks it. Owned by
/// the connection's session: it expires before the connection's socket is closed (the session
/// goes first, with the stream's policy), so a live one names a socket that is still this
/// connection's.
struct pending_handshake {
  net::native_socket fd;
  std::chrono::steady_clock::time_point since = std::chrono::steady_clock::now();
  bool done = false;
};

/// One connection's TLS state. Runs on the multiplexer thread once CAF has the connection (a
/// dial's handshake runs before, on the middleman actor's thread). Every OpenSSL call starts
/// and ends with this thread's error queue empty: SSL_get_error reads it, so an error left
/// there by one connection would fail another.
class tls_session {
 public:
  tls_session(const tls_context& ctx, net::native_socket fd, bool accepting)
      : ssl_(SSL_new(ctx.ctx.get()), SSL_free), peer_(peer_of(fd)) {
    ERR_clear_error();
    if (!ssl_ || SSL_set_fd(ssl_.get(), fd) != 1) {
      ssl_.reset();
      ERR_clear_error();
      return;
    }
    if (accepting)
      SSL_set_accept_state(ssl_.get());
    else
      SSL_set_connect_state(ssl_.get());
  }

  bool valid() const noexcept { return ssl_ != nullptr; }
  bool established() const noexcept { return established_; }

  /// For the doorman of an accepted connection: marked done with the handshake.
  std::weak_ptr<pending_handshake> track(net::native_socket fd) {
    pending_ = std::make_shared<pending_handshake>(pending_handshake{fd});
    return pending_;
  }

  /// Called once, on the multiplexer thread, when an accepted connection's handshake is done.
  std::function<void()> on_established;

  /// A dial's handshake on a blocking socket (whose timeouts bound it); empty on success.
  std::string handshake_blocking() {
    ERR_clear_error();
    auto r = SSL_do_handshake(ssl_.get());
    if (r == 1) {
      established_ = true;
      return {};
    }
    return handshake_error();
  }

  net::rw_state read_some(std::size_t& result, void* buf, std::size_t len) {
    result = 0;
    if (!established_) {
      if (auto s = handshake_step(); s != net::rw_state::success || !established_) return s;
    }
    ERR_clear_error();
    auto n = SSL_read(ssl_.get(), buf, static_cast<int>(std::min<std::size_t>(len, INT_MAX)));
    return finish(n, result);
  }

  net::rw_state write_some(std::size_t& result, const void* buf, std::size_t len) {
    result = 0;
    if (!established_) {
      if (auto s = handshake_step(); s != net::rw_state::success || !established_)
        return s == net::rw_state::success && len == 0 ? net::rw_state::indeterminate : s;
    }
    if (len == 0) return net::rw_state::indeterminate;
    ERR_clear_error();
    auto n = SSL_write(ssl_.get(), buf, static_cast<int>(std::min<std::size_t>(len, INT_MAX)));
    return finish(n, result);
  }

  /// Decrypted bytes OpenSSL holds: the socket won't signal them, so the stream reads on.
  bool pending() const { return SSL_pending(ssl_.get()) > 0; }

 private:
  /// One non-blocking step of an accepted connection's handshake.
  net::rw_state handshake_step() {
    ERR_clear_error();
    auto r = SSL_do_handshake(ssl_.get());
    if (r == 1) {
      established_ = true;
      if (pending_) pending_->done = true;
      if (on_established) on_established();
      return net::rw_state::success;
    }
    auto err = SSL_get_error(ssl_.get(), r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      ERR_clear_error();
      return net::rw_state::success;
    }
    log_refused(peer_, handshake_error(err));
    return net::rw_state::failure;
  }

  std::string handshake_error(int err = SSL_ERROR_SSL) {
    auto why = err == SSL_ERROR_SYSCALL && ERR_peek_error() == 0
                   ? std::string("connection closed")
                   : openssl_errors("connection closed");
    if (auto v = SSL_get_verify_result(ssl_.get()); v != X509_V_OK)
      why += std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")";
    return why;
  }

  net::rw_state finish(int n, std::size_t& result) {
    if (n > 0) {
      result = static_cast<std::size_t>(n);
      return net::rw_state::success;
    }
    auto err = SSL_get_error(ssl_.get(), n);
    ERR_clear_error();
    // Anything else (the peer closed, a socket error, a protocol error) ends the connection.
    return err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE ? net::rw_state::success
                                                                     : net::rw_state::failure;
  }

  std::unique_ptr<SSL, decltype(&SSL_free)> ssl_;
  std::string peer_;                            // for the log; taken while the socket is connected
  std::shared_ptr<pending_handshake> pending_;  // accepted connections only
  bool established_ = false;
};

/// The read/write policy CAF's stream calls with a TLS session in place of the socket.
class tls_policy {
 public:
  explicit tls_policy(std::unique_ptr<tls_session> s) : session_(std::move(s)) {}

  net::rw_state read_some(std::size_t& result, net::native_socket, void* buf, std::size_t len) {
    return session_->read_some(result, buf, len);
  }
  net::rw_state write_some(std::size_t& result, net::native_socket, const void* buf,
                           std::size_t len) {
    return session_->write_some(result, buf, len);
  }
  bool must_read_more(net::native_socket, std::size_t) { return session_->pending(); }

 private:
  std::unique_ptr<tls_session> session_;
};

/// One TLS connection as CAF's BASP broker sees it. Lives on the multiplexer thread. Until
/// the handshake is done, what the broker writes (BASP's server handshake comes first) stays
/// queued: flushing it would keep the socket in the write set, and the stream would call
/// write_some again and again while the peer takes its time.
class tls_scribe : public caf::io::scribe {
 public:
  tls_scribe(net::default_multiplexer& mpx, net::native_socket fd,
             std::unique_ptr<tls_session> session)
      : caf::io::scribe(net::conn_hdl_from_socket(fd)),
        session_(session.get()),
        stream_(mpx, fd, std::move(session)) {
    session_->on_established = [this] {
      if (std::exchange(flush_waiting_, false)) stream_.flush(this);
    };
  }

  void configure_read(caf::io::receive_policy::config config) override {
    stream_.configure_read(config);
    if (!std::exchange(launched_, true)) stream_.start(this);
  }
  void ack_writes(bool enable) override { stream_.ack_writes(enable); }
  std::vector<char>& wr_buf() override { return stream_.wr_buf(); }
  std::vector<char>& rd_buf() override { return stream_.rd_buf(); }
  void graceful_shutdown() override {
    stream_.graceful_shutdown();
    detach(&stream_.backend(), false);
  }
  void flush() override {
    if (!session_->established()) {
      flush_waiting_ = true;
      return;
    }
    stream_.flush(this);
  }
  std::string addr() const override {
    auto x = net::remote_addr_of_fd(stream_.fd());
    return x ? *x : std::string();
  }
  std::uint16_t port() const override {
    auto x = net::remote_port_of_fd(stream_.fd());
    return x ? *x : 0;
  }
  void add_to_loop() override { stream_.activate(this); }
  void remove_from_loop() override { stream_.passivate(); }

 private:
  tls_session* session_;  // owned by stream_'s policy
  net::stream_impl<tls_policy> stream_;
  bool launched_ = false;
  bool flush_waiting_ = false;
};

/// Accepted connections whose handshake may be pending at once; past it the oldest is closed.
constexpr std::size_t max_pending_handshakes = 64;

/// The cluster listener: accepts TCP as CAF's does, then hands each connection over as a TLS
/// connection whose handshake runs on the multiplexer thread.
///
/// A connection that never completes its handshake costs a socket until it is closed. On each
/// new connection the doorman closes those pending longer than the handshake timeout, and the
/// oldest beyond max_pending_handshakes, so whoever opens connections and stays silent holds
/// at most that many sockets. (Closing: shutdown() makes the socket readable, the handshake
/// fails on the read, and CAF cleans up as for any connection lost.)
class tls_doorman : public net::doorman_impl {
 public:
  tls_doorman(net::default_multiplexer& mpx, net::native_socket fd,
              std::shared_ptr<const tls_context> ctx, std::chrono::milliseconds timeout)
      : net::doorman_impl(mpx, fd), ctx_(std::move(ctx)), timeout_(timeout) {}

  bool new_connection() override {
    if (detached()) return false;  // the broker let go of us; the multiplexer hasn't yet
    auto& mpx = acceptor_.backend();
    auto fd = acceptor_.accepted_socket();
    net::nonblocking(fd, true);
    auto session = std::make_unique<tls_session>(*ctx_, fd, true);
    if (!session->valid()) {
      ::close(fd);
      return false;
    }
    drop_stale_handshakes();
    pending_.push_back(session->track(fd));
    auto scribe = caf::make_counted<tls_scribe>(mpx, fd, std::move(session));
    auto hdl = scribe->hdl();
    parent()->add_scribe(std::move(scribe));
    return caf::io::doorman::new_connection(&mpx, hdl);
  }

 private:
  void drop_stale_handshakes() {
    auto now = std::chrono::steady_clock::now();
    auto close = [](const pending_handshake& p) { ::shutdown(p.fd, SHUT_RDWR); };
    std::erase_if(pending_, [&](const std::weak_ptr<pending_handshake>& w) {
      auto p = w.lock();
      if (!p || p->done) return true;
      if (now - p->since < timeout_) return false;
      close(*p);
      return true;
    });
    for (; pending_.size() >= max_pending_handshakes; pending_.pop_front())
      if (auto p = pending_.front().lock()) close(*p);
  }

  std::shared_ptr<const tls_context> ctx_;
  std::chrono::milliseconds timeout_;
  std::deque<std::weak_ptr<pending_handshake>> pending_;  // multiplexer thread only
};

class tls_middleman_actor : public caf::io::middleman_actor_impl {
 public:
  tls_middleman_actor(caf::actor_config& cfg, caf::actor broker,
                      std::shared_ptr<const tls_context> ctx, std::chrono::milliseconds timeout)
      : caf::io::middleman_actor_impl(cfg, std::move(broker)),
        ctx_(std::move(ctx)),
        timeout_(timeout) {}

  const char* name() const override { return "kaiwa::tls_middleman_actor"; }

 protected:
  caf::expected<caf::io::scribe_ptr> connect(const std::string& host, std::uint16_t port) override {
    auto fd = net::new_tcp_connection(host, port);
    if (!fd) return std::move(fd.error());
    // This actor has a thread of its own (it blocks in TCP connect already): the handshake
    // runs here, blocking, bounded by socket timeouts, before CAF sees the connection.
    timeval tv{static_cast<time_t>(timeout_.count() / 1000),
               static_cast<suseconds_t>(timeout_.count() % 1000 * 1000)};
    ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    net::nonblocking(*fd, false);
    auto session = std::make_unique<tls_session>(*ctx_, *fd, false);
    auto err = session->valid() ? session->handshake_blocking() : openssl_errors();
    if (!err.empty()) {
      ::close(*fd);
      return caf::make_error(
          caf::sec::cannot_connect_to_node,
          "TLS handshake with " + host + ":" + std::to_string(port) + " failed: " + err);
    }
    timeval none{};
    ::setsockopt(*fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    ::setsockopt(*fd, SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    net::nonblocking(*fd, true);
    return caf::make_counted<tls_scribe>(mpx(), *fd, std::move(session));
  }

  caf::expected<caf::io::doorman_ptr> open(std::uint16_t port, const char* addr,
                                           bool reuse) override {
    auto fd = net::new_tcp_acceptor_impl(port, addr, reuse);
    if (!fd) return std::move(fd.error());
    return caf::make_counted<tls_doorman>(mpx(), *fd, ctx_, timeout_);
  }

 private:
  net::default_multiplexer& mpx() {
    return static_cast<net::default_multiplexer&>(system().middleman().backend());
  }

  std::shared_ptr<const tls_context> ctx_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::variant<std::shared_ptr<const tls_context>, std::string> make_tls_context(
    const cluster_tls& tls) {
  if (tls.ca_file.empty() || tls.cert_file.empty() || tls.key_file.empty())
    return std::string(
        "the cluster's TLS needs all three of the CA (--cluster-ca), the node's "
        "certificate (--cluster-cert) and its key (--cluster-key)");
  ERR_clear_error();
  auto out = std::make_shared<tls_context>();
  out->ctx.reset(SSL_CTX_new(TLS_method()));
  auto* ctx = out->ctx.get();
  if (!ctx) return "can't create a TLS context: " + openssl_errors();
  if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1)
    return "can't load the cluster CA " + tls.ca_file + ": " + openssl_errors();
  if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
    return "can't load the node certificate " + tls.cert_file + ": " + openssl_errors();
  std::unique_ptr<BIO, decltype(&BIO_free)> key_file(BIO_new_file(tls.key_file.c_str(), "r"),
                                                     BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      key_file ? PEM_read_bio_PrivateKey(key_file.get(), nullptr, no_passphrase, nullptr) : nullptr,
      EVP_PKEY_free);
  if (!key)
    return "can't load the node key " + tls.key_file +
           " (it must be an unencrypted PEM key): " + openssl_errors();
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1)
    return "the key " + tls.key_file + " is not the key of " + tls.cert_file + ": " +
           openssl_errors();
  // Peers verify this certificate against the same CA: one it doesn't verify could never join.
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> verify(X509_STORE_CTX_new(),
                                                                         X509_STORE_CTX_free);
  STACK_OF(X509)* chain = nullptr;
  SSL_CTX_get0_chain_certs(ctx, &chain);
  if (!verify || X509_STORE_CTX_init(verify.get(), SSL_CTX_get_cert_store(ctx),
                                     SSL_CTX_get0_certificate(ctx), chain) != 1)
    return "can't verify " + tls.cert_file + ": " + openssl_errors();
  if (X509_verify_cert(verify.get()) != 1)
    return "the cluster CA " + tls.ca_file + " does not verify " + tls.cert_file + ": " +
           X509_verify_cert_error_string(X509_STORE_CTX_get_error(verify.get()));
  // Both ends present a certificate and verify the other's; only kaiwa nodes speak here, so
  // TLS 1.3 only, and no session tickets (connections are long-lived, resumption buys nothing).
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  // CAF's stream retries a write with what is left of its buffer, which may have moved.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  ERR_clear_error();
  return std::shared_ptr<const tls_context>(std::move(out));
}

caf::io::middleman_actor spawn_tls_middleman(caf::actor_system& sys,
                                             std::shared_ptr<const tls_context> ctx,
                                             std::chrono::milliseconds handshake_timeout) {
  auto broker = sys.middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  return sys.spawn<tls_middleman_actor, caf::detached + caf::hidden>(
      std::move(broker), std::move(ctx), handshake_timeout);
}

}  // namespace kaiwa::detail
