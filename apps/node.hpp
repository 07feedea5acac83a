#pragma once
// A kaiwa node: the journal, the room layer, the read side and the gateway, wired together and
// started and stopped in order. Owned by `kaiwa start`.

#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "actors/rooms.hpp"
#include "net/gateway.hpp"
#include "read/read_side.hpp"
#include "storage/journal.hpp"

namespace kaiwa::app {

struct node_config {
  storage::journal_config journal;
  rooms_config rooms;
  net::gateway_config gateway;
  read::read_side_config read;
  /// How long shutdown waits for clients to take their 4010 close. Default: 2 s
  std::chrono::milliseconds close_grace{2000};
  /// Bearer token the admin API requires; required when it listens beyond loopback.
  /// Default: none
  std::string admin_token;
  /// Host names the admin API answers to besides IP literals and `localhost` (a request naming
  /// any other host in its Host header is refused: DNS rebinding). Default: none
  std::vector<std::string> admin_hosts;
  /// The file the client token keys were read from (apps/secrets.hpp); reload() reads it
  /// again. Default: none (the keys came from KAIWA_SECRET, or there are none)
  std::string secret_file;
};

class node {
 public:
  explicit node(node_config cfg);
  ~node();

  /// Opens storage, starts the rooms and binds the listeners; an error message on failure.
  std::optional<std::string> start();
  /// Stops in reverse order: stop accepting, close sessions (4010), stop room actors (each
  /// finishes its in-flight commit), stop the I/O threads, flush and close the journal.
  void stop();

  /// SIGHUP: reads the TLS certificate and key and the token key file again, and logs the
  /// outcome of each; a failure keeps what is in use. Any thread.
  void reload();

  std::uint16_t public_port() const;
  std::uint16_t admin_port() const;
  /// The cluster listener's port; 0 when not clustered.
  std::uint16_t cluster_port() const;

 private:
  bool public_http(const net::http_request& r, const net::http_respond& respond) const;
  bool admin_http(const net::http_request& r, const net::http_respond& respond);
  /// Stops accepting, fails /readyz, and after `grace` closes every session with 4010.
  void drain(std::chrono::milliseconds grace);
  /// Asks the cluster; its answer becomes the response (`ok_status` when it succeeded).
  bool cluster_call(cluster_request q, const net::http_respond& respond, int ok_status);
  net::http_reply checkpoint();
  net::http_reply projections_json() const;
  net::http_reply rebuild(std::string_view name);
  std::string status_json() const;
  // -- rooms and users (issue 12, point 9; docs/operations.md "Rooms and users") --
  net::http_reply rooms_json(const net::http_request& r) const;
  net::http_reply users_json(const net::http_request& r) const;
  /// Deletes a room's data: marks it, deletes its log, has the read side erase its read
  /// models, unmarks it; `done` once, from any thread. rooms_config::delete_room.
  void delete_room_data(const room_id& room, std::function<void(bool ok)> done);
  /// Finishes the deletions a crash interrupted (rooms still marked): their logs now, before
  /// anything serves them; their read models once the read side runs (`read_models`).
  std::optional<std::string> resume_deletions(bool read_models);
  std::string metrics_text() const;
  /// Runs on trimmer_ until stop(): hands freed heap back to the OS after churn (see node.cpp).
  void trim_memory();

  node_config cfg_;
  std::chrono::steady_clock::time_point started_;
  std::unique_ptr<storage::journal> journal_;
  std::unique_ptr<rooms> rooms_;
  std::unique_ptr<read::read_side> read_;
  std::unique_ptr<net::gateway> gateway_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> draining_{false};
  boost::asio::thread_pool admin_work_{1};  // slow admin actions, off the I/O lanes
  std::mutex stop_mtx_;
  std::condition_variable stop_cv_;  // wakes a drain's grace period when the node stops
  bool stopping_ = false;            // guarded by stop_mtx_
  std::thread trimmer_;
};

}  // namespace kaiwa::app
