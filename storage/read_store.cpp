#include "storage/read_store.hpp"

#include "storage/detail/read_access.hpp"

namespace kaiwa::storage {

std::string shard_prefix(shard_t shard) {
  return {static_cast<char>(shard >> 8), static_cast<char>(shard & 0xff)};
}

read_batch::read_batch(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
read_batch::read_batch(read_batch&&) noexcept = default;
read_batch& read_batch::operator=(read_batch&&) noexcept = default;
read_batch::~read_batch() = default;

void read_batch::put(read_family f, std::string_view key, std::string_view value) {
  impl_->batch.Put(impl_->cfs[static_cast<std::size_t>(f)], key, value);
}

void read_batch::del(read_family f, std::string_view key) {
  impl_->batch.Delete(impl_->cfs[static_cast<std::size_t>(f)], key);
}

result<std::optional<std::string>> read_batch::get(read_family f, std::string_view key) const {
  std::string v;
  auto s = impl_->batch.GetFromBatchAndDB(impl_->db, rocksdb::ReadOptions(),
                                          impl_->cfs[static_cast<std::size_t>(f)], key, &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return to_error(s);
  return std::optional<std::string>{std::move(v)};
}

std::size_t read_batch::count() const { return impl_->batch.GetWriteBatch()->Count(); }

std::size_t read_batch::bytes() const { return impl_->batch.GetWriteBatch()->GetDataSize(); }

namespace {

class rocks_cursor final : public read_cursor {
 public:
  explicit rocks_cursor(rocksdb::Iterator* it) : it_(it) {}
  void seek(std::string_view key) override { it_->Seek(key); }
  void seek_for_prev(std::string_view key) override { it_->SeekForPrev(key); }
  void next() override { it_->Next(); }
  bool valid() const override { return it_->Valid(); }
  std::string_view key() const override { return it_->key().ToStringView(); }
  std::string_view value() const override { return it_->value().ToStringView(); }
  status state() const override {
    if (it_->status().ok()) return {};
    return to_error(it_->status());
  }

 private:
  std::unique_ptr<rocksdb::Iterator> it_;
};

}  // namespace

std::unique_ptr<read_cursor> read_access::make_cursor(rocksdb::DB* db,
                                                      rocksdb::ColumnFamilyHandle* cf) {
  return std::make_unique<rocks_cursor>(db->NewIterator(rocksdb::ReadOptions(), cf));
}

}  // namespace kaiwa::storage
