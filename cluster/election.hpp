#pragma once
// The controller's election (docs/cluster.md "Metadata in etcd"): the controller is the node
// whose id the controller key holds. A candidate creates the key under its lease only if it is
// absent, so at most one node holds it; it goes when that node's lease ends (close, expiry),
// and then any node may take it.
//
// The key's create revision is the controller's **term**: etcd's revisions only grow, so every
// later controller has a larger term. A controller makes each of its metadata writes conditional
// on the key still having its term (`fence()`), so a controller that lost the key (paused,
// partitioned) can write nothing, whatever it still believes.

#include <cstdint>
#include <optional>
#include <string>

#include "cluster/etcd_client.hpp"
#include "cluster/result.hpp"

namespace kaiwa::cluster {

struct controller_term {
  std::string node;
  std::int64_t term = 0;  // the controller key's create revision

  friend bool operator==(const controller_term&, const controller_term&) = default;
};

class election {
 public:
  /// `key`: the controller key (e.g. "/kaiwa/<cluster>/controller"). `client` must outlive this.
  election(etcd_client& client, std::string key, std::string node);

  /// Takes the key under `lease` if nobody holds it. The controller after the attempt: this
  /// node (with its new term) or the one that holds it. A node that already holds it under
  /// `lease` gets its term back; under another lease (an earlier session of this node, whose
  /// lease has not expired yet) it is errc::invalid: that session's term is not this one's.
  result<controller_term> campaign(std::int64_t lease);
  /// Who holds the key now; nullopt when nobody does.
  result<std::optional<controller_term>> current();
  /// Gives the key up if this node holds it with `term` (a node that stops controlling hands
  /// over now rather than at lease expiry); true when it was deleted.
  result<bool> resign(std::int64_t term);

  /// The condition every write of the controller of `term` carries: the key still holds it.
  compare fence(std::int64_t term) const;

  const std::string& key() const noexcept { return key_; }

 private:
  etcd_client& client_;
  std::string key_;
  std::string node_;
};

}  // namespace kaiwa::cluster
