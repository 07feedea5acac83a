#pragma once
// The room layer: one actor per active room, activated on first use and passivated when idle.
//
// `rooms` owns the CAF actor system. The gateway calls `dispatch` from its I/O threads; each
// command goes to the registry actor responsible for the room (rooms are spread over several
// registries by hash), which activates the room actor if needed and forwards the command.
// The room validates it, appends its events to the journal through group commit, and, once
// they are durable, replies to the sender's link and fans the events out to its subscribers.
//
// Lifecycle: construct, start(), dispatch() from any thread, stop() (each room finishes its
// in-flight commit, then the actor system ends). The journal must outlive stop().

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/command.hpp"

namespace kaiwa::storage {
class journal;
}

namespace kaiwa {

struct rooms_config {
  /// Write a snapshot of a room's state every this many events. Default: 1000
  std::uint64_t snapshot_every = 1000;
  /// Stop a room's actor after this long with no commands and no subscribers. Default: 60 s
  std::chrono::milliseconds idle_timeout{60'000};
  /// Registry actors that rooms are spread over. Default: 4
  std::size_t registries = 4;
  /// CAF scheduler threads; 0 means one per core. Default: 0
  std::size_t threads = 0;
  /// A room activation (recovery) slower than this is logged with its figures. Default: 100 ms
  std::chrono::milliseconds slow_activation{100};
};

/// Counters for metrics and status; read from any thread.
struct rooms_stats {
  std::uint64_t active = 0;
  std::uint64_t activated = 0;
  std::uint64_t passivated = 0;
  std::uint64_t events_appended = 0;
  std::uint64_t deliveries = 0;       // frames handed to subscribers' sessions by fan-out
  std::uint64_t commands_queued = 0;  // dispatched, not yet taken up by their room
  std::uint64_t commands_queued_high_water = 0;  // the most ever queued at once
};

class rooms {
 public:
  rooms(rooms_config cfg, storage::journal& journal);
  ~rooms();

  rooms(const rooms&) = delete;
  rooms& operator=(const rooms&) = delete;

  void start();
  /// Hands `c` to its room. Thread-safe. After stop(), replies `unavailable`.
  void dispatch(command c);
  /// Stops every room actor after its in-flight commit, then the actor system. Idempotent.
  void stop();

  rooms_stats stats() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace kaiwa
