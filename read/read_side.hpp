#pragma once
// The read side a node owns (docs/read-side.md): the projector and the two projections (the
// room list and the search index), the queries clients ask (`rooms`, `directory`, `search`)
// answered from the shards this node owns, merged with the other members' pages in a cluster,
// and the notices projections raise (`invited`) handed to live sessions here and elsewhere.
//
// Threads: the projector's one thread, and `query_threads` query threads with a bounded queue
// (queries read RocksDB, so they stay off the I/O lanes and the actors). The gateway calls
// `query` from its lanes, the cluster actor `answer_member` and `deliver_remote`; all public
// members are thread-safe. Lifecycle: construct, start(), stop() before the journal stops and
// after nothing calls in any more (the gateway and the cluster are stopped first).
//
// No CAF, Beast or RocksDB here: the node wires the cluster and the gateway in as hooks.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/errc.hpp"
#include "core/ids.hpp"
#include "core/shard.hpp"
#include "read/page.hpp"
#include "read/projection.hpp"
#include "read/projector.hpp"
#include "read/query.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa::read {

class room_list;

struct read_side_config {
  /// Run the projections. Off: no projector runs (the write path bears none of their cost) and
  /// `rooms`, `directory` and `search` answer `unavailable`. Default: true
  bool projections = true;
  /// How long a query waits for the other members' pages; a member that doesn't answer in
  /// time makes the reply `"partial": true`. Default: 2 s
  std::chrono::milliseconds gather_timeout{2000};
  /// Threads that run queries (this node's part and other members' requests). Default: 2
  std::size_t query_threads = 2;
  /// Queries waiting for a query thread beyond which more are refused: a client's with
  /// `rate_limited`, a member's unanswered (it counts this node as missing). Default: 256
  std::size_t query_queue = 256;
  /// Work one search may do (index seeks, access checks, text checks; read/search_index.hpp);
  /// past it the reply has the hits found so far and `more`. Default: 20000
  std::size_t search_max_steps = 20'000;
  projector_config projector;
};

struct query_error {
  errc code = errc::internal;
  std::string message;
};

struct query_reply {
  std::optional<query_error> error;  // set: nothing else is
  page result;
  bool partial = false;  // a member that owns shards didn't answer in time
};

/// What the read side needs of the rest of the node; each may be called from any thread.
struct read_side_hooks {
  /// The shards this node serves now. Default (unset): all of them.
  std::function<std::vector<shard_t>()> owned_shards;
  /// Pushes a notice to this node's live sessions of `n.user`.
  std::function<void(const notice& n)> push_local;
  /// Clustered nodes only. Asks every other member for its page of a query (`encode_query`
  /// bytes) and calls `done` once with the answers (`encode_page` bytes) that came within
  /// `timeout`, and whether a member that owns shards gave none.
  std::function<void(std::string request, std::chrono::milliseconds timeout,
                     std::function<void(std::vector<std::string> pages, bool partial)> done)>
      ask_members;
  /// Clustered nodes only. Hands a notice to every other member (which pushes it to its
  /// sessions of the user).
  std::function<void(const notice& n)> broadcast;
};

class read_side {
 public:
  using reply_fn = std::function<void(query_reply)>;

  read_side(storage::journal& journal, read_side_config cfg, read_side_hooks hooks);
  ~read_side();

  read_side(const read_side&) = delete;
  read_side& operator=(const read_side&) = delete;

  /// Starts the query threads and, unless projections are off, the projector.
  void start();
  /// Runs what is queued (bounded by `query_queue`), then stops the threads. Idempotent.
  void stop();

  /// Runs a client's query: this node's shards and, in a cluster, every member's, merged
  /// (newest first, at most `limit`). `done` runs once, on a query thread or the cluster's,
  /// or at once when the query is refused.
  void query(query_request r, reply_fn done);
  /// Answers another member's query (`encode_query` bytes) with this node's page
  /// (`encode_page` bytes), or an empty string when it can't (bad bytes, projection not live,
  /// queue full, storage error). `reply` runs once, on a query thread or at once.
  void answer_member(std::string_view request, std::function<void(std::string)> reply);
  /// A notice another member's projection raised: pushed to this node's sessions.
  void deliver_remote(const notice& n);

  /// Erases a deleted room's records from the read models (storage::journal, "deleting a
  /// room"); `done` runs once, on the projector's thread (or at once when projections are off,
  /// after erasing them here: nothing else writes them then).
  void forget_room(const room_id& room, std::function<void(bool ok)> done);
  /// The read.rooms projection, for the admin API's listings (read/room_list.hpp).
  const room_list& room_list_model() const;
  /// A shard's data arrived from another node: its rooms are caught up.
  void shard_ingested(shard_t shard);
  /// See projector::rebuild; an error message when projections are off too.
  std::optional<std::string> rebuild(std::string_view name);
  /// Empty when projections are off.
  std::vector<projection_stats> stats() const;
  bool projections_enabled() const noexcept;
  /// Appends the read side's metrics in Prometheus text.
  void render_metrics(std::string& out) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kaiwa::read
