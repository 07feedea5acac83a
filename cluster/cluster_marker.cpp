#include "cluster/cluster_marker.hpp"

#include <fcntl.h>
#include <unistd.h>
#include "cluster/detail/strict_object.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/json.hpp"

namespace kaiwa::cluster {

namespace {

namespace dom = simdjson::dom;

constexpr std::size_t id_digits = 32;
constexpr std::size_t max_marker_bytes = 256;

error io_error(const std::string& what, const std::string& path) {
  return error{errc::invalid, what + " " + path + ": " + std::strerror(errno), 0};
}

/// Writes all of `data` to `fd`, retrying short writes and interruptions.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    auto n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

std::string new_cluster_id() {
  std::random_device rd;
  std::string out;
  out.reserve(id_digits);
  for (std::size_t i = 0; i < id_digits / 8; ++i) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rd()));
    out += buf;
  }
  return out;
}

bool valid_cluster_id(std::string_view id) {
  return id.size() == id_digits && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string encode(const cluster_marker& m) {
  std::string out;
  json_writer w(out);
  w.begin_object().field("id", m.id).field("placed", m.placed).end_object();
  return out;
}

std::optional<cluster_marker> decode_marker(std::string_view json) {
  static constexpr std::array<std::string_view, 2> names{"id", "placed"};
  cluster_marker m;
  bool read = detail::read_strict_object(json, max_marker_bytes, names, 0b11,
                                         [&](std::size_t i, dom::element v) {
                                           if (i == 1) return !v.get_bool().get(m.placed);
                                           std::string_view s;
                                           if (v.get_string().get(s)) return false;
                                           m.id = s;
                                           return true;
                                         });
  if (!read || !valid_cluster_id(m.id)) return std::nullopt;
  return m;
}

result<std::string> read_recorded_id(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string{};
    return io_error("can't open", path);
  }
  // One id and a newline; anything longer is not a record this node wrote.
  char buf[id_digits + 2];
  std::size_t got = 0;
  for (;;) {
    auto n = ::read(fd, buf + got, sizeof buf - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      auto e = io_error("can't read", path);
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    if (got == sizeof buf) break;
  }
  ::close(fd);
  std::string_view s(buf, got);
  if (s.ends_with('\n')) s.remove_suffix(1);
  if (!valid_cluster_id(s))
    return error{errc::invalid,
                 path +
                     " holds no cluster id (damaged?): it records which cluster's data this "
                     "data dir holds; restore it or see docs/operations.md",
                 0};
  return std::string(s);
}

status record_id(const std::string& path, const std::string& id) {
  auto tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return io_error("can't create", tmp);
  bool ok = write_all(fd, id + "\n") && ::fsync(fd) == 0;
  auto e = io_error("can't write", tmp);
  ::close(fd);
  if (!ok) return e;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return io_error("can't rename to", path);
  auto dir = std::filesystem::path(path).parent_path();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("can't open the directory of", path);
  bool synced = ::fsync(dfd) == 0;
  ::close(dfd);
  if (!synced) return io_error("can't sync the directory of", path);
  return {};
}

}  // namespace kaiwa::cluster
