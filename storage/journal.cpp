#include "storage/journal.hpp"

#include "core/bytes.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/process.hpp"
#include "storage/detail/read_access.hpp"
#include "storage/replica_payload.hpp"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/sst_file_reader.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace kaiwa::storage {

namespace {

// Column families, in the order they are opened; write_set::op::family indexes this. The log's
// families come first; the read models' follow in storage::read_family order.
enum family : std::uint8_t {
  events,
  snapshots,
  meta,
  markers,
  dedupe,
  replog,  // the shards' replicated logs (journal.hpp, "a shard's replicated log")
  log_family_count,
  read_rooms = log_family_count,
  read_search,
  family_count
};
constexpr const char* family_names[] = {"events", "snapshots", "meta",       "markers",
                                        "dedupe", "replog",    "read.rooms", "read.search"};
static_assert(std::size(family_names) == family_count);
static_assert(family_count - log_family_count == read_family_count);
// A replicated entry's record kinds are the log's families (a write_set's op family goes on the
// wire as the kind).
static_assert(events == std::uint8_t(record_kind::event) &&
              snapshots == std::uint8_t(record_kind::snapshot) &&
              meta == std::uint8_t(record_kind::meta) &&
              markers == std::uint8_t(record_kind::marker) &&
              dedupe == std::uint8_t(record_kind::dedupe));

family family_of(read_family f) {
  return static_cast<family>(log_family_count + static_cast<std::uint8_t>(f));
}

// Every key starts with its room's shard (2 bytes, big-endian), so a shard is one contiguous
// range in each column family: [be16 shard, be16 shard+1). Room and user names never contain
// NUL, so NUL separates the parts after it, and a room's events are the contiguous range
// [shard room NUL, shard room NUL 0xff..).
constexpr std::size_t shard_bytes = 2;

std::string shard_key(std::uint32_t shard) { return shard_prefix(static_cast<shard_t>(shard)); }

/// The end of `shard`'s range: the next shard's first key (past the last shard: 0xffff 0xffff,
/// above its replicated log's metadata keys, `shard 0xff ...`).
std::string shard_end_key(std::uint32_t shard) {
  return shard + 1 < max_shards ? shard_key(shard + 1) : std::string("\xff\xff\xff\xff", 4);
}

// Keys are built with a placeholder for the shard, which `stamp` fills in once the shard count
// is known (write_sets are built by rooms, which don't know it; the journal stamps them).
std::string room_key(const room_id& room) {
  std::string k(shard_bytes, '\0');
  k += room.str();
  return k;
}

std::string room_prefix(const room_id& room) { return room_key(room) + '\0'; }

std::string event_key(const room_id& room, seq_t seq) {
  auto k = room_prefix(room);
  append_be64(k, seq);
  return k;
}

std::string dedupe_key(const room_id& room, const user_id& user, std::string_view cid) {
  auto k = room_prefix(room);
  k += user.str();
  k += '\0';
  k += cid;
  return k;
}

// Markers are keyed by the room's shard first so they move with it; user before room keeps a
// user's markers of one shard together.
std::string marker_key(const user_id& user, const room_id& room) {
  std::string k(shard_bytes, '\0');
  k += user.str();
  k += '\0';
  k += room.str();
  return k;
}

void stamp(std::string& key, std::string_view room, std::uint32_t shards) {
  auto s = shard_of(room, shards);
  key[0] = static_cast<char>(s >> 8);
  key[1] = static_cast<char>(s & 0xff);
}

/// The room part of an event key (shard and name, up to and including the NUL). Given to
/// RocksDB as the memtable insert hint: each room's events arrive in seq order, so with a hint
/// per room an insert starts where that room's last one ended instead of searching the whole
/// skiplist (with 1,000 interleaved rooms that search was the node's top user-space cost).
class room_prefix_transform : public rocksdb::SliceTransform {
 public:
  const char* Name() const override { return "kaiwa.room_prefix.v2"; }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    auto nul = key.ToStringView().find('\0', shard_bytes);
    return rocksdb::Slice(key.data(), nul + 1);
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() > shard_bytes &&
           key.ToStringView().find('\0', shard_bytes) != std::string_view::npos;
  }
};

}  // namespace

error to_error(const rocksdb::Status& s) {
  auto text = s.ToString();
  // RocksDB says it only in words: "While lock file: DIR/LOCK: Resource temporarily
  // unavailable" (another process), "lock hold by current process" (this one).
  auto locked = s.IsIOError() && (text.find("While lock file") != std::string::npos ||
                                  text.find("lock hold by current process") != std::string::npos);
  auto code = s.IsCorruption()        ? errc::corruption
              : s.IsInvalidArgument() ? errc::invalid
              : locked                ? errc::in_use
                                      : errc::io_error;
  return {code, std::move(text)};
}

// -- write_set ------------------------------------------------------------------------------

void write_set::put_event(const room_id& room, seq_t seq, std::string_view json) {
  ops_.push_back({events, event_key(room, seq), std::string(json), shard_bytes, room.str().size()});
}

void write_set::put_snapshot(const room_id& room, std::string_view state) {
  ops_.push_back({snapshots, room_key(room), std::string(state), shard_bytes, room.str().size()});
}

void write_set::put_meta(const room_id& room, std::string_view m) {
  ops_.push_back({meta, room_key(room), std::string(m), shard_bytes, room.str().size()});
}

void write_set::put_dedupe(const room_id& room, const user_id& user, std::string_view cid,
                           seq_t seq) {
  ops_.push_back({dedupe, dedupe_key(room, user, cid), be64(seq), shard_bytes, room.str().size()});
}

void write_set::put_marker(const user_id& user, const room_id& room, seq_t seq) {
  auto key = marker_key(user, room);
  auto at = key.size() - room.str().size();
  ops_.push_back({markers, std::move(key), be64(seq), at, room.str().size()});
}

// -- journal --------------------------------------------------------------------------------

struct journal::impl {
  struct pending {
    write_set ws;
    completion done;
  };

  std::unique_ptr<rocksdb::DB> db;
  rocksdb::ColumnFamilyHandle* settings = nullptr;  // the default family
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;    // index = family
  std::uint32_t shards = default_shards;
  rocksdb::WriteOptions write_opts;
  std::chrono::milliseconds slow_write{100};

  std::mutex mtx;
  std::condition_variable cv;
  std::deque<pending> queue;  // guarded by mtx
  bool stopping = false;      // guarded by mtx
  std::thread writer;

