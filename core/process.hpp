#pragma once
// Facts about this process that the node and the bench tool both need.

#include <cstdint>

namespace kaiwa {

/// Raises the open-files limit to the hard limit; returns the limit now in force.
std::uint64_t raise_fd_limit() noexcept;

}  // namespace kaiwa
