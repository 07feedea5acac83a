#include "cluster/replication_wire.hpp"

#include <algorithm>
#include <cstring>

namespace kaiwa::cluster {

namespace {

class writer {
 public:
  template <class T>
  writer& num(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_.append(b, sizeof(T));
    return *this;
  }
  writer& str(std::string_view s) {
    num(static_cast<std::uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

/// Reads what is there, failing (for good) at the first thing that isn't.
class reader {
 public:
  explicit reader(std::string_view in) : in_(in) {}

  template <class T>
  T num() {
    T v{};
    if (!ok_ || in_.size() < sizeof(T)) return fail(), v;
    std::memcpy(&v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return v;
  }
  std::string str(std::size_t max) {
    auto n = num<std::uint32_t>();
    if (!ok_ || n > max || n > in_.size()) return fail(), std::string();
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  /// A count of items at least `min_item` bytes each: never more than the bytes left allow.
  std::size_t count(std::size_t max, std::size_t min_item) {
    auto n = num<std::uint32_t>();
    if (!ok_ || n > max || n > in_.size() / min_item) return fail(), 0;
    return n;
  }
  /// Everything read, nothing left over.
  bool finished() const { return ok_ && in_.empty(); }

 private:
  void fail() {
    ok_ = false;
    in_ = {};
  }
  std::string_view in_;
  bool ok_ = true;
};

// A message starts with its type, so that one kind is never read as another.
enum class type : std::uint8_t {
  append = 1,
  answer = 2,
  history_request = 3,
  history = 4,
  snapshot_chunk = 5,
  snapshot_ack = 6,
};

bool starts(reader& r, type t) { return r.num<std::uint8_t>() == static_cast<std::uint8_t>(t); }

}  // namespace

std::string encode(const append_message& m) {
  writer w;
  w.num(static_cast<std::uint8_t>(type::append))
      .num(m.shard)
      .num(m.epoch)
      .num(m.first)
      .num(m.high_watermark)
      .num(static_cast<std::uint32_t>(m.entries.size()));
  for (auto& e : m.entries) w.num(e.epoch).str(e.payload);
  return w.take();
}

std::string encode(const append_answer& m) {
  writer w;
  w.num(static_cast<std::uint8_t>(type::answer))
      .num(m.shard)
      .num(static_cast<std::uint8_t>(m.what))
      .num(m.epoch)
      .num(m.log_end);
  return w.take();
}

std::string encode(const history_request& m) {
  writer w;
  w.num(static_cast<std::uint8_t>(type::history_request)).num(m.shard).num(m.epoch);
  return w.take();
}

std::string encode(const history_message& m) {
  writer w;
  w.num(static_cast<std::uint8_t>(type::history))
      .num(m.shard)
      .num(m.epoch)
      .num(m.log_end)
      .num(static_cast<std::uint32_t>(m.history.size()));
  for (auto& e : m.history) w.num(e.epoch).num(e.start);
  return w.take();
}

std::string encode(const snapshot_chunk& m) {
  writer w;
  w.num(static_cast<std::uint8_t>(type::snapshot_chunk))
      .num(m.shard)
      .num(m.epoch)
      .num(m.id)
      .num(m.seq)
      .str(m.file)
      .num(static_cast<std::uint8_t>(m.last))
      .str(m.data);
  return w.take();
}

std::string encode(const snapshot_ack& m) {
  writer w;
  w.num(static_cast<std::uint8_t>(type::snapshot_ack))
      .num(m.shard)
      .num(m.epoch)
      .num(m.id)
      .num(m.next)
      .num(static_cast<std::uint8_t>(m.installed));
  return w.take();
}

bool valid_snapshot_file(std::string_view name) {
  return !name.empty() && name.size() <= max_snapshot_file_name && name.front() != '.' &&
         std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || c == '.'; });
}

std::optional<append_message> decode_append(std::string_view bytes) {
  reader r(bytes);
  if (!starts(r, type::append)) return std::nullopt;
  append_message m;
  m.shard = r.num<shard_t>();
  m.epoch = r.num<epoch_t>();
  m.first = r.num<offset_t>();
  m.high_watermark = r.num<offset_t>();
  // An entry is at least its epoch and its payload's length.
  auto n = r.count(max_append_entries, sizeof(epoch_t) + sizeof(std::uint32_t));
  std::size_t bytes_in = 0;
  for (std::size_t i = 0; i < n; ++i) {
    wire_entry e;
    e.epoch = r.num<epoch_t>();
    e.payload = r.str(max_append_bytes - bytes_in);
    bytes_in += e.payload.size();
    m.entries.push_back(std::move(e));
  }
  // Offsets are 1-based; `first + n - 1` must not wrap.
  if (!r.finished() || m.first == 0 || m.first > ~offset_t{0} - n) return std::nullopt;
  return m;
}

std::optional<append_answer> decode_answer(std::string_view bytes) {
  reader r(bytes);
  if (!starts(r, type::answer)) return std::nullopt;
  append_answer m;
  m.shard = r.num<shard_t>();
  auto what = r.num<std::uint8_t>();
  m.epoch = r.num<epoch_t>();
  m.log_end = r.num<offset_t>();
  if (!r.finished() || what > static_cast<std::uint8_t>(append_answer::kind::invalid))
    return std::nullopt;
  m.what = static_cast<append_answer::kind>(what);
  return m;
}

std::optional<history_request> decode_history_request(std::string_view bytes) {
  reader r(bytes);
  if (!starts(r, type::history_request)) return std::nullopt;
  history_request m;
  m.shard = r.num<shard_t>();
  m.epoch = r.num<epoch_t>();
  if (!r.finished()) return std::nullopt;
  return m;
}

std::optional<history_message> decode_history(std::string_view bytes) {
  reader r(bytes);
  if (!starts(r, type::history)) return std::nullopt;
  history_message m;
  m.shard = r.num<shard_t>();
  m.epoch = r.num<epoch_t>();
  m.log_end = r.num<offset_t>();
  auto n = r.count(max_history_entries, sizeof(epoch_t) + sizeof(offset_t));
  for (std::size_t i = 0; i < n; ++i) {
    leader_epochs::entry e;
    e.epoch = r.num<epoch_t>();
    e.start = r.num<offset_t>();
    m.history.push_back(e);
  }
  if (!r.finished() || !leader_epochs::from(m.history)) return std::nullopt;
  return m;
}

std::optional<snapshot_chunk> decode_snapshot_chunk(std::string_view bytes) {
  reader r(bytes);
  if (!starts(r, type::snapshot_chunk)) return std::nullopt;
  snapshot_chunk m;
  m.shard = r.num<shard_t>();
  m.epoch = r.num<epoch_t>();
  m.id = r.num<std::uint64_t>();
  m.seq = r.num<std::uint32_t>();
  m.file = r.str(max_snapshot_file_name);
  auto last = r.num<std::uint8_t>();
  m.data = r.str(max_snapshot_chunk);
  if (!r.finished() || last > 1 || !valid_snapshot_file(m.file)) return std::nullopt;
  m.last = last == 1;
  return m;
}

std::optional<snapshot_ack> decode_snapshot_ack(std::string_view bytes) {
  reader r(bytes);
  if (!starts(r, type::snapshot_ack)) return std::nullopt;
  snapshot_ack m;
  m.shard = r.num<shard_t>();
  m.epoch = r.num<epoch_t>();
  m.id = r.num<std::uint64_t>();
  m.next = r.num<std::uint32_t>();
  auto installed = r.num<std::uint8_t>();
  if (!r.finished() || installed > 1) return std::nullopt;
  m.installed = installed == 1;
  return m;
}

std::optional<shard_t> shard_of_message(std::string_view bytes) {
  reader r(bytes);
  auto t = r.num<std::uint8_t>();
  auto shard = r.num<shard_t>();
  if (bytes.size() < sizeof(std::uint8_t) + sizeof(shard_t) ||
      t < static_cast<std::uint8_t>(type::append) ||
      t > static_cast<std::uint8_t>(type::snapshot_ack))
    return std::nullopt;
  return shard;
}

}  // namespace kaiwa::cluster
