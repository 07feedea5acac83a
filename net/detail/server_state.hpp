#pragma once
// What the gateway's sessions share. Internal to net/.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>

#include <array>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/client_link.hpp"
#include "core/frame.hpp"
#include "net/detail/connection_counts.hpp"
#include "net/gateway.hpp"

namespace kaiwa::net::detail {

/// Names for lane_traffic::requests_by_op; the last one counts unknown ops.
inline constexpr std::array<const char*, 18> request_ops = {
    "hello",  "ping",    "rooms",  "search", "directory", "join",   "leave", "send",     "edit",
    "delete", "history", "create", "invite", "kick",      "typing", "read",  "presence", "unknown"};

/// Names for server_state::closes_by_reason.
inline constexpr std::array<const char*, 11> close_reasons = {
    "client",       "normal",          "protocol_error", "abuse",
    "unauthorized", "rate_limited",    "slow_consumer",  "going_away",
    "invalid_utf8", "message_too_big", "ping_timeout"};

/// Names for server_state::refused_messages (the order of net::ws_rejection).
inline constexpr std::array<const char*, 3> refusals = {"too_large", "binary", "invalid_utf8"};

class ws_session;

/// Per-frame and per-request counters of one lane. Only the lane's thread writes them (a relaxed
/// load and store, no locked read-modify-write and no cache line shared with the other lanes);
/// /metrics sums the lanes.
struct lane_traffic {
  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  std::atomic<std::uint64_t> frames_in{0};
  std::atomic<std::uint64_t> frames_out{0};
  std::array<std::atomic<std::uint64_t>, request_ops.size()> requests_by_op{};
  std::array<std::atomic<std::uint64_t>, frame_op_count> out_by_op{};  // messages queued, by op
};

/// One I/O thread with its io_context and the sessions that live on it.
struct io_lane {
  boost::asio::io_context ioc{1};
  std::unordered_set<ws_session*> sessions;  // lane thread only

  // Sessions with frames queued and no write in flight. They are written by one handler posted
  // behind whatever the lane has queued already, so frames from several broadcasts that
  // arrive together leave in one write per session (lane thread only).
  std::vector<std::shared_ptr<ws_session>> to_flush;
  bool flush_posted = false;

  lane_traffic traffic;
};

/// A network in CIDR form as 16 bytes (IPv4 as IPv4-mapped IPv6) and a prefix length in bits.
struct source_network {
  std::array<unsigned char, 16> bytes{};
  unsigned prefix = 0;
};

/// The live sessions of each user on this node, for pushes addressed to a user (`invited`).
/// Sessions add themselves at hello and remove themselves at teardown, so an entry holds at
/// most max_connections_per_user links. One lock: pushes to users are rare (invitations).
class user_sessions {
 public:
  void add(const std::string& user, const std::shared_ptr<client_link>& link) {
    std::lock_guard lock(mtx_);
    by_user_[user].push_back(link);
  }
  void remove(const std::string& user, const client_link* link) {
    std::lock_guard lock(mtx_);
    auto it = by_user_.find(user);
    if (it == by_user_.end()) return;
    std::erase_if(it->second, [&](auto& l) { return l.get() == link; });
    if (it->second.empty()) by_user_.erase(it);
  }
  std::vector<std::shared_ptr<client_link>> of(const std::string& user) const {
    std::lock_guard lock(mtx_);
    auto it = by_user_.find(user);
    return it == by_user_.end() ? std::vector<std::shared_ptr<client_link>>{} : it->second;
  }

 private:
  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<client_link>>> by_user_;
};

struct server_state {
  server_state(gateway_config c, rooms& r, read::read_side& rs)
      : cfg(std::move(c)), rooms(r), read(rs), keys(std::make_shared<const token_keys>(cfg.keys)) {}

  const gateway_config cfg;
  kaiwa::rooms& rooms;
  read::read_side& read;
  user_sessions sessions_by_user;
  std::atomic<bool> accepting{true};
  std::atomic<std::uint64_t> next_conn_id{1};

  std::atomic<std::uint64_t> connections{0};
  std::atomic<std::uint64_t> opened{0};
  std::atomic<std::uint64_t> closed{0};
  std::atomic<std::uint64_t> slow_consumers{0};
  std::array<std::atomic<std::uint64_t>, close_reasons.size()> closes_by_reason{};
  // Rare events, so shared atomics.
  std::array<std::atomic<std::uint64_t>, refusals.size()> refused_messages{};
  std::atomic<std::uint64_t> pings_sent{0};
  std::atomic<std::uint64_t> read_pauses{0};
  std::atomic<std::uint64_t> joins_refused{0};
  std::atomic<std::uint64_t> refused_by_address{0};  // connections closed at accept
  std::atomic<std::uint64_t> refused_by_user{0};     // hellos refused
  std::atomic<std::uint64_t> refused_by_fds{0};      // closed at accept: fds running out

  // Live connections per source address (public listener) and sessions per user.
  connection_counts by_address;
  connection_counts by_user;
  /// Parsed from cfg.address_limit_exempt by gateway::start, read-only after.
  std::vector<source_network> address_limit_exempt;

  std::mutex closed_mtx;
  std::condition_variable closed_cv;  // notified when a session ends

  /// The TLS context a new public connection starts with; null without TLS. A reload replaces
  /// it; connections keep the one they started with (detail::stream holds it).
  std::shared_ptr<boost::asio::ssl::context> tls_context() const {
    std::lock_guard lock(tls_mtx);
    return tls;
  }
  void set_tls_context(std::shared_ptr<boost::asio::ssl::context> ctx) {
    std::lock_guard lock(tls_mtx);
    tls = std::move(ctx);
  }

  mutable std::mutex tls_mtx;
  std::shared_ptr<boost::asio::ssl::context> tls;  // guarded by tls_mtx

  /// The client token keys a hello is verified with now (cfg.keys until a rotation).
  std::shared_ptr<const token_keys> token_keys_now() const {
    std::lock_guard lock(keys_mtx);
    return keys;
  }
  void set_token_keys(std::shared_ptr<const token_keys> k) {
    std::lock_guard lock(keys_mtx);
    keys = std::move(k);
  }

  mutable std::mutex keys_mtx;
  std::shared_ptr<const token_keys> keys;  // guarded by keys_mtx

  void session_ended() {
    connections -= 1;
    closed += 1;
    std::lock_guard lock(closed_mtx);
    closed_cv.notify_all();
  }
};

}  // namespace kaiwa::net::detail
