#pragma once
// A client of etcd v3 (3.4 and later) over its HTTP/JSON gateway: the store where replication
// and failover (issue 13) keep the cluster's metadata (`kaiwa start --etcd`).
//
// Every call is synchronous, bounded by the client's timeout per endpoint tried, safe to make
// from any thread at once (each opens its own connection), and returns a result: nothing throws.
// Answers are untrusted: each is bounded (limits below), its JSON and base64 validated.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/result.hpp"

namespace kaiwa::cluster {

struct endpoint {
  std::string host;  // an address or a name (resolved at each call)
  std::uint16_t port = 0;
};

struct key_value {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;  // writes since creation: 1 for a new key
  std::int64_t lease = 0;    // 0: none
};

struct range_response {
  std::int64_t revision = 0;  // the store's revision when it was read
  std::vector<key_value> kvs;
  bool more = false;  // etcd has more keys in the range than it sent
  std::int64_t count = 0;
};

struct put_response {
  std::int64_t revision = 0;
};

struct delete_response {
  std::int64_t revision = 0;
  std::int64_t deleted = 0;
};

// -- transactions ---------------------------------------------------------------------------

enum class compare_target { version, create, mod, value };
enum class compare_result { equal, greater, less, not_equal };

/// A condition of a transaction. etcd compares a missing key's revisions and version as 0; a
/// value comparison with a missing key is false.
struct compare {
  std::string key;
  compare_target target = compare_target::mod;
  compare_result result = compare_result::equal;
  std::int64_t number = 0;  // the revision or version compared to (all targets but value)
  std::string value;        // compare_target::value only

  static compare mod_revision(std::string key, compare_result r, std::int64_t n);
  static compare create_revision(std::string key, compare_result r, std::int64_t n);
  static compare version(std::string key, compare_result r, std::int64_t n);
  static compare value_is(std::string key, compare_result r, std::string value);
};

struct txn_op {
  enum class kind { put, del, range };
  kind what = kind::range;
  std::string key;
  std::string range_end;   // empty: the key alone
  std::string value;       // put only
  std::int64_t lease = 0;  // put only

  static txn_op put(std::string key, std::string value, std::int64_t lease = 0);
  static txn_op del(std::string key);
  static txn_op del_prefix(const std::string& prefix);
  static txn_op get(std::string key);
  static txn_op get_prefix(const std::string& prefix);
};

struct txn_op_response {
  txn_op::kind what = txn_op::kind::range;
  std::int64_t revision = 0;
  std::vector<key_value> kvs;  // range
  std::int64_t deleted = 0;    // del
};

struct txn_response {
  std::int64_t revision = 0;
  bool succeeded = false;                  // every compare held: the success ops ran
  std::vector<txn_op_response> responses;  // one per op of the branch that ran, in order
};

struct lease_grant_response {
  std::int64_t id = 0;
  std::int64_t ttl = 0;  // seconds, as granted
};

// -- watch ------------------------------------------------------------------------------------

struct watch_event {
  enum class type { put, del };
  type what = type::put;
  key_value kv;  // for a delete, the key and the deleting revision (mod_revision)
  bool has_prev = false;
  key_value prev;  // the key as it was before this event, when etcd still had it
};

struct watch_update {
  enum class kind {
    events,     // `events`, in revision order, each revision's events in one update
    compacted,  // the revisions from where the watch had to resume are compacted away: the
                // watch has ended; re-read, then watch again from the read's revision + 1
  };
  kind what = kind::events;
  std::vector<watch_event> events;
  std::int64_t compact_revision = 0;  // compacted: the oldest revision etcd still has
};

/// A running watch: a thread holding a streaming request to one endpoint and, when it breaks,
/// another (after a short backoff, up to 1 s), resuming from the last delivered revision + 1,
/// so no event is lost or repeated. A silent stream is probed by TCP keepalive (10 s idle, then
/// every 5 s, 3 tries): a member gone without a reset is left within about 25 s. The callback runs
/// on that thread, one update at a time. Destroying the watch (or stop()) ends the stream and joins
/// the thread: bounded by the callback that may be running. A callback may not destroy its own
/// watch.
class watcher {
 public:
  struct state;
  explicit watcher(std::shared_ptr<state> s);
  ~watcher();
  watcher(const watcher&) = delete;
  watcher& operator=(const watcher&) = delete;

  void stop();
  /// The revision the watch resumes from if its stream breaks now.
  std::int64_t next_revision() const;

 private:
  std::shared_ptr<state> state_;
};

/// What an etcd client bounds. Defaults suit metadata: small keys, small values.
struct etcd_limits {
  std::size_t max_response_bytes = 4 << 20;  // Default: 4 MiB, a unary body or one watch message
  std::size_t max_header_bytes = 16 << 10;   // Default: 16 KiB of HTTP response header
};

class etcd_client {
 public:
  /// Endpoints are tried in turn, starting with the one that last answered: a member that is
  /// down costs a refused connection (or, unreachable, `timeout`) before the next is tried.
  /// `timeout` bounds each attempt (resolve, connect, send, read), so a call takes at most
  /// endpoints × timeout.
  etcd_client(std::vector<endpoint> endpoints, std::chrono::milliseconds timeout,
              etcd_limits limits = {});
  ~etcd_client();
  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  // -- keys: reads go to the next endpoint on any failure; a write whose request was sent
  //    before the connection failed or timed out returns errc::unknown_outcome, and one whose
  //    answer is unreadable errc::protocol: neither is repeated (it may have been applied) --

  result<range_response> get(const std::string& key);
  result<range_response> range(const std::string& prefix);
  result<put_response> put(const std::string& key, const std::string& value,
                           std::int64_t lease = 0);
  result<delete_response> del(const std::string& key);
  result<delete_response> del_prefix(const std::string& prefix);
  /// Drops the history before `revision`: watches and reads from older revisions are refused.
  status compact(std::int64_t revision);

  /// Puts if the key's mod revision is `expected` (0: only if absent); if not, `succeeded` is
  /// false and the one response is a read of the key, so the caller sees what is there.
  result<txn_response> put_if_mod_revision(const std::string& key, const std::string& value,
                                           std::int64_t expected, std::int64_t lease = 0);
  /// Deletes if the key's mod revision is `expected`; else a range of the key.
  result<txn_response> delete_if_mod_revision(const std::string& key, std::int64_t expected);
  result<txn_response> txn(const std::vector<compare>& compares, const std::vector<txn_op>& success,
                           const std::vector<txn_op>& failure);

  // -- leases ------------------------------------------------------------------------------

  result<lease_grant_response> lease_grant(std::int64_t ttl_seconds);
  /// The lease's remaining TTL in seconds after the renewal; 0 when it expired or is unknown.
  result<std::int64_t> lease_keepalive(std::int64_t id);
  /// Revokes the lease and deletes its keys; an unknown lease is errc::etcd, etcd_code 5.
  status lease_revoke(std::int64_t id);

  /// Watches the keys under `prefix` (empty: all) from `start_revision` (0: from now on).
  /// The callback must not block for long: the stream is not read meanwhile. The caller is not
  /// told of reconnections, only of events and of compaction (which ends the watch).
  std::unique_ptr<watcher> watch(const std::string& prefix, std::int64_t start_revision,
                                 std::function<void(const watch_update&)> callback);

  struct impl;  // the endpoints, limits and the one that answered last

 private:
  std::unique_ptr<impl> impl_;
};

}  // namespace kaiwa::cluster
