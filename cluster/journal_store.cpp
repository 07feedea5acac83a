#include "cluster/journal_store.hpp"

#include "core/log.hpp"
#include "storage/journal.hpp"

namespace kaiwa::cluster {

namespace {

/// Bytes one read of the log returns at most (a batch for a follower, or to apply).
constexpr std::size_t max_read_bytes = std::size_t{8} << 20;

std::vector<storage::journal::replica_entry> to_storage(std::vector<log_entry> entries) {
  std::vector<storage::journal::replica_entry> out;
  out.reserve(entries.size());
  for (auto& e : entries) out.push_back({e.offset, e.epoch, std::move(e.payload), e.starts_epoch});
  return out;
}

}  // namespace

journal_store::journal_store(storage::journal& journal, shard_t shard, post_fn post)
    : journal_(journal), shard_(shard), post_(std::move(post)) {}

void journal_store::append(std::vector<log_entry> entries, std::function<void(bool)> done) {
  journal_.append_replica_entries(shard_, to_storage(std::move(entries)),
                                  [post = post_, done = std::move(done)](const storage::status& s) {
                                    post([done, ok = s.ok()] { done(ok); });
                                  });
}

void journal_store::apply(std::vector<log_entry> entries, std::function<void(bool)> done) {
  auto st = journal_.apply_replica_entries(
      shard_, to_storage(std::move(entries)),
      [post = post_, done](const storage::status& s) { post([done, ok = s.ok()] { done(ok); }); });
  if (!st.ok()) {
    // A payload that is not the shard's records: the leader that sent it is broken or hostile.
    log(log_level::error, "replicated_entry_refused",
        {{"shard", std::to_string(shard_)}, {"error", st.err().message}});
    post_([done] { done(false); });
  }
}

std::optional<std::vector<log_entry>> journal_store::read(offset_t after, std::size_t max_entries) {
  auto r = journal_.replica_entries(shard_, after, max_entries, max_read_bytes);
  if (!r.ok()) return std::nullopt;
  std::vector<log_entry> out;
  out.reserve(r->size());
  for (auto& e : *r) out.push_back({e.offset, e.epoch, std::move(e.payload)});
  return out;
}

bool journal_store::truncate(offset_t keep_through) {
  return journal_.truncate_replica_log(shard_, keep_through).ok();
}

}  // namespace kaiwa::cluster
