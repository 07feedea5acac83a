#pragma once
// A log-linear latency histogram in the spirit of HdrHistogram: values (microseconds) are kept
// with a relative error under 1/64, in fixed memory, and histograms merge by addition.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace kaiwa::bench {

class histogram {
 public:
  void record(std::uint64_t value_us) noexcept;
  void merge(const histogram& other) noexcept;

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  /// The value at quantile q (0..1), in microseconds; 0 when empty.
  std::uint64_t quantile(double q) const noexcept;

  /// A one-line text form ("max i:n i:n ..."), for worker processes to hand to their parent.
  std::string serialize() const;
  /// Adds a histogram in serialize()'s form; false if `text` is not one.
  bool merge_serialized(std::string_view text);

 private:
  static constexpr int sub_bits = 6;  // 64 buckets per power of two
  static constexpr int magnitudes = 40;
  static std::size_t index_of(std::uint64_t v) noexcept;
  static std::uint64_t value_at(std::size_t i) noexcept;

  std::array<std::uint64_t, (magnitudes + 1) << sub_bits> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace kaiwa::bench
