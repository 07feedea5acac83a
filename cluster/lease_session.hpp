#pragma once
// A node's session with etcd: one lease, renewed by a thread of its own, under which the node's
// member key lives (and, on the controller, the controller key: election.hpp). When the node dies
// or is cut off, etcd lets the lease expire and deletes those keys; the controller, watching
// them, then gives what the node held to others.
//
// Fencing by the node's own clock: etcd expires a lease by etcd's clock, TTL seconds after the
// last renewal it processed. A renewal is processed after it was sent, so `valid_until()` (the
// send time of the last renewal etcd answered, plus the TTL it granted) comes no later than etcd's
// expiry. The node stops acting on what the lease grants (leading shards, controlling) once its
// own steady clock passes `valid_until()`, before etcd can grant it to another node. A process
// that was paused (SIGSTOP, a long GC-like stall) finds on waking that the instant passed and
// checks before it acts. Clock rates are assumed to agree within a few percent over a TTL, the
// assumption every lease-based lock makes; docs/cluster.md "Fencing".

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "cluster/result.hpp"

namespace kaiwa::cluster {

class etcd_client;

struct lease_config {
  /// What the lease asks etcd for. etcd grants at least 1.5 x its election timeout (2 s with its
  /// defaults), so the granted TTL may be longer; the session uses the granted one. Default: 2 s
  std::chrono::seconds ttl{2};
  /// Renewals per TTL: a renewal every ttl / renewals, so that renewals-1 may fail in a row (a
  /// slow or restarting etcd member) before the lease is at risk. Default: 4
  int renewals = 4;
};

class lease_session {
 public:
  using steady = std::chrono::steady_clock;

  /// Grants the lease and starts renewing it. `lost` runs once, on the session's thread, when
  /// the session ends other than by close(): etcd answered that the lease is gone, or
  /// `valid_until()` passed without a renewal. It may come up to one call's timeout after
  /// valid_until (a renewal blocked on an unreachable etcd): whatever the node does under the
  /// lease checks valid() itself. Nothing is renewed after that; the node starts a new session
  /// (a new lease) to come back. `client` must outlive the session.
  static result<std::unique_ptr<lease_session>> open(etcd_client& client, lease_config cfg,
                                                     std::function<void()> lost);
  /// Ends the renewals (joins the thread) and revokes the lease, so its keys go now rather than
  /// at expiry: a node that stops hands its roles over at once. A failed revoke is left to
  /// expiry.
  ~lease_session();
  void close();

  lease_session(const lease_session&) = delete;
  lease_session& operator=(const lease_session&) = delete;

  std::int64_t id() const noexcept;
  std::chrono::seconds granted_ttl() const noexcept;
  /// Until when the lease surely holds (see above); once lost or closed, when that happened.
  steady::time_point valid_until() const noexcept;
  /// valid_until() is in the future: what the lease grants may be acted on now.
  bool valid() const noexcept { return steady::now() < valid_until(); }

  struct state;

 private:
  explicit lease_session(std::shared_ptr<state> s);
  std::shared_ptr<state> state_;
};

}  // namespace kaiwa::cluster
