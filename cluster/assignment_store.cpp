#include "cluster/assignment_store.hpp"

#include <charconv>
#include <set>

namespace kaiwa::cluster {

namespace {

/// Shard numbers in keys: 5 digits (max_shards is 65,536), so keys sort by shard.
constexpr std::size_t shard_digits = 5;

error damaged(const std::string& key, std::string_view what) {
  return {errc::protocol, "assignment " + key + ": " + std::string(what), 0};
}

}  // namespace

assignment_store::assignment_store(etcd_client& client, std::string prefix, std::uint32_t shards)
    : client_(client), shards_prefix_(std::move(prefix) + "shards/"), shards_(shards) {}

std::string assignment_store::key_of(shard_t shard) const {
  auto n = std::to_string(shard);
  return shards_prefix_ + std::string(shard_digits - n.size(), '0') + n;
}

std::optional<shard_t> assignment_store::shard_of_key(const std::string& key) const {
  if (key.size() != shards_prefix_.size() + shard_digits || !key.starts_with(shards_prefix_))
    return std::nullopt;
  std::uint32_t n = 0;
  auto digits = std::string_view(key).substr(shards_prefix_.size());
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc{} || end != digits.data() + digits.size() || n >= shards_)
    return std::nullopt;
  return static_cast<shard_t>(n);
}

result<assignment_table> assignment_store::load() {
  auto r = client_.range(shards_prefix_);
  if (!r.ok()) return r.err();
  // etcd sends a whole range unless asked for a limit: `more` means an answer cut short.
  if (r->more) return error{errc::protocol, "the assignments' range came back incomplete", 0};
  assignment_table t;
  t.revision = r->revision;
  for (auto& kv : r->kvs) {
    auto shard = shard_of_key(kv.key);
    if (!shard) return damaged(kv.key, "not a shard's key");
    auto a = decode_assignment(kv.value);
    if (!a) return damaged(kv.key, "not a valid assignment");
    t.shards[*shard] = {std::move(*a), kv.mod_revision};
  }
  return t;
}

result<std::optional<std::int64_t>> assignment_store::update(shard_t shard,
                                                             const shard_assignment& next,
                                                             std::int64_t expected,
                                                             const std::vector<compare>& fence) {
  return update_all({{shard, next, expected}}, fence);
}

result<std::optional<std::int64_t>> assignment_store::update_all(
    const std::vector<assignment_write>& writes, const std::vector<compare>& fence) {
  // etcd's default --max-txn-ops: compares and operations are counted apart.
  constexpr std::size_t max_txn_ops = 128;
  if (writes.empty() || writes.size() > max_batch || fence.size() + writes.size() > max_txn_ops)
    return error{errc::invalid,
                 "a batch of assignments is 1 to " + std::to_string(max_batch) +
                     " shards, with its fence 128 compares at most",
                 0};
  std::vector<compare> compares = fence;
  std::vector<txn_op> puts;
  std::set<shard_t> named;
  for (auto& w : writes) {
    auto shard = std::to_string(w.shard);
    if (static_cast<std::uint32_t>(w.shard) >= shards_)
      return error{errc::invalid, "shard " + shard + " is past the shard count", 0};
    // etcd refuses a transaction that puts one key twice.
    if (!named.insert(w.shard).second)
      return error{errc::invalid, "shard " + shard + " is twice in one batch", 0};
    if (auto why = invalid_reason(w.next); why)
      return error{errc::invalid, "assignment of shard " + shard + ": " + *why, 0};
    auto key = key_of(w.shard);
    compares.push_back(compare::mod_revision(key, compare_result::equal, w.expected));
    puts.push_back(txn_op::put(key, encode(w.next)));
  }
  auto r = client_.txn(compares, puts, {});
  if (!r.ok()) return r.err();
  if (!r->succeeded) return std::optional<std::int64_t>{};
  return std::optional<std::int64_t>{r->revision};
}

result<assignment_change> assignment_store::parse_event(const watch_event& e) const {
  auto shard = shard_of_key(e.kv.key);
  if (!shard) return damaged(e.kv.key, "not a shard's key");
  assignment_change c;
  c.shard = *shard;
  if (e.what == watch_event::type::del) return c;
  auto a = decode_assignment(e.kv.value);
  if (!a) return damaged(e.kv.key, "not a valid assignment");
  c.now = versioned_assignment{std::move(*a), e.kv.mod_revision};
  return c;
}

}  // namespace kaiwa::cluster
