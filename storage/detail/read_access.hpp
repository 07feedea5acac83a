#pragma once
// Storage-internal: how the journal builds read batches and cursors over its RocksDB. Not for
// use outside storage/ (it includes RocksDB).

#include <rocksdb/db.h>
#include <rocksdb/utilities/write_batch_with_index.h>

#include <memory>

#include "storage/read_store.hpp"

namespace kaiwa::storage {

error to_error(const rocksdb::Status& s);

struct read_batch::impl {
  impl(rocksdb::DB* d, rocksdb::ColumnFamilyHandle* const* c) : db(d), cfs(c) {}
  rocksdb::DB* db;
  rocksdb::ColumnFamilyHandle* const* cfs;  // index = read_family, owned by the journal
  rocksdb::WriteBatchWithIndex batch;
};

struct read_access {
  static read_batch make_batch(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* const* cfs) {
    return read_batch(std::unique_ptr<read_batch::impl>(new read_batch::impl(db, cfs)));
  }
  static rocksdb::WriteBatch* write_batch(read_batch& b) { return b.impl_->batch.GetWriteBatch(); }
  static std::unique_ptr<read_cursor> make_cursor(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf);
};

}  // namespace kaiwa::storage
