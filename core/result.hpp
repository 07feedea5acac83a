#pragma once
// Errors as values at a module boundary: `basic_result<T, Error>` holds a T or the module's
// error, `basic_status<Error>` nothing or the error. Each module names its own error type and
// aliases these (storage/result.hpp, cluster/result.hpp), so its callers see `result<T>` and
// `status` in its own terms.

#include <utility>
#include <variant>

namespace kaiwa {

template <class T, class Error>
class [[nodiscard]] basic_result {
 public:
  basic_result(T value) : v_(std::move(value)) {}
  basic_result(Error e) : v_(std::move(e)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& err() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

/// The outcome of an operation with no value.
template <class Error>
class [[nodiscard]] basic_status {
 public:
  basic_status() = default;
  basic_status(Error e) : err_(std::move(e)), ok_(false) {}
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& err() const { return err_; }

 private:
  Error err_{};
  bool ok_ = true;
};

}  // namespace kaiwa