  // A projector's batch handed to the writer (write_reads), whose caller waits for `result`.
  struct read_write {
    rocksdb::WriteBatch* batch;
    bool durable = false;  // through the WAL, synced (journal::write_reads)
    std::optional<status> result;
  };
  read_write* reads = nullptr;  // guarded by mtx: at most one waits at a time
  std::condition_variable reads_cv;

  fixed_histogram<10> batch_sizes{{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000}};
  fixed_histogram<10> write_seconds{
      {0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 1}};
  // Events appended per room, counted by the writer in one-second windows (hot_rooms).
  std::unordered_map<std::string, std::uint64_t> window_counts;  // writer thread only
  std::int64_t window_second = 0;                                // writer thread only
  mutable std::mutex hot_mtx;
  std::vector<journal::room_rate> last_second;  // guarded by hot_mtx, busiest first
  std::int64_t last_second_of = 0;              // guarded by hot_mtx: the window it counts
  void count_rooms(const std::deque<pending>& batch);
  std::atomic<std::uint64_t> commits{0};
  std::atomic<std::uint64_t> write_sets{0};
  std::function<void(const std::vector<journal::appended>&)> on_appended;  // set before start
  void report_appended(const std::deque<pending>& batch);

  // Rooms stored, per shard: RocksDB's estimate of the meta family's keys counts the rooms of a
  // shard moved away (range tombstones) and double-counts ingested ones until compaction, so
  // the journal counts them itself: a scan of the meta family at open and of a shard when it is
  // ingested or dropped, plus one for every room's first event (seq 1) committed.
  std::unique_ptr<std::atomic<std::uint32_t>[]> rooms_in_shard;
  status recount_rooms(std::optional<shard_t> only);
  void note_created_rooms(const std::deque<pending>& batch);

  void run_writer();
  void commit_group(std::deque<pending>& batch, rocksdb::WriteBatch& wb);
  // The last write failed (logged once per episode). RocksDB refuses all writes after some
  // failures (a new WAL it could not create: out of descriptors, say) until it is reopened.
  std::atomic<bool> failing{false};
  void close();
  std::optional<error> check_format(std::uint32_t shards);
  std::optional<error> migrate_unsharded_keys();
  std::string keyed(std::string key, const room_id& room) const {
    stamp(key, room.str(), shards);
    return key;
  }
  rocksdb::ColumnFamilyHandle* cf(family f) const { return cfs[f]; }
};

void journal::impl::count_rooms(const std::deque<pending>& batch) {
  auto second = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  if (second != window_second) {
    std::vector<journal::room_rate> top;
    if (second == window_second + 1) {
      top.reserve(window_counts.size());
      for (auto& [room, n] : window_counts) top.push_back({room, n});
      auto keep = std::min<std::size_t>(top.size(), 100);
      std::partial_sort(top.begin(), top.begin() + static_cast<std::ptrdiff_t>(keep), top.end(),
                        [](auto& a, auto& b) { return a.events > b.events; });
      top.resize(keep);
    }
    {
      std::lock_guard lock(hot_mtx);
      last_second = std::move(top);
      last_second_of = window_second;
    }
    window_counts.clear();
    window_second = second;
  }
  for (auto& p : batch)
    for (auto& op : p.ws.ops_)
      if (op.family == events) window_counts[op.key.substr(op.room_at, op.room_len)] += 1;
}

void journal::impl::report_appended(const std::deque<pending>& batch) {
  std::vector<journal::appended> out;
  for (auto& p : batch)
    for (auto& op : p.ws.ops_) {
      if (op.family != events) continue;
      auto room = std::string_view(op.key).substr(op.room_at, op.room_len);
      auto seq = read_be64(std::string_view(op.key).substr(op.key.size() - 8));
      // A write_set holds one room's events in seq order, so its room is usually the last one.
      if (!out.empty() && out.back().room == room) {
        out.back().seq = std::max(out.back().seq, seq);
        continue;
      }
      out.push_back({std::string(room), seq});
    }
  if (!out.empty()) on_appended(out);
}

status journal::impl::recount_rooms(std::optional<shard_t> only) {
  std::string begin = only ? shard_key(*only) : std::string(),
              end = only ? shard_end_key(*only) : std::string();
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a one-off walk: keep the cache for what queries and rooms read
  if (only) ro.iterate_upper_bound = &upper;
  std::vector<std::uint32_t> counts(only ? 1 : shards, 0);
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, cf(meta)));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    auto shard = read_be16(std::string_view(it->key().data(), it->key().size()));
    if (!only && shard < shards) ++counts[shard];
    if (only) ++counts[0];
  }
  if (!it->status().ok()) return to_error(it->status());
  if (only)
    rooms_in_shard[*only] = counts[0];
  else
    for (std::uint32_t i = 0; i < shards; ++i) rooms_in_shard[i] = counts[i];
  return {};
}

void journal::impl::note_created_rooms(const std::deque<pending>& batch) {
  for (auto& p : batch)
    for (auto& op : p.ws.ops_)
      if (op.family == events && read_be64(std::string_view(op.key).substr(op.key.size() - 8)) == 1)
        if (auto shard = read_be16(op.key); shard < shards) rooms_in_shard[shard] += 1;
}

void journal::impl::run_writer() {
  std::deque<pending> batch;
  rocksdb::WriteBatch wb;
  for (;;) {
    read_write* r = nullptr;
    {
      std::unique_lock lock(mtx);
      cv.wait(lock, [&] { return stopping || !queue.empty() || reads; });
      if (queue.empty() && !reads) return;  // stopping and drained
      batch.swap(queue);
      r = reads;
    }
    if (!batch.empty()) commit_group(batch, wb);
    if (!r) continue;
    // The read models' batch is written here, after the group's completions, rather than by
    // the projector thread itself: RocksDB serializes all writes of the DB, and a projector
    // thread (at nice 10) preempted while leading its write held up the next group commit
    // behind it (priority inversion; docs/benchmarks.md). One read batch per group commit: the
    // acks go first, and the projector still gets one write per round however busy the log is.
    rocksdb::WriteOptions wo;
    // No WAL: a projection's data and offsets share one column family, and a family's memtable
    // is flushed whole, so after a crash each projection restarts from an offset that matches
    // its data and applies the rest again from the log. In the WAL its writes (dozens of
    // postings per message) would be synced by every group commit of the log.
    // A durable batch (a deleted room's erasure) goes through the WAL, synced.
    wo.disableWAL = !r->durable;
    wo.sync = r->durable;
    auto s = db->Write(wo, r->batch);
    {
      std::lock_guard lock(mtx);
      r->result = s.ok() ? status{} : status{to_error(s)};
      reads = nullptr;
    }
    reads_cv.notify_all();
  }
}

