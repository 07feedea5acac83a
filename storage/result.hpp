#pragma once
// Errors as values at the storage boundary. A rocksdb::Status is converted right where the call
// returns it; nothing from RocksDB leaves this module.

#include <string>
#include <utility>
#include <variant>

namespace kaiwa::storage {

enum class errc {
  io_error,    // the disk or the file system failed
  in_use,      // another process has the data directory open (RocksDB's LOCK file is held)
  corruption,  // the data on disk is not what kaiwa wrote
  invalid,     // the caller asked for something impossible (bad path, bad argument)
  stopped,     // the journal is stopped
};

struct error {
  errc code;
  std::string message;
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
  error err_{errc::io_error, {}};
  bool ok_ = true;
};

}  // namespace kaiwa::storage
