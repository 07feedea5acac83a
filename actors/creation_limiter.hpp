#pragma once
// How many rooms each user may create (rooms_config::room_creations_per_minute): a token bucket
// per user, shared by every room actor of the node. Creations are rare next to sends, so one
// mutex is enough.
//
// Memory is bounded: at most `max_users` buckets. A full bucket is the same as none, so when
// the table is full the buckets that have refilled are dropped (at most once a second); if it
// is still full, users without a bucket are refused until some refill.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/ids.hpp"

namespace kaiwa {

class creation_limiter {
 public:
  /// `per_minute` 0: no limit.
  explicit creation_limiter(std::uint32_t per_minute, std::size_t max_users = 100'000)
      : per_minute_(per_minute), max_users_(max_users) {}

  /// Takes one creation from `user`'s bucket at time `now`; false if it is empty. Thread-safe.
  bool allow(std::string_view user, millis_t now);

  /// Users with a bucket that has not refilled (for tests and metrics).
  std::size_t tracked() const;

 private:
  struct bucket {
    double tokens = 0;
    millis_t at = 0;  // when `tokens` was computed
  };
  double refill(const bucket& b, millis_t now) const;
  void sweep(millis_t now);

  const std::uint32_t per_minute_;
  const std::size_t max_users_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, bucket> buckets_;  // guarded by mtx_
  millis_t last_sweep_ = 0;                          // guarded by mtx_
};

}  // namespace kaiwa
