// This node's presence in etcd: its lease (a new one when it is lost), its member key under it,
// and its campaign for the controller key. The worker's steps, and start's before the worker runs.
#include "cluster/detail/metadata_state.hpp"
#include "core/log.hpp"

namespace kaiwa::cluster {

bool metadata_agent::state::renew_session() {
  auto old = current_session();
  if (old && old->valid()) return true;
  if (old) {
    old->close();
    auto r = client.lease_revoke(old->id());
    if (!r.ok() && r.err().etcd_code != 5)
      log(log_level::warn, "metadata_old_lease_revoke_failed",
          {{"node", cfg.node}, {"error", r.err().message}});
  }
  auto s = lease_session::open(client, cfg.lease, [this] { post(&state::lease_lost_posted); });
  if (!s.ok()) {
    log(log_level::warn, "metadata_lease_failed", {{"node", cfg.node}, {"error", s.err().message}});
    return false;
  }
  std::lock_guard lock(view_mtx);
  session = std::move(*s);
  return true;
}

status metadata_agent::state::register_member(std::int64_t lease) {
  if (auto r = record_known(); !r.ok()) return r;
  member_info me{cfg.node, cfg.cluster_address, cfg.public_address, 0, 0, recorded};
  auto r = client.put(member_key, encode(me), lease);
  if (!r.ok()) return r.err();
  log(log_level::info, "metadata_registered",
      {{"node", cfg.node}, {"lease", lease}, {"cluster", me.cluster}});
  return {};
}

status metadata_agent::state::campaign(std::int64_t lease) {
  auto r = elect.campaign(lease);
  if (r.ok() && r->node == cfg.node)
    log(log_level::info, "metadata_controller_won", {{"node", cfg.node}, {"term", r->term}});
  // errc::invalid: an earlier session of this node holds the key until its lease ends.
  if (r.ok() || r.err().code == errc::invalid) return {};
  return r.err();
}

bool metadata_agent::state::do_register() {
  auto s = current_session();
  if (!s || !s->valid()) return false;
  auto r = register_member(s->id());
  if (!r.ok())
    log(log_level::warn, "metadata_register_failed",
        {{"node", cfg.node}, {"error", r.err().message}});
  return r.ok();
}

bool metadata_agent::state::do_campaign() {
  auto s = current_session();
  if (!s || !s->valid()) return false;
  {
    std::lock_guard lock(view_mtx);
    if (controller) return true;  // held (the watch says when it goes)
  }
  auto r = campaign(s->id());
  if (!r.ok())
    log(log_level::warn, "metadata_campaign_failed",
        {{"node", cfg.node}, {"error", r.err().message}});
  return r.ok();
}

}  // namespace kaiwa::cluster