void journal::impl::commit_group(std::deque<pending>& batch, rocksdb::WriteBatch& wb) {
  wb.Clear();
  for (auto& p : batch)
    for (auto& op : p.ws.ops_) wb.Put(cfs[op.family], op.key, op.value);
  auto started = std::chrono::steady_clock::now();
  auto s = db->Write(write_opts, &wb);
  if (!s.ok() && !failing.exchange(true))
    log(log_level::error, "journal_write_failed", {{"error", s.ToString()}});
  if (s.ok() && failing.exchange(false)) log(log_level::info, "journal_write_recovered");
  auto took = std::chrono::steady_clock::now() - started;
  write_seconds.observe(std::chrono::duration<double>(took).count());
  batch_sizes.observe(static_cast<double>(batch.size()));
  if (took > slow_write)
    log(log_level::warn, "slow_journal_write",
        {{"ms", std::chrono::duration<double, std::milli>(took).count()},
         {"write_sets", batch.size()},
         {"bytes", wb.GetDataSize()},
         {"sync", write_opts.sync}});
  commits += 1;
  write_sets += batch.size();
  count_rooms(batch);
  if (s.ok()) note_created_rooms(batch);
  if (s.ok() && on_appended) report_appended(batch);
  status st = s.ok() ? status{} : status{to_error(s)};
  // Each completion is destroyed as soon as it has run, before the next one runs: what it
  // captured (a room actor's reference) is gone by the time a later completion reports, which
  // is what lets a commit serve as a barrier for earlier ones (rooms::stop).
  for (auto& p : batch) std::exchange(p.done, nullptr)(st);
  batch.clear();
}

void journal::impl::close() {
  {
    std::lock_guard lock(mtx);
    if (stopping) return;
    stopping = true;
  }
  cv.notify_one();
  reads_cv.notify_all();
  if (writer.joinable()) writer.join();
  for (auto* h : cfs) db->DestroyColumnFamilyHandle(h);
  cfs.clear();
  if (settings) db->DestroyColumnFamilyHandle(std::exchange(settings, nullptr));
  db.reset();
}

// The data dir's layout: "format" 2 has shard-prefixed keys, with "shards" fixed at creation.
// Dirs written before shards existed (no "format") are rewritten in place once.
constexpr std::string_view format_key = "kaiwa.format";
constexpr std::string_view shards_key = "kaiwa.shards";
constexpr std::string_view current_format = "2";

std::optional<error> journal::impl::check_format(std::uint32_t want_shards) {
  if (want_shards == 0 || want_shards > max_shards)
    return error{errc::invalid, "shards must be 1 to " + std::to_string(max_shards)};
  std::string v;
  auto s = db->Get(rocksdb::ReadOptions(), settings, format_key, &v);
  if (!s.ok() && !s.IsNotFound()) return to_error(s);
  if (s.ok()) {
    if (v != current_format)
      return error{errc::invalid, "data dir has format " + v + ", this kaiwa reads format " +
                                      std::string(current_format)};
    std::string n;
    s = db->Get(rocksdb::ReadOptions(), settings, shards_key, &n);
    if (!s.ok()) return to_error(s);
    // Read from disk: checked like any input (std::stoul would throw out of open(), and a count
    // of 0 would divide by zero in every key's shard).
    std::uint32_t stored = 0;
    auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), stored);
    if (ec != std::errc{} || end != n.data() + n.size() || stored == 0 || stored > max_shards)
      return error{errc::corruption, "data dir has an invalid shard count: '" + n + "'"};
    shards = stored;
    if (shards != want_shards)
      return error{errc::invalid, "data dir was created with " + n + " shards, not " +
                                      std::to_string(want_shards) +
                                      " (the shard count can't change)"};
    return std::nullopt;
  }
  shards = want_shards;
  if (auto err = migrate_unsharded_keys()) return err;
  rocksdb::WriteBatch wb;
  wb.Put(settings, shards_key, std::to_string(shards));
  wb.Put(settings, format_key, current_format);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  s = db->Write(wo, &wb);
  return s.ok() ? std::nullopt : std::optional<error>(to_error(s));
}

std::optional<error> journal::impl::migrate_unsharded_keys() {
  std::uint64_t moved = 0;
  for (std::uint8_t f = 0; f < log_family_count; ++f) {  // read models came after shards
    // The iterator reads a snapshot, so the keys written here are not seen again.
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cfs[f]));
    rocksdb::WriteBatch wb;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto old_key = it->key().ToStringView();
      auto nul = old_key.find('\0');
      auto room = f == markers ? old_key.substr(nul + 1) : old_key.substr(0, nul);
      std::string key(shard_bytes, '\0');
      key += old_key;
      stamp(key, room, shards);
      wb.Put(cfs[f], key, it->value());
      wb.Delete(cfs[f], it->key());
      if (wb.Count() >= 10'000) {
        if (auto s = db->Write(rocksdb::WriteOptions(), &wb); !s.ok()) return to_error(s);
        wb.Clear();
      }
      ++moved;
    }
    if (!it->status().ok()) return to_error(it->status());
    if (auto s = db->Write(rocksdb::WriteOptions(), &wb); !s.ok()) return to_error(s);
  }
  if (moved > 0) log(log_level::info, "journal_keys_migrated", {{"records", moved}});
  return std::nullopt;
}

