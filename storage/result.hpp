#pragma once
// Errors as values at the storage boundary. A rocksdb::Status is converted right where the call
// returns it; nothing from RocksDB leaves this module.

#include <string>

#include "core/result.hpp"

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
using result = basic_result<T, error>;
using status = basic_status<error>;

}  // namespace kaiwa::storage
