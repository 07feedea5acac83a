// A registry actor: the directory of the active rooms whose names hash to it.
//
// Every command for a room passes through its registry, which activates the room when needed
// and counts what it forwards. Passivation is a handshake that can't lose a command: an idle
// room reports how many commands it has received; only if that equals the number forwarded
// (nothing is on its way to it) does the registry forget it and tell it to stop. Commands that
// arrive while a stopped room is still finishing are buffered and go to its next activation.

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
    if (shutting_down_) {
      env_.command_taken();
      if (c.op != room_op::disconnect)
        c.link->send(error_frame(c.id, errc::unavailable, "the node is shutting down"));
      return;
    }
    auto room = c.room.str();
    if (auto s = stopping_.find(room); s != stopping_.end()) {
      s->second.push_back(std::move(c));
      return;
    }
    auto it = active_.find(room);
    if (it == active_.end()) {
      if (c.op == room_op::disconnect || c.op == room_op::leave) {
        // An inactive room has no subscribers: nothing to drop.
        env_.command_taken();
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
    quit_if_done();
  }

  void quit_if_done() {
    if (shutting_down_ && names_.empty()) quit();
  }

  room_env& env_;
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
