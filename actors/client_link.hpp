#pragma once
// What a room sees of a client connection. Implemented by the gateway's sessions (net/); rooms
// hold links to reply to requests and to fan events out to subscribers.
//
// Concurrency: every link belongs to one I/O thread, its lane. `post` may be called from any
// thread; `push` and `subscription_ended` only on the link's lane (inside a posted function),
// which is what lets a room hand one function per lane that pushes a frame to all of that
// lane's subscribers.

#include <functional>
#include <memory>

#include "core/frame.hpp"
#include "core/ids.hpp"

namespace kaiwa {

class client_link : public std::enable_shared_from_this<client_link> {
 public:
  virtual ~client_link() = default;

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
  /// The room ended this link's subscription to `room` (the user was kicked). Lane thread only.
  virtual void subscription_ended(const room_id& room) = 0;

  /// Queues the reply `f` from any thread.
  void send(frame_ptr f) {
    post([self = shared_from_this(), f = std::move(f)] { self->reply(f); });
  }
};

}  // namespace kaiwa
