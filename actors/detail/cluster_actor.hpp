#pragma once
// The cluster actor: one per node, published on the cluster listener. It keeps the node's copy
// of the shard map, routes commands for rooms owned elsewhere, stands in for sessions of other
// nodes (remote links), hands shards over, and, on the coordinator, plans and runs the moves.
// docs/cluster.md describes the protocol, cluster_actor.cpp the parts it drives; only rooms.cpp
// and cluster_actor.cpp include this.

#include <functional>
#include <memory>

#include <caf/io/middleman_actor.hpp>

#include "actors/detail/messages.hpp"

namespace kaiwa::detail {

using start_atom = caf::atom_constant<caf::atom("start")>;
using admin_atom = caf::atom_constant<caf::atom("admin")>;

using ask_atom = caf::atom_constant<caf::atom("ask")>;

// Replicated shards (cluster_config::etcd): what the metadata agent and the replication actor
// tell the cluster actor (rooms.cpp wires them).
/// (etcd_members_atom, ids, cluster addresses): the live members, whole.
using etcd_members_atom = caf::atom_constant<caf::atom("emembers")>;
/// (etcd_assign_atom, shard_t, assignment JSON, mod revision): a shard's assignment changed.
using etcd_assign_atom = caf::atom_constant<caf::atom("eassign")>;
/// (serving_atom, shard_t, bool): the replication actor starts or stops serving a shard here.
using serving_atom = caf::atom_constant<caf::atom("serving")>;
/// (repl_out_atom, node, bytes): a replication message for `node`'s replication actor.
using repl_out_atom = caf::atom_constant<caf::atom("replout")>;
using notice_atom = caf::atom_constant<caf::atom("notice")>;
/// (drained_atom, grace_ms): this node's drain finished (the coordinator's, or the metadata
/// agent's in replicated mode): its sessions close after the grace.
using drained_atom = caf::atom_constant<caf::atom("drained")>;

/// A read query for every other member (rooms::ask_members).
struct members_query {
  std::string request;
  std::chrono::milliseconds timeout;
  std::function<void(std::vector<std::string>, bool)> done;
};

struct admin_query {
  admin_query(cluster_request r, std::function<void(int, std::string)> d)
      : request(std::move(r)), done(std::move(d)) {}
  cluster_request request;
  std::function<void(int, std::string)> done;
};

/// `mm` publishes and dials: CAF's middleman actor, or the TLS one (tls.hpp).
caf::actor spawn_cluster(caf::actor_system& sys, room_env& env, std::vector<caf::actor> registries,
                         caf::io::middleman_actor mm);

}  // namespace kaiwa::detail

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<kaiwa::detail::admin_query>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<kaiwa::detail::members_query>)