result<std::unique_ptr<journal>> journal::open(const journal_config& cfg) {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  opts.IncreaseParallelism(2);
  opts.max_background_jobs = 2;

  // The node's memory for data is fixed, whatever the data's size (a search index of 10 million
  // messages is gigabytes): one block cache for every family, holding the SST files' index and
  // filter blocks too (RocksDB otherwise keeps those of every open file outside it, which grows
  // with the data), and one budget for every family's memtables.
  opts.write_buffer_manager = std::make_shared<rocksdb::WriteBufferManager>(cfg.memtable_bytes);
  rocksdb::BlockBasedTableOptions table;
  // 16 shards, not RocksDB's 64: a shard must hold the biggest block, and files written before
  // the partitioning below (or by another tool) have filter blocks of megabytes.
  table.block_cache = rocksdb::NewLRUCache(cfg.block_cache_bytes, /*num_shard_bits=*/4);
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  // Index and filter blocks in 4 KiB partitions under a small pinned top level: whole, a big
  // file's are megabytes, about a block cache shard's size, and every lookup read them back
  // from the files and checked their checksums (a 10 M catch-up fell from 7,600 to 1,200
  // events/s; with a cache of 2 GiB, 15,000).
  table.index_type = rocksdb::BlockBasedTableOptions::kTwoLevelIndexSearch;
  table.partition_filters = true;
  table.metadata_block_size = 4096;
  table.cache_index_and_filter_blocks_with_high_priority = true;
  table.pin_top_level_index_and_filter = true;
  rocksdb::ColumnFamilyOptions cf_opts(opts);
  cf_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cf_opts.write_buffer_size = 64 << 20;
  // Fast compression where data is rewritten often, the densest where it settles: the search
  // index is mostly small sorted keys, which zstd shrinks most (docs/read-side.md, sizing).
  cf_opts.compression = rocksdb::kLZ4Compression;
  cf_opts.bottommost_compression = rocksdb::kZSTD;

  // The search index is only ever walked by seeks; a whole-key bloom filter would never be
  // asked and costs a tenth of its size on disk.
  auto search_opts = cf_opts;
  auto unfiltered = table;
  unfiltered.filter_policy.reset();
  // Its keys are many and small and share long prefixes (a term's postings in a shard): 8 KiB
  // blocks with a restart every 32 keys, and zstd with a dictionary trained per file at the
  // bottom level, where levels sized from the bottom put most of it (docs/read-side.md, "Size
  // and speed").
  unfiltered.block_size = 8 << 10;
  unfiltered.block_restart_interval = 32;
  search_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(unfiltered));
  search_opts.level_compaction_dynamic_level_bytes = true;
  search_opts.bottommost_compression_opts.enabled = true;
  search_opts.bottommost_compression_opts.max_dict_bytes = 64 << 10;
  search_opts.bottommost_compression_opts.zstd_max_train_bytes = 100 * (64 << 10);
  // The blocks sampled for the dictionary are buffered while a file is written: bounded.
  search_opts.bottommost_compression_opts.max_dict_buffer_bytes = 16 << 20;
  // Postings of one term in one shard (`shard 0x01 term NUL ...`, up to the first NUL) arrive
  // together, newest first: the insert hint starts each where that term's last one went.
  search_opts.memtable_insert_with_hint_prefix_extractor =
      std::make_shared<room_prefix_transform>();

  auto events_opts = cf_opts;
  events_opts.memtable_insert_with_hint_prefix_extractor =
      std::make_shared<room_prefix_transform>();

  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  descs.emplace_back(rocksdb::kDefaultColumnFamilyName, cf_opts);
  for (std::size_t f = 0; f < family_count; ++f)
    descs.emplace_back(family_names[f], f == events        ? events_opts
                                        : f == read_search ? search_opts
                                                           : cf_opts);

  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(rocksdb::DBOptions(opts), cfg.dir, descs, &handles, &raw);
  if (!s.ok()) return to_error(s);

  auto p = std::make_unique<impl>();
  p->db.reset(raw);
  p->settings = handles[0];
  p->cfs.assign(handles.begin() + 1, handles.end());
  if (auto err = p->check_format(cfg.shards)) {
    p->close();
    return *err;
  }
  p->rooms_in_shard = std::make_unique<std::atomic<std::uint32_t>[]>(p->shards);
  if (auto st = p->recount_rooms(std::nullopt); !st.ok()) {
    p->close();
    return st.err();
  }
  p->write_opts.sync = cfg.sync;
  p->slow_write = cfg.slow_write;
  auto* ip = p.get();
  p->writer = named_thread("kaiwa-journal", [ip] { ip->run_writer(); });
  return std::unique_ptr<journal>(new journal(std::move(p)));
}

journal::journal(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

journal::~journal() { stop(); }

void journal::stop() { impl_->close(); }

void journal::commit(write_set ws, completion done) {
  // Ops of no room (a replicated log's entries) carry their shard already.
  for (auto& op : ws.ops_)
    if (op.room_len > 0)
      stamp(op.key, std::string_view(op.key).substr(op.room_at, op.room_len), impl_->shards);
  {
    std::lock_guard lock(impl_->mtx);
    if (!impl_->stopping) {
      impl_->queue.push_back({std::move(ws), std::move(done)});
      impl_->cv.notify_one();
      return;
    }
  }
  done(status{error{errc::stopped, "journal is stopped"}});
}

result<std::vector<std::string>> journal::events_after(const room_id& room, seq_t after,
                                                       std::size_t limit) const {
  std::vector<std::string> out;
  auto prefix = impl_->keyed(room_prefix(room), room);
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf(events)));
  for (it->Seek(impl_->keyed(event_key(room, after + 1), room)); it->Valid() && out.size() < limit;
       it->Next()) {
    if (!it->key().starts_with(prefix)) break;
    out.emplace_back(it->value().ToStringView());
  }
  if (!it->status().ok()) return to_error(it->status());
  return out;
}

result<std::optional<std::string>> journal::event(const room_id& room, seq_t seq) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(events),
                          impl_->keyed(event_key(room, seq), room), &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return to_error(s);
  return std::optional<std::string>{std::move(v)};
}

result<seq_t> journal::last_seq(const room_id& room) const {
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf(events)));
  it->SeekForPrev(impl_->keyed(event_key(room, ~seq_t{0}), room));
  if (!it->status().ok()) return to_error(it->status());
  auto prefix = impl_->keyed(room_prefix(room), room);
  if (!it->Valid() || !it->key().starts_with(prefix)) return seq_t{0};
  return read_be64(it->key().ToStringView().substr(prefix.size()));
}

result<std::optional<std::string>> journal::snapshot(const room_id& room) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(snapshots),
                          impl_->keyed(room_key(room), room), &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return to_error(s);
  return std::optional<std::string>{std::move(v)};
}

result<std::optional<seq_t>> journal::dedupe(const room_id& room, const user_id& user,
                                             std::string_view cid) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(family::dedupe),
                          impl_->keyed(dedupe_key(room, user, cid), room), &v);
  if (s.IsNotFound()) return std::optional<seq_t>{};
  if (!s.ok()) return to_error(s);
  return std::optional<seq_t>{read_be64(v)};
}

