#pragma once
// OpenSSL reports errors in a per-thread queue; whoever reads one must empty it, or the next
// OpenSSL call on that thread (another connection's) can read a stale error as its own.

#include <string>
#include <string_view>

namespace kaiwa {

/// This thread's queued OpenSSL errors as one line ("; " between them), leaving the queue
/// empty; `when_none` when it was empty.
std::string openssl_errors(std::string_view when_none = "unknown OpenSSL error");

}  // namespace kaiwa
