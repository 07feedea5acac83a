#include "actors/creation_limiter.hpp"

#include <algorithm>

namespace kaiwa {

double creation_limiter::refill(const bucket& b, millis_t now) const {
  auto elapsed = static_cast<double>(std::max<millis_t>(0, now - b.at));
  return std::min<double>(per_minute_, b.tokens + elapsed * per_minute_ / 60'000.0);
}

void creation_limiter::sweep(millis_t now) {
  if (now - last_sweep_ < 1000) return;  // under a flood of new users, not on every call
  last_sweep_ = now;
  std::erase_if(buckets_, [&](auto& kv) { return refill(kv.second, now) >= per_minute_; });
}

bool creation_limiter::allow(std::string_view user, millis_t now) {
  if (per_minute_ == 0) return true;
  std::lock_guard lock(mtx_);
  auto it = buckets_.find(std::string(user));
  if (it == buckets_.end()) {
    if (buckets_.size() >= max_users_) sweep(now);
    if (buckets_.size() >= max_users_) return false;
    it = buckets_.emplace(std::string(user), bucket{static_cast<double>(per_minute_), now}).first;
  }
  auto tokens = refill(it->second, now);
  if (tokens < 1) return false;
  it->second = {tokens - 1, now};
  return true;
}

std::size_t creation_limiter::tracked() const {
  std::lock_guard lock(mtx_);
  return buckets_.size();
}

}  // namespace kaiwa
