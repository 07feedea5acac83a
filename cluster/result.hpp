#pragma once
// Errors as values at the cluster boundary: what etcd (or whatever answers in its place) did
// is converted into these where the response is read; nothing from Beast or simdjson leaves the
// module.

#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace kaiwa::cluster {

enum class errc {
  unavailable,      // no endpoint could be reached, or each refused before the request was sent
  timeout,          // the call's timeout passed before an answer
  unknown_outcome,  // the connection broke after a write was sent: it may or may not be applied
  protocol,         // the answer was not HTTP/JSON of the expected shape (or too large)
  etcd,             // etcd answered with an error (its gRPC code is in `etcd_code`)
  invalid,          // the caller asked for something impossible (an empty key, a bad TTL)
};

struct error {
  errc code;
  std::string message;
  int etcd_code = 0;  // the gRPC status code etcd sent with errc::etcd (5: not found, ...)
};

template <class T>
using result = basic_result<T, error>;
using status = basic_status<error>;

/// A name for logs and test messages ("timeout", "etcd", ...).
const char* to_string(errc e) noexcept;

}  // namespace kaiwa::cluster