result<seq_t> journal::marker(const user_id& user, const room_id& room) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(markers),
                          impl_->keyed(marker_key(user, room), room), &v);
  if (s.IsNotFound()) return seq_t{0};
  if (!s.ok()) return to_error(s);
  return read_be64(v);
}

result<std::vector<std::pair<room_id, seq_t>>> journal::markers_of(const user_id& user,
                                                                   shard_t shard) const {
  std::vector<std::pair<room_id, seq_t>> out;
  auto prefix = shard_key(shard) + user.str() + '\0';
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf(markers)));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next())
    out.emplace_back(room_id(std::string(it->key().ToStringView().substr(prefix.size()))),
                     read_be64(it->value().ToStringView()));
  if (!it->status().ok()) return to_error(it->status());
  return out;
}

result<std::vector<journal::room_head>> journal::room_heads(const std::optional<room_id>& after,
                                                            std::size_t limit,
                                                            std::optional<shard_t> shard) const {
  std::vector<room_head> out;
  // Event keys are `shard room NUL seq` and names have no byte below '-', so `shard room \x01`
  // sorts after every event of the room and before the next room's first.
  std::string from = shard ? shard_key(*shard) : std::string();
  if (after) {
    from = impl_->keyed(room_key(*after), *after) + '\x01';
    if (shard && from.compare(0, shard_bytes, shard_key(*shard)) != 0) return out;
  }
  std::string end = shard ? shard_end_key(*shard) : std::string("\xff\xff\xff", 3);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf(events)));
  it->Seek(from);
  while (it->Valid() && out.size() < limit) {
    auto key = it->key().ToStringView();
    auto nul = key.find('\0', shard_bytes);
    if (nul == std::string_view::npos) break;  // not an event key: the family holds only those
    std::string prefix(key.substr(0, nul + 1));
    room_id room(std::string(key.substr(shard_bytes, nul - shard_bytes)));
    it->SeekForPrev(prefix + std::string(8, '\xff'));
    if (!it->Valid()) break;
    out.push_back({std::move(room), read_be64(it->key().ToStringView().substr(prefix.size()))});
    prefix.back() = '\x01';
    it->Seek(prefix);
  }
  if (!it->status().ok()) return to_error(it->status());
  return out;
}

result<std::optional<std::string>> journal::room_meta(const room_id& room) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(family::meta),
                          impl_->keyed(room_key(room), room), &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return to_error(s);
  return std::optional<std::string>{std::move(v)};
}

namespace {
// Settings keys of rooms being deleted: the prefix, then the room's name.
constexpr std::string_view deleting_prefix = "kaiwa.deleting.";
}  // namespace

status journal::mark_deleting(const room_id& room) {
  return put_setting(std::string(deleting_prefix) + room.str(), "");
}

status journal::unmark_deleting(const room_id& room) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Delete(wo, impl_->settings, std::string(deleting_prefix) + room.str());
  if (!s.ok()) return to_error(s);
  return {};
}

result<std::vector<room_id>> journal::rooms_being_deleted() const {
  std::vector<room_id> out;
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->settings));
  for (it->Seek(deleting_prefix); it->Valid() && it->key().starts_with(deleting_prefix); it->Next())
    out.emplace_back(std::string(it->key().ToStringView().substr(deleting_prefix.size())));
  if (!it->status().ok()) return to_error(it->status());
  return out;
}

status journal::delete_room_log(const room_id& room) {
  auto shard = shard_of(room.str(), impl_->shards);
  auto key = impl_->keyed(room_key(room), room);
  // `shard room NUL ...` are the room's events and dedupe keys; names have no byte below '-',
  // so [`shard room`, `shard room \x01`) holds them and no other room's keys. The range starts
  // at `shard room`, no NUL, on purpose: outside the events family's insert-hint prefix domain
  // (room_prefix_transform). RocksDB 7.8 keeps one hint per prefix for the memtable and its
  // range-tombstone table alike, and a range tombstone inserted with a point key's hint
  // corrupts the skiplist (an assertion in InlineSkipList::FindSpliceForLevel).
  auto begin = key, end = key + '\x01';
  rocksdb::WriteBatch wb;
  for (auto f : {family::events, family::dedupe})
    if (auto s = wb.DeleteRange(impl_->cf(f), begin, end); !s.ok()) return to_error(s);
  for (auto f : {family::snapshots, family::meta})
    if (auto s = wb.Delete(impl_->cf(f), key); !s.ok()) return to_error(s);
  // Markers are `shard user NUL room`: the shard's markers are walked for this room's.
  auto shard_begin = shard_key(shard), shard_end = shard_end_key(shard);
  rocksdb::Slice upper(shard_end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf(family::markers)));
  auto suffix = '\0' + room.str();
  for (it->Seek(shard_begin); it->Valid(); it->Next())
    if (it->key().ToStringView().ends_with(suffix))
      if (auto s = wb.Delete(impl_->cf(family::markers), it->key()); !s.ok()) return to_error(s);
  if (!it->status().ok()) return to_error(it->status());
  std::string v;
  auto had = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(family::meta), key, &v);
  if (!had.ok() && !had.IsNotFound()) return to_error(had);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = impl_->db->Write(wo, &wb); !s.ok()) return to_error(s);
  // Every room has a meta record from its first event on (rooms_in_shard counts them).
  if (had.ok() && impl_->rooms_in_shard[shard] > 0) impl_->rooms_in_shard[shard] -= 1;
  return {};
}

read_batch journal::new_read_batch() const {
  return read_access::make_batch(impl_->db.get(), &impl_->cfs[log_family_count]);
}

status journal::write_reads(read_batch b, bool durable) {
  impl::read_write r{read_access::write_batch(b), durable, std::nullopt};
  std::unique_lock lock(impl_->mtx);
  impl_->reads_cv.wait(lock, [&] { return impl_->stopping || !impl_->reads; });
  if (impl_->stopping) return error{errc::stopped, "journal is stopped"};
  impl_->reads = &r;
  impl_->cv.notify_one();
  // The writer drains what was handed to it before it ends, so this wait always ends.
  impl_->reads_cv.wait(lock, [&] { return r.result.has_value(); });
  return *r.result;
}

result<std::optional<std::string>> journal::read_get(read_family f, std::string_view key) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(family_of(f)), key, &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return to_error(s);
  return std::optional<std::string>{std::move(v)};
}

