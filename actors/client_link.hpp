#pragma once
// What a room sees of a client connection. Implemented by the gateway's sessions (net/), by
// the admin API, and by the cluster's stand-in for a session on another node; rooms hold links
// to reply to requests and to fan events out to subscribers.
//
// Concurrency: every link belongs to one I/O thread, its lane. `post` may be called from any
// thread; `push`, `subscription_ended` and `subscription_lost` only on the link's lane (inside
// a posted function), which is what lets a room hand one function per lane that pushes a frame
// to all of that lane's subscribers.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "core/frame.hpp"
#include "core/ids.hpp"

namespace kaiwa {

class client_link;
using link_group = std::vector<std::shared_ptr<client_link>>;
using frame_list = std::vector<frame_ptr>;

class client_link : public std::enable_shared_from_this<client_link> {
 public:
  virtual ~client_link() = default;

  /// Names this link uniquely within its node's lifetime (how other nodes address it).
  std::uint64_t id() const noexcept { return id_; }

  /// Runs `fn` on this link's lane, after everything posted to it before.
  virtual void post(std::function<void()> fn) = 0;
  /// Identifies the lane: links with the same lane can be served by one post.
  virtual const void* lane() const noexcept = 0;
  /// Queues a live event (or other unrequested push) for the client. Lane thread only. A client
  /// that lets these pile up past its bound is closed as a slow consumer.
  virtual void push(const frame_ptr& f) = 0;
  /// Queues what the client asked for (a reply, a join's backfill). Lane thread only. Not
  /// subject to the slow-consumer bound: its size is bounded by the request.
  virtual void reply(const frame_ptr& f) = 0;
  /// The room ended this link's subscription to `room`: the user was kicked (`reason`
  /// "kicked") or the room was deleted ("deleted"). Lane thread only.
  virtual void subscription_ended(const room_id& room, std::string_view reason) = 0;
  /// The subscription to `room` is gone without an event saying so (the room's node died): the
  /// client must resubscribe with `since`. Lane thread only.
  virtual void subscription_lost(const room_id& room) = 0;

  /// Pushes `frames` to every link of `group` but `exclude`; every link of `group` has this
  /// link's lane. Any thread. One post for the whole lane, or one message for a whole node.
  virtual void push_to_lane(std::shared_ptr<const link_group> group,
                            std::shared_ptr<const frame_list> frames, const client_link* exclude) {
    post([group = std::move(group), frames = std::move(frames), exclude] {
      for (auto& link : *group) {
        if (link.get() == exclude) continue;
        for (auto& f : *frames) link->push(f);
      }
    });
  }

  /// Queues the reply `f` from any thread.
  void send(frame_ptr f) {
    post([self = shared_from_this(), f = std::move(f)] { self->reply(f); });
  }

 private:
  static inline std::atomic<std::uint64_t> next_id_{1};
  std::uint64_t id_ = next_id_.fetch_add(1, std::memory_order_relaxed);
};

}  // namespace kaiwa
