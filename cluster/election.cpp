#include "cluster/election.hpp"

#include "core/ids.hpp"

namespace kaiwa::cluster {

namespace {

/// The holder a read of the key shows; an error when the key holds something no node would
/// write (what etcd holds is checked like any other input).
result<std::optional<controller_term>> holder(const std::vector<key_value>& kvs,
                                              const std::string& key) {
  if (kvs.empty()) return std::optional<controller_term>{};
  auto& kv = kvs.front();
  if (kv.key != key || !valid_name(kv.value) || kv.create_revision <= 0)
    return error{errc::protocol, "the controller key " + key + " holds no node id", 0};
  return std::optional<controller_term>{controller_term{kv.value, kv.create_revision}};
}

}  // namespace

election::election(etcd_client& client, std::string key, std::string node)
    : client_(client), key_(std::move(key)), node_(std::move(node)) {}

result<controller_term> election::campaign(std::int64_t lease) {
  auto r = client_.txn({compare::create_revision(key_, compare_result::equal, 0)},
                       {txn_op::put(key_, node_, lease)}, {txn_op::get(key_)});
  if (!r.ok()) return r.err();
  // The key was created by this put: its create revision is the txn's revision.
  if (r->succeeded) return controller_term{node_, r->revision};
  if (r->responses.size() != 1)
    return error{errc::protocol, "a failed campaign's answer has no read of the key", 0};
  auto h = holder(r->responses.front().kvs, key_);
  if (!h.ok()) return h.err();
  // Deleted between the compare and the read can't happen (one txn); an empty read here means a
  // broken answer.
  if (!*h) return error{errc::protocol, "a failed campaign read no controller", 0};
  if (h->value().node == node_ && r->responses.front().kvs.front().lease != lease)
    return error{errc::invalid,
                 "the controller key names this node under another lease: a previous session of "
                 "this node holds it until that lease ends",
                 0};
  return **h;
}

result<std::optional<controller_term>> election::current() {
  auto r = client_.get(key_);
  if (!r.ok()) return r.err();
  return holder(r->kvs, key_);
}

result<bool> election::resign(std::int64_t term) {
  auto r = client_.txn({fence(term)}, {txn_op::del(key_)}, {});
  if (!r.ok()) return r.err();
  return r->succeeded;
}

compare election::fence(std::int64_t term) const {
  return compare::create_revision(key_, compare_result::equal, term);
}

}  // namespace kaiwa::cluster