std::unique_ptr<read_cursor> journal::new_read_cursor(read_family f) const {
  return read_access::make_cursor(impl_->db.get(), impl_->cf(family_of(f)));
}

status journal::drop_reads(read_family f) {
  auto* cf = impl_->cf(family_of(f));
  std::string begin = shard_key(0), end("\xff\xff\xff", 3);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = impl_->db->DeleteRange(wo, cf, begin, end); !s.ok()) return to_error(s);
  rocksdb::Slice b(begin), e(end);
  rocksdb::CompactRangeOptions co;
  if (auto s = impl_->db->CompactRange(co, cf, &b, &e); !s.ok()) return to_error(s);
  return {};
}

status journal::flush_reads() {
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  for (std::size_t f = 0; f < read_family_count; ++f)
    cfs.push_back(impl_->cf(family_of(static_cast<read_family>(f))));
  rocksdb::FlushOptions fo;
  fo.wait = true;
  if (auto s = impl_->db->Flush(fo, cfs); !s.ok()) return to_error(s);
  return {};
}

void journal::on_appended(std::function<void(const std::vector<appended>&)> fn) {
  impl_->on_appended = std::move(fn);
}

// -- a shard's replicated log ------------------------------------------------------------------
// `replog` keys of a shard, in key order:
//   `shard` -> be64(applied offset)
//   `shard be64(offset)` -> be64(epoch) payload (storage/replica_payload.hpp); offsets are below
//     2^56, so their first byte is never 0xff and every entry sorts before the metadata
//   `shard ff 'e' be64(epoch)` -> be64(the epoch's first offset in the log): the epoch history
//   `shard ff 's'` -> be64(the log's first offset), once retention trimmed it (absent: 1)

namespace {

std::string replog_key(shard_t shard, std::uint64_t offset) {
  auto k = shard_key(shard);
  append_be64(k, offset);
  return k;
}

/// Where the shard's entries end and its metadata begins.
std::string replog_meta_key(shard_t shard) { return shard_key(shard) + '\xff'; }

std::string replog_epoch_key(shard_t shard, std::uint64_t epoch) {
  auto k = replog_meta_key(shard) + 'e';
  append_be64(k, epoch);
  return k;
}

std::string replog_start_key(shard_t shard) { return replog_meta_key(shard) + 's'; }

error damaged(shard_t shard, std::string_view what) {
  return error{errc::corruption,
               "shard " + std::to_string(shard) + "'s replicated log: " + std::string(what)};
}

}  // namespace

std::string journal::replica_payload(write_set& ws) const {
  std::string out;
  for (auto& op : ws.ops_) {
    if (op.room_len > 0)
      stamp(op.key, std::string_view(op.key).substr(op.room_at, op.room_len), impl_->shards);
    append_record(out, static_cast<record_kind>(op.family), op.key, op.value);
  }
  return out;
}

void journal::append_replica_entries(shard_t shard, std::vector<replica_entry> entries,
                                     completion done) {
  write_set ws;
  for (auto& e : entries) {
    if (e.offset == 0 || e.offset > max_replica_offset)
      return done(error{errc::invalid, "replicated entry offset " + std::to_string(e.offset) +
                                           " is out of range"});
    if (e.starts_epoch)
      ws.ops_.push_back({replog, replog_epoch_key(shard, e.epoch), be64(e.offset), 0, 0});
    auto value = be64(e.epoch);
    value += e.payload;
    ws.ops_.push_back({replog, replog_key(shard, e.offset), std::move(value), 0, 0});
  }
  commit(std::move(ws), std::move(done));
}

status journal::apply_replica_entries(shard_t shard, const std::vector<replica_entry>& entries,
                                      completion done) {
  if (shard >= impl_->shards)
    return error{errc::invalid, "shard " + std::to_string(shard) + " is past the shard count"};
  if (entries.empty()) return {};
  // Each entry applied once, in order: the caller has one apply of a shard in flight at a time,
  // so what the log says was applied is current here.
  auto at = replica_position(shard);
  if (!at.ok()) return at.err();
  if (entries.front().offset != at->applied + 1)
    return error{errc::invalid, "replicated entry " + std::to_string(entries.front().offset) +
                                    " of shard " + std::to_string(shard) +
                                    " is not the next to apply after " +
                                    std::to_string(at->applied)};
  write_set ws;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    auto& e = entries[i];
    auto bad = [&](std::string_view why) {
      return error{errc::invalid, "replicated entry " + std::to_string(e.offset) + " of shard " +
                                      std::to_string(shard) + ": " + std::string(why)};
    };
    if (i > 0 && e.offset != entries[i - 1].offset + 1) return bad("offsets not consecutive");
    if (e.payload.size() > max_replica_payload) return bad("payload over the bound");
    auto records = decode_replica_payload(e.payload, shard, impl_->shards);
    if (!records) return bad("not records of the shard's rooms");
    for (auto& r : *records)
      ws.ops_.push_back({static_cast<std::uint8_t>(r.kind), std::move(r.key), std::move(r.value),
                         r.room_at, r.room_len});
  }
  ws.ops_.push_back({replog, shard_key(shard), be64(entries.back().offset), 0, 0});
  commit(std::move(ws), std::move(done));
  return {};
}

result<std::vector<journal::replica_entry>> journal::replica_entries(shard_t shard,
                                                                     std::uint64_t after,
                                                                     std::size_t max_entries,
                                                                     std::size_t max_bytes) const {
  std::vector<replica_entry> out;
  if (after >= max_replica_offset) return out;  // no offset after the last
  auto end = replog_meta_key(shard);
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf(replog)));
  std::size_t bytes = 0;
  for (it->Seek(replog_key(shard, after + 1)); it->Valid() && out.size() < max_entries;
       it->Next()) {
    auto k = it->key().ToStringView();
    auto v = it->value().ToStringView();
    if (k.size() != shard_bytes + 8 || v.size() < 8) return damaged(shard, "an entry is damaged");
    if (!out.empty() && bytes + v.size() > max_bytes) break;
    bytes += v.size();
    out.push_back({read_be64(k.substr(shard_bytes)), read_be64(v), std::string(v.substr(8))});
  }
  if (!it->status().ok()) return to_error(it->status());
  return out;
}

