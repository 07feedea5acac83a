#include "bench/histogram.hpp"

#include <algorithm>
#include <bit>
#include <charconv>

namespace kaiwa::bench {

// Values below 64 have a bucket each. Above, a value with its top bit at position 6 + m keeps
// its 7 leading bits: bucket 64 + 64 m + (v >> m) - 64.
std::size_t histogram::index_of(std::uint64_t v) noexcept {
  constexpr std::uint64_t base = 1u << sub_bits;
  if (v < base) return v;
  auto magnitude = static_cast<std::size_t>(std::bit_width(v)) - (sub_bits + 1);
  auto i = base + (magnitude << sub_bits) + ((v >> magnitude) - base);
  return std::min(i, std::size_t{((magnitudes + 1) << sub_bits) - 1});
}

std::uint64_t histogram::value_at(std::size_t i) noexcept {
  constexpr std::uint64_t base = 1u << sub_bits;
  if (i < base) return i;
  auto magnitude = (i - base) >> sub_bits;
  auto lead = base + ((i - base) & (base - 1));
  // The bucket's upper edge, so quantiles never understate.
  return (lead << magnitude) + ((1ull << magnitude) - 1);
}

void histogram::record(std::uint64_t v) noexcept {
  buckets_[index_of(v)] += 1;
  count_ += 1;
  max_ = std::max(max_, v);
}

void histogram::merge(const histogram& other) noexcept {
  for (std::size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
}

std::uint64_t histogram::quantile(double q) const noexcept {
  if (count_ == 0) return 0;
  auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(value_at(i), max_);
  }
  return max_;
}

std::string histogram::serialize() const {
  std::string out = std::to_string(max_);
  for (std::size_t i = 0; i < buckets_.size(); ++i)
    if (buckets_[i]) out += " " + std::to_string(i) + ":" + std::to_string(buckets_[i]);
  return out;
}

bool histogram::merge_serialized(std::string_view text) {
  auto read = [&](std::uint64_t& v) {
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{}) return false;
    text.remove_prefix(static_cast<std::size_t>(p - text.data()));
    return true;
  };
  std::uint64_t max = 0;
  if (!read(max)) return false;
  max_ = std::max(max_, max);
  while (!text.empty() && text.front() == ' ') {
    text.remove_prefix(1);
    std::uint64_t i = 0, n = 0;
    if (!read(i) || text.empty() || text.front() != ':') return false;
    text.remove_prefix(1);
    if (!read(n) || i >= buckets_.size()) return false;
    buckets_[i] += n;
    count_ += n;
  }
  return true;
}

}  // namespace kaiwa::bench
