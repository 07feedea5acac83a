#include "cluster/assignment_store.hpp"

#include <charconv>

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
  if (static_cast<std::uint32_t>(shard) >= shards_)
    return error{errc::invalid, "shard " + std::to_string(shard) + " is past the shard count", 0};
  if (auto why = invalid_reason(next); why)
    return error{errc::invalid, "assignment of shard " + std::to_string(shard) + ": " + *why, 0};
  auto key = key_of(shard);
  auto compares = fence;
  compares.push_back(compare::mod_revision(key, compare_result::equal, expected));
  auto r = client_.txn(compares, {txn_op::put(key, encode(next))}, {});
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
