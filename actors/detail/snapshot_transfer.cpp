#include "actors/detail/snapshot_transfer.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <utility>

namespace kaiwa::detail {

namespace fs = std::filesystem;

std::optional<snapshot_sender> snapshot_sender::make(shard_t shard, cluster::epoch_t epoch,
                                                     std::uint64_t id, std::string dir,
                                                     const std::vector<std::string>& paths) {
  snapshot_sender s;
  s.shard_ = shard;
  s.epoch_ = epoch;
  s.id_ = id;
  s.dir_ = std::move(dir);  // removed by `s` from here on, whatever happens
  for (auto& p : paths) {
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    if (ec || !cluster::valid_snapshot_file(fs::path(p).filename().string())) return std::nullopt;
    if (size > max_snapshot_bytes - s.bytes_) return std::nullopt;
    s.bytes_ += size;
    auto file = s.paths_.size();
    s.paths_.push_back(p);
    // At least one chunk per file, so that an empty one is made on the follower too.
    std::uint64_t at = 0;
    do {
      auto n = std::min<std::uint64_t>(size - at, cluster::max_snapshot_chunk);
      s.chunks_.push_back({file, at, static_cast<std::uint32_t>(n)});
      at += n;
    } while (at < size);
  }
  if (s.chunks_.empty()) return std::nullopt;  // export_shard writes at least the log's file
  return s;
}

snapshot_sender::snapshot_sender(snapshot_sender&& o) noexcept
    : sent(o.sent),
      progress(o.progress),
      log_end(o.log_end),
      shard_(o.shard_),
      epoch_(o.epoch_),
      id_(o.id_),
      dir_(std::exchange(o.dir_, {})),
      paths_(std::move(o.paths_)),
      chunks_(std::move(o.chunks_)),
      next_(o.next_),
      bytes_(o.bytes_) {}

snapshot_sender::~snapshot_sender() {
  if (dir_.empty()) return;
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::optional<std::string> snapshot_sender::current() const {
  auto at = all_acked() ? static_cast<std::uint32_t>(chunks_.size() - 1) : next_;
  auto& c = chunks_[at];
  std::ifstream in(paths_[c.file], std::ios::binary);
  std::string data(c.size, '\0');
  if (!in.seekg(static_cast<std::streamoff>(c.at)) ||
      !in.read(data.data(), static_cast<std::streamsize>(data.size())))
    return std::nullopt;
  return cluster::encode(cluster::snapshot_chunk{shard_, epoch_, id_, at,
                                                 fs::path(paths_[c.file]).filename().string(),
                                                 at + 1 == chunks_.size(), std::move(data)});
}

bool snapshot_sender::acked(std::uint32_t next) {
  if (next != next_ + 1 || all_acked()) return false;
  next_ = next;
  return true;
}

snapshot_receiver::snapshot_receiver(std::string dir, std::uint64_t id)
    : dir_(std::move(dir)), id_(id) {
  std::error_code ec;
  fs::remove_all(dir_, ec);
  fs::create_directories(dir_, ec);
}

snapshot_receiver::~snapshot_receiver() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

snapshot_receiver::outcome snapshot_receiver::take(const cluster::snapshot_chunk& c) {
  if (c.seq < next_ || complete_) return outcome::repeated;
  if (c.seq > next_) return outcome::ignored;
  if (c.data.size() > max_snapshot_bytes - bytes_) return outcome::failed;
  // The file name was checked by the decoder ([a-z.], no leading dot): it stays in `dir_`.
  auto path = dir_ + "/" + c.file;
  bool fresh = std::find(paths_.begin(), paths_.end(), path) == paths_.end();
  // Chunks of one file come one after another; a name seen before must be the file in progress.
  if (!fresh && paths_.back() != path) return outcome::failed;
  std::ofstream out(path,
                    fresh ? std::ios::binary | std::ios::trunc : std::ios::binary | std::ios::app);
  if (!out.write(c.data.data(), static_cast<std::streamsize>(c.data.size())) || !out.flush())
    return outcome::failed;
  if (fresh) paths_.push_back(path);
  bytes_ += c.data.size();
  ++next_;
  if (!c.last) return outcome::written;
  complete_ = true;
  return outcome::complete;
}

}  // namespace kaiwa::detail
