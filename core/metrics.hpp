#pragma once
// Lock-free counters and histograms for the hot paths: an update is one relaxed atomic add.
// Rendering to the Prometheus text format happens only when /metrics is scraped.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace kaiwa {

/// A Prometheus histogram with fixed upper bounds (`bounds`, ascending; +Inf is implied).
template <std::size_t N>
class fixed_histogram {
 public:
  explicit constexpr fixed_histogram(std::array<double, N> bounds) : bounds_(bounds) {}

  void observe(double v) noexcept {
    std::size_t i = 0;
    while (i < N && v > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_micros_.fetch_add(static_cast<std::uint64_t>(v * 1e6), std::memory_order_relaxed);
  }

  /// Appends HELP, TYPE and the series of `name` to `out`.
  void render(std::string& out, std::string_view name, std::string_view help) const;

 private:
  std::array<double, N> bounds_;
  std::array<std::atomic<std::uint64_t>, N + 1> buckets_{};
  std::atomic<std::uint64_t> sum_micros_{0};  // sum of observations, in millionths
};

template <std::size_t N>
void fixed_histogram<N>::render(std::string& out, std::string_view name,
                                std::string_view help) const {
  out += "# HELP " + std::string(name) + " " + std::string(help) + "\n# TYPE " + std::string(name) +
         " histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i <= N; ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    auto le = i < N ? std::to_string(bounds_[i]) : std::string("+Inf");
    if (i < N) le.erase(le.find_last_not_of('0') + 1), le.back() == '.' ? le.pop_back() : void();
    out += std::string(name) + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += std::string(name) + "_sum " +
         std::to_string(sum_micros_.load(std::memory_order_relaxed) / 1e6) + "\n";
  out += std::string(name) + "_count " + std::to_string(cumulative) + "\n";
}

}  // namespace kaiwa
