// A registry actor: the directory of the active rooms whose names hash to it.
//
// Every command for a room passes through its registry, which activates the room when needed
// and counts what it forwards. Passivation is a handshake that can't lose a command: an idle
// room reports how many commands it has received; only if that equals the number forwarded
// (nothing is on its way to it) does the registry forget it and tell it to stop. Commands that
// arrive while a stopped room is still finishing are buffered and go to its next activation.
//
// Shards: a command for a room whose shard this node doesn't own (or is handing over) is
// answered `unavailable`, so a room only ever runs, and appends, where its shard is owned. A
// release stops every room of a shard and answers with their subscribers once all are down.

#include <set>
#include <unordered_map>

#include "actors/detail/messages.hpp"
#include "core/replies.hpp"

namespace kaiwa::detail {

namespace {

class registry_actor : public caf::event_based_actor {
 public:
  registry_actor(caf::actor_config& cfg, room_env& env) : caf::event_based_actor(cfg), env_(env) {
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
  }

  caf::behavior make_behavior() override {
    return {
        [this](command& c) { route(std::move(c)); },
        [this](idle_atom, const std::string& room, std::uint64_t received) {
          auto it = active_.find(room);
          if (it == active_.end() || it->second.forwarded != received) return;
          send(it->second.actor, stop_atom::value);
          stopping_.emplace(room, std::vector<command>{});
          active_.erase(it);
        },
        [this](release_atom, shard_t shard) { return release(shard); },
        [this](subs_atom, const std::string& room, std::vector<room_subscriber>& subs) {
          for (auto& r : releases_)
            if (r.waiting.contains(room)) r.rooms.push_back(released_room{room, std::move(subs)});
        },
        [this](stop_atom) {
          shutting_down_ = true;
          for (auto& [_, entry] : active_) send(entry.actor, stop_atom::value);
          quit_if_done();
        },
    };
  }

 private:
  struct entry {
    caf::actor actor;
    std::uint64_t forwarded = 0;
  };

  void route(command c) {
    if (shutting_down_) return refuse(c, "the node is shutting down");
    if (c.op != room_op::adopt && env_.status(env_.shard(c.room)) != shard_status::owned)
      return refuse(c, "the room is moving to another node: retry");
    auto room = c.room.str();
    if (auto s = stopping_.find(room); s != stopping_.end()) {
      s->second.push_back(std::move(c));
      return;
    }
    auto it = active_.find(room);
    if (it == active_.end()) {
      if (c.op == room_op::disconnect || c.op == room_op::leave) {
        // An inactive room has no subscribers: nothing to drop.
        env_.command_taken(env_.backlog_slot(c.room));
        if (c.op == room_op::leave) {
          frame_builder b;
          begin_reply(b, "left", c.id).field("room", room).end_object();
          c.link->send(b.finish());
        }
        return;
      }
      it = activate(room);
      c.was_active = false;
    }
    it->second.forwarded += 1;
    send(it->second.actor, std::move(c));
  }

  void refuse(const command& c, std::string_view why) {
    env_.command_taken(env_.backlog_slot(c.room));
    if (c.op != room_op::disconnect && c.op != room_op::adopt)
      c.link->send(error_frame(c.id, errc::unavailable, why));
  }

  caf::typed_response_promise<released_rooms> release(shard_t shard) {
    auto rp = make_response_promise<released_rooms>();
    release_entry r{shard, rp, {}, {}};
    for (auto& [room, e] : active_) {
      if (env_.shard(room_id{room}) != shard) continue;
      send(e.actor, stop_atom::value);
      stopping_.emplace(room, std::vector<command>{});
      r.waiting.insert(room);
    }
    for (auto& [room, _] : stopping_)
      if (env_.shard(room_id{room}) == shard) r.waiting.insert(room);
    for (auto& room : r.waiting) active_.erase(room);
    if (r.waiting.empty())
      rp.deliver(released_rooms{});
    else
      releases_.push_back(std::move(r));
    return rp;
  }

  std::unordered_map<std::string, entry>::iterator activate(const std::string& room) {
    auto actor = spawn_room(system(), room_id{room}, env_, this);
    monitor(actor);
    names_.emplace(actor.address(), room);
    return active_.emplace(room, entry{std::move(actor), 0}).first;
  }

  void on_down(const caf::down_msg& dm) {
    auto n = names_.find(dm.source);
    if (n == names_.end()) return;
    auto room = std::move(n->second);
    names_.erase(n);
    if (auto it = active_.find(room);
        it != active_.end() && it->second.actor.address() == dm.source)
      active_.erase(it);  // it failed; the next command recovers it from the journal
    if (auto s = stopping_.find(room); s != stopping_.end()) {
      auto buffered = std::move(s->second);
      stopping_.erase(s);
      for (auto& c : buffered) route(std::move(c));
    }
    for (auto r = releases_.begin(); r != releases_.end();) {
      r->waiting.erase(room);
      if (!r->waiting.empty()) {
        ++r;
        continue;
      }
      r->promise.deliver(std::move(r->rooms));
      r = releases_.erase(r);
    }
    quit_if_done();
  }

  void quit_if_done() {
    if (shutting_down_ && names_.empty()) quit();
  }

  struct release_entry {
    shard_t shard;
    caf::typed_response_promise<released_rooms> promise;
    std::set<std::string> waiting;  // rooms of the shard still running
    released_rooms rooms;
  };

  room_env& env_;
  std::vector<release_entry> releases_;
  std::unordered_map<std::string, entry> active_;
  std::unordered_map<std::string, std::vector<command>> stopping_;
  std::unordered_map<caf::actor_addr, std::string> names_;  // every live room actor
  bool shutting_down_ = false;
};

}  // namespace

caf::actor spawn_registry(caf::actor_system& sys, room_env& env) {
  return sys.spawn<registry_actor>(env);
}

}  // namespace kaiwa::detail