result<journal::replica_offsets> journal::replica_position(shard_t shard) const {
  replica_offsets p;
  auto get = [&](const std::string& key) -> result<std::optional<std::uint64_t>> {
    std::string v;
    auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->cf(replog), key, &v);
    if (s.IsNotFound()) return std::optional<std::uint64_t>{};
    if (!s.ok()) return to_error(s);
    if (v.size() != 8) return damaged(shard, "an offset is damaged");
    return std::optional<std::uint64_t>{read_be64(v)};
  };
  auto applied = get(shard_key(shard));
  if (!applied) return applied.err();
  p.applied = applied->value_or(0);
  auto start = get(replog_start_key(shard));
  if (!start) return start.err();
  p.log_start = start->value_or(1);
  if (p.log_start == 0 || p.log_start > max_replica_offset) return damaged(shard, "bad start");
  p.log_end = p.log_start - 1;
  // The last entry: the one before the metadata (never a key itself: they are longer).
  std::unique_ptr<rocksdb::Iterator> it(
      impl_->db->NewIterator(rocksdb::ReadOptions(), impl_->cf(replog)));
  it->SeekForPrev(replog_meta_key(shard));
  if (it->Valid()) {
    auto k = it->key().ToStringView();
    if (k.size() == shard_bytes + 8 && read_be16(k) == shard)
      p.log_end = std::max(p.log_end, read_be64(k.substr(shard_bytes)));
  }
  if (!it->status().ok()) return to_error(it->status());
  return p;
}

result<std::vector<journal::replica_epoch>> journal::replica_history(shard_t shard) const {
  std::vector<replica_epoch> out;
  auto begin = replog_meta_key(shard) + 'e', end = replog_meta_key(shard) + 'f';
  rocksdb::Slice upper(end);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cf(replog)));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    auto k = it->key().ToStringView();
    auto v = it->value().ToStringView();
    if (k.size() != begin.size() + 8 || v.size() != 8)
      return damaged(shard, "an epoch of its history is damaged");
    out.push_back({read_be64(k.substr(begin.size())), read_be64(v)});
  }
  if (!it->status().ok()) return to_error(it->status());
  return out;
}

status journal::truncate_replica_log(shard_t shard, std::uint64_t keep_through) {
  auto at = replica_position(shard);
  if (!at.ok()) return at.err();
  if (keep_through < at->applied)
    return error{errc::invalid, "truncating shard " + std::to_string(shard) + "'s log to " +
                                    std::to_string(keep_through) + " would drop applied entry " +
                                    std::to_string(at->applied)};
  if (keep_through >= at->log_end) return {};
  auto history = replica_history(shard);
  if (!history.ok()) return history.err();
  rocksdb::WriteBatch wb;
  if (auto s = wb.DeleteRange(impl_->cf(replog), replog_key(shard, keep_through + 1),
                              replog_meta_key(shard));
      !s.ok())
    return to_error(s);
  // The epochs whose first entry goes with the suffix go too.
  for (auto& e : *history)
    if (e.start > keep_through)
      if (auto s = wb.Delete(impl_->cf(replog), replog_epoch_key(shard, e.epoch)); !s.ok())
        return to_error(s);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = impl_->db->Write(wo, &wb); !s.ok()) return to_error(s);
  return {};
}

status journal::trim_replica_log(shard_t shard, std::uint64_t start) {
  auto at = replica_position(shard);
  if (!at.ok()) return at.err();
  if (start > at->applied)
    return error{errc::invalid, "trimming shard " + std::to_string(shard) + "'s log to " +
                                    std::to_string(start) + " would drop its last applied entry " +
                                    std::to_string(at->applied)};
  if (start <= at->log_start) return {};
  auto history = replica_history(shard);
  if (!history.ok()) return history.err();
  rocksdb::WriteBatch wb;
  auto* cf = impl_->cf(replog);
  // Appends in flight are past the log end, hence past `start`: they touch none of these keys.
  if (auto s = wb.DeleteRange(cf, replog_key(shard, 0), replog_key(shard, start)); !s.ok())
    return to_error(s);
  if (auto s = wb.Put(cf, replog_start_key(shard), be64(start)); !s.ok()) return to_error(s);
  // An epoch that ends before `start` goes; the one holding `start` now starts there.
  auto& h = *history;
  for (std::size_t i = 0; i < h.size() && h[i].start < start; ++i) {
    bool ends_before = i + 1 < h.size() && h[i + 1].start <= start;
    auto s = ends_before ? wb.Delete(cf, replog_epoch_key(shard, h[i].epoch))
                         : wb.Put(cf, replog_epoch_key(shard, h[i].epoch), be64(start));
    if (!s.ok()) return to_error(s);
  }
  if (auto s = impl_->db->Write(rocksdb::WriteOptions(), &wb); !s.ok()) return to_error(s);
  return {};
}

result<journal::replica_log_stats> journal::replica_log_size(shard_t shard) const {
  auto at = replica_position(shard);
  if (!at.ok()) return at.err();
  replica_log_stats out;
  out.entries = at->log_end + 1 - at->log_start;
  auto begin = replog_key(shard, 0), end = replog_meta_key(shard);
  rocksdb::Range r(begin, end);
  rocksdb::SizeApproximationOptions o;
  o.include_memtables = true;
  o.include_files = true;
  if (auto s = impl_->db->GetApproximateSizes(o, impl_->cf(replog), &r, 1, &out.bytes); !s.ok())
    return to_error(s);
  return out;
}

std::uint32_t journal::shards() const noexcept { return impl_->shards; }

result<journal::shard_files> journal::export_shard(shard_t shard, const std::string& dir) const {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return error{errc::io_error, "can't create " + dir + ": " + ec.message()};
  shard_files out;
  auto begin = shard_key(shard), end = shard_end_key(shard);
  rocksdb::Slice upper(end);
  // Every family as of one moment: a replica's snapshot is taken while it applies, and its
  // records, applied offset, log and history must agree.
  const rocksdb::Snapshot* at = impl_->db->GetSnapshot();
  struct release {
    rocksdb::DB* db;
    const rocksdb::Snapshot* s;
    ~release() { db->ReleaseSnapshot(s); }
  } released{impl_->db.get(), at};
  for (std::uint8_t f = 0; f < family_count; ++f) {
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    ro.snapshot = at;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, impl_->cfs[f]));
    it->Seek(begin);
    if (!it->Valid()) {
      if (!it->status().ok()) return to_error(it->status());
      continue;
    }
    rocksdb::SstFileWriter writer{rocksdb::EnvOptions{}, rocksdb::Options{}};
    auto path = dir + "/" + family_names[f] + ".sst";
    if (auto s = writer.Open(path); !s.ok()) return to_error(s);
    for (; it->Valid(); it->Next()) {
      if (auto s = writer.Put(it->key(), it->value()); !s.ok()) return to_error(s);
      ++out.records;
    }
    if (!it->status().ok()) return to_error(it->status());
    rocksdb::ExternalSstFileInfo info;
    if (auto s = writer.Finish(&info); !s.ok()) return to_error(s);
    out.bytes += info.file_size;
    out.paths.push_back(path);
  }
  return out;
}

