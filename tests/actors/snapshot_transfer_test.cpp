// A shard snapshot's files cut into chunks and written back (actors/detail/snapshot_transfer.hpp):
// what arrives is the files, byte for byte; chunks out of order, repeated or interleaved between
// files don't corrupt them.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "actors/detail/snapshot_transfer.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa;
using cluster::max_snapshot_chunk;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string bytes(std::size_t n, char seed) {
  std::string out(n, '\0');
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<char>(seed + i * 7);
  return out;
}

}  // namespace

TEST_CASE("a snapshot's files arrive whole, chunk by chunk, whatever is lost or repeated",
          "[replication][snapshot]") {
  test::temp_dir out_dir, in_root;
  // One file over two chunks and a bit, one small, one empty.
  std::map<std::string, std::string> files{{"events.sst", bytes(2 * max_snapshot_chunk + 5, 'a')},
                                           {"meta.sst", bytes(100, 'm')},
                                           {"replog.sst", ""}};
  std::vector<std::string> paths;
  for (auto& [name, data] : files) paths.push_back(out_dir.file(name, data));
  auto dir = (out_dir.path() / "export").string();
  std::filesystem::create_directories(dir);
  auto sender = detail::snapshot_sender::make(7, 3, 42, dir, paths);
  REQUIRE(sender);
  CHECK(sender->bytes() == 2 * max_snapshot_chunk + 105);

  detail::snapshot_receiver receiver((in_root.path() / "in").string(), 42);
  using outcome = detail::snapshot_receiver::outcome;
  std::vector<cluster::snapshot_chunk> sent;
  while (true) {
    auto bytes = sender->current();
    REQUIRE(bytes);
    auto c = cluster::decode_snapshot_chunk(*bytes);
    REQUIRE(c);
    sent.push_back(*c);
    auto got = receiver.take(*c);
    // A repeat of what was written changes nothing.
    CHECK(receiver.take(*c) == outcome::repeated);
    if (got == outcome::complete) break;
    REQUIRE(got == outcome::written);
    CHECK_FALSE(sender->acked(receiver.next() + 1));  // an ack past what was sent: ignored
    REQUIRE(sender->acked(receiver.next()));
  }
  CHECK(sent.size() == 5);  // 3 chunks, 1, and 1 for the empty file
  CHECK(sent.back().last);
  // Every chunk acknowledged: the last is what is sent again (asking for "installed").
  REQUIRE(sender->acked(receiver.next()));
  CHECK(sender->all_acked());
  CHECK(cluster::decode_snapshot_chunk(*sender->current())->seq == 4);

  REQUIRE(receiver.paths().size() == 3);
  for (auto& p : receiver.paths())
    CHECK(read_file(p) == files.at(std::filesystem::path(p).filename().string()));

  // Out of order, or a file it has finished written to again: not taken.
  detail::snapshot_receiver other((in_root.path() / "other").string(), 43);
  CHECK(other.take(sent[1]) == outcome::ignored);
  CHECK(other.take(sent[0]) == outcome::written);
  auto back = sent[3];  // meta.sst
  back.seq = 1;
  CHECK(other.take(back) == outcome::written);
  auto again = sent[1];  // events.sst, after meta.sst began
  again.seq = 2;
  CHECK(other.take(again) == outcome::failed);

  // The sender's export goes with it.
  sender.reset();
  CHECK_FALSE(std::filesystem::exists(dir));
}
