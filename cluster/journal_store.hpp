#pragma once
// A shard's replicated log in the node's journal (storage/journal.hpp, "a shard's replicated
// log") as shard_replica's store. The journal completes writes on its writer thread; `post`
// hands each completion to the replica's owner, which runs it on its own thread.

#include <functional>

#include "cluster/shard_replica.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa::cluster {

class journal_store final : public replica_store {
 public:
  using post_fn = std::function<void(std::function<void()>)>;
  /// `journal` must outlive the store.
  journal_store(storage::journal& journal, shard_t shard, post_fn post);

  void append(std::vector<log_entry> entries, std::function<void(bool ok)> done) override;
  void apply(std::vector<log_entry> entries, std::function<void(bool ok)> done) override;
  std::optional<std::vector<log_entry>> read(offset_t after, std::size_t max_entries) override;
  bool truncate(offset_t keep_through) override;

 private:
  storage::journal& journal_;
  shard_t shard_;
  post_fn post_;
};

}  // namespace kaiwa::cluster
