#pragma once
// Errors as values at the cluster boundary: what etcd (or whatever answers in its place) did
// is converted into these where the response is read; nothing from Beast or simdjson leaves the
// module.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

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
class [[nodiscard]] result {
 public:
  result(T value) : v_(std::move(value)) {}
  result(error e) : v_(std::move(e)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const error& err() const { return std::get<1>(v_); }

 private:
  std::variant<T, error> v_;
};

/// The outcome of an operation with no value.
class [[nodiscard]] status {
 public:
  status() = default;
  status(error e) : err_(std::move(e)), ok_(false) {}
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const error& err() const { return err_; }

 private:
  error err_{errc::unavailable, {}};
  bool ok_ = true;
};

/// A name for logs and test messages ("timeout", "etcd", ...).
const char* to_string(errc e) noexcept;

}  // namespace kaiwa::cluster
