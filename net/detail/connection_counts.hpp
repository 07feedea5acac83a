#pragma once
// Live connections counted per key (a source address, a user), with the slots that hold a
// place in a count. Internal to net/.
//
// Why: one address or one account must not be able to take every file descriptor of a node
// (a process may open about 20,000 here) or every session; the limits are in gateway_config.
// Slots are taken at accept (address) and at hello (user) and given back when the connection
// ends, never per message, so one mutex per counter is cheap enough.
//
// Thread-safe. The counter must outlive its slots (it lives in server_state, which outlives
// the sessions).

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace kaiwa::net::detail {

class connection_counts {
 public:
  /// A place in the count of one key, given back when the slot is destroyed or released. An
  /// empty slot (default, or taken with no limit) counts nothing.
  class slot {
   public:
    slot() = default;
    slot(slot&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)) { o.owner_ = nullptr; }
    slot& operator=(slot&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = o.owner_;
        key_ = std::move(o.key_);
        o.owner_ = nullptr;
      }
      return *this;
    }
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    ~slot() { release(); }

    void release() {
      if (owner_) owner_->give_back(key_);
      owner_ = nullptr;
    }

   private:
    friend class connection_counts;
    slot(connection_counts* owner, std::string key) : owner_(owner), key_(std::move(key)) {}
    connection_counts* owner_ = nullptr;
    std::string key_;
  };

  /// A slot for one more connection of `key`; nullopt when `key` holds `limit` already. A
  /// `limit` of 0 means none: the slot is empty and nothing is counted.
  std::optional<slot> take(std::string key, std::uint32_t limit) {
    if (limit == 0) return slot();
    std::lock_guard lock(mtx_);
    auto& n = counts_[key];
    if (n >= limit) return std::nullopt;
    n += 1;
    return slot(this, std::move(key));
  }

  /// Keys holding at least one slot (a key's entry goes with its last slot: no growth from
  /// keys that come and go).
  std::size_t keys() const {
    std::lock_guard lock(mtx_);
    return counts_.size();
  }

 private:
  void give_back(const std::string& key) {
    std::lock_guard lock(mtx_);
    auto it = counts_.find(key);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
  }

  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::uint32_t> counts_;
};

}  // namespace kaiwa::net::detail