status journal::ingest_shard(shard_t shard, const std::vector<std::string>& paths) {
  // The files come from another node (a move, a follower's snapshot): every key must be of
  // `shard`, or ingesting them would overwrite other shards' records. Checked before anything
  // of the shard is dropped.
  auto begin = shard_key(shard), end = shard_end_key(shard);
  for (auto& path : paths) {
    rocksdb::SstFileReader reader{rocksdb::Options{}};
    if (auto s = reader.Open(path); !s.ok()) return to_error(s);
    std::unique_ptr<rocksdb::Iterator> it(reader.NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    bool outside = it->Valid() && it->key().compare(begin) < 0;
    it->SeekToLast();
    outside = outside || (it->Valid() && it->key().compare(end) >= 0);
    if (!it->status().ok()) return to_error(it->status());
    if (outside)
      return error{errc::invalid, "shard file " + path + " holds keys of another shard than " +
                                      std::to_string(shard)};
  }
  // Stale records of the shard (from an earlier ownership) go first. Only if there are any: a
  // range tombstone in the memtable overlaps the files, and RocksDB would flush the memtable
  // before ingesting them.
  auto held = count_shard(shard, 1);
  if (!held) return held.err();
  if (*held > 0)
    if (auto st = drop_shard(shard); !st.ok()) return st;
  for (auto& path : paths) {
    auto name = std::filesystem::path(path).stem().string();
    auto f = std::find(std::begin(family_names), std::end(family_names), name);
    if (f == std::end(family_names))
      return error{errc::invalid, "not a shard file of any column family: " + path};
    rocksdb::IngestExternalFileOptions io;
    io.move_files = true;
    auto s = impl_->db->IngestExternalFile(impl_->cfs[f - std::begin(family_names)], {path}, io);
    if (!s.ok()) return to_error(s);
  }
  return impl_->recount_rooms(shard);
}

status journal::drop_shard(shard_t shard) {
  auto begin = shard_key(shard), end = shard_end_key(shard);
  rocksdb::WriteBatch wb;  // every family in one write, one sync
  for (auto* cf : impl_->cfs)
    if (auto s = wb.DeleteRange(cf, begin, end); !s.ok()) return to_error(s);
  rocksdb::WriteOptions wo;
  wo.sync = true;
  if (auto s = impl_->db->Write(wo, &wb); !s.ok()) return to_error(s);
  impl_->rooms_in_shard[shard] = 0;
  return {};
}

result<std::uint64_t> journal::count_shard(shard_t shard, std::uint64_t limit) const {
  auto begin = shard_key(shard), end = shard_end_key(shard);
  rocksdb::Slice upper(end);
  std::uint64_t n = 0;
  for (auto* cf : impl_->cfs) {
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(impl_->db->NewIterator(ro, cf));
    for (it->Seek(begin); it->Valid() && n < limit; it->Next()) ++n;
    if (!it->status().ok()) return to_error(it->status());
  }
  return n;
}

result<std::optional<std::string>> journal::setting(std::string_view key) const {
  std::string v;
  auto s = impl_->db->Get(rocksdb::ReadOptions(), impl_->settings, key, &v);
  if (s.IsNotFound()) return std::optional<std::string>{};
  if (!s.ok()) return to_error(s);
  return std::optional<std::string>{std::move(v)};
}

status journal::put_setting(std::string_view key, std::string_view value) {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  auto s = impl_->db->Put(wo, impl_->settings, key, value);
  if (!s.ok()) return to_error(s);
  return {};
}

result<journal::checkpoint_info> journal::checkpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  auto s = rocksdb::Checkpoint::Create(impl_->db.get(), &raw);
  if (!s.ok()) return to_error(s);
  std::unique_ptr<rocksdb::Checkpoint> cp(raw);
  s = cp->CreateCheckpoint(dir);
  if (!s.ok()) return to_error(s);
  checkpoint_info info;
  std::error_code ec;
  for (auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    info.files += 1;
    info.bytes += entry.is_regular_file() ? entry.file_size() : 0;
  }
  if (ec) return error{errc::io_error, ec.message()};
  return info;
}

std::vector<journal::room_rate> journal::hot_rooms(std::size_t limit) const {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  std::lock_guard lock(impl_->hot_mtx);
  if (impl_->last_second_of + 1 < now) return {};  // no writes since: nothing is hot
  auto& all = impl_->last_second;
  return {all.begin(), all.begin() + static_cast<std::ptrdiff_t>(std::min(limit, all.size()))};
}

journal::disk_stats journal::disk() const {
  disk_stats d;
  std::uint64_t v = 0;
  for (std::uint32_t i = 0; i < impl_->shards; ++i) d.rooms += impl_->rooms_in_shard[i];
  for (std::size_t f = 0; f < impl_->cfs.size(); ++f) {
    std::uint64_t cf_bytes = 0;
    if (impl_->db->GetIntProperty(impl_->cfs[f], "rocksdb.total-sst-files-size", &v)) cf_bytes += v;
    if (impl_->db->GetIntProperty(impl_->cfs[f], "rocksdb.cur-size-all-mem-tables", &v))
      cf_bytes += v;
    d.bytes += cf_bytes;
    if (f >= log_family_count) d.read_bytes += cf_bytes;
  }
  return d;
}

void journal::render_metrics(std::string& out) const {
  impl_->batch_sizes.render(out, "kaiwa_journal_commit_write_sets",
                            "Room write sets per group commit (one RocksDB write, one WAL sync).");
  impl_->write_seconds.render(out, "kaiwa_journal_write_seconds",
                              "Latency of a group commit's RocksDB write, WAL sync included.");
}

bool journal::writable() const noexcept { return !impl_->failing.load(); }

journal_stats journal::stats() const { return {impl_->commits.load(), impl_->write_sets.load()}; }

}  // namespace kaiwa::storage
