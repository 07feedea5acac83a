#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cluster/handover.hpp"
#include "tests/support/temp_dir.hpp"

using namespace kaiwa::cluster;

namespace {

// Rooms given up, and subscribers that came along: names will do.
using table = handovers<std::vector<std::string>, std::vector<std::string>>;

}  // namespace

TEST_CASE("handover: a map names a shard this node serves: nothing changes") {
  table t;
  CHECK(t.on_map(1, true, shard_status::owned) == map_step::none);
  CHECK(t.on_map(1, false, shard_status::elsewhere) == map_step::none);
}

TEST_CASE("handover: the old owner stays releasing until a map names the new owner") {
  table t;
  auto id = t.begin(3);
  t.released(3, id)->push_back("lobby");
  // Maps published for other moves still name this node: the handover goes on.
  CHECK(t.on_map(3, true, shard_status::releasing) == map_step::keep);
  CHECK(t.on_map(3, true, shard_status::releasing) == map_step::keep);
  CHECK(t.on_map(3, false, shard_status::releasing) == map_step::handed_over);
  // Forgotten once handed over: nothing to give back, and the next map changes nothing.
  CHECK_FALSE(t.take_back(3));
  CHECK(t.on_map(3, false, shard_status::elsewhere) == map_step::none);
}

TEST_CASE("handover: a failed handover gives back what the rooms released, once") {
  table t;
  auto id = t.begin(3);
  t.released(3, id)->push_back("lobby");
  t.released(3, id)->push_back("dev");
  auto back = t.take_back(3);
  REQUIRE(back);
  CHECK(*back == std::vector<std::string>{"lobby", "dev"});
  CHECK_FALSE(t.take_back(3));
  // Not handing it away any more: a map naming this node makes it serve the shard again.
  CHECK(t.on_map(3, true, shard_status::owned) == map_step::none);
}

TEST_CASE("handover: a coordinator that went down voids the handovers it asked for") {
  table t;
  t.begin(3);
  t.begin(4);
  t.coordinator_lost();
  // Its map (after it restarted) still names this node: the rooms get the shards back.
  CHECK(t.on_map(3, true, shard_status::releasing) == map_step::restore);
  CHECK(t.on_map(4, false, shard_status::releasing) == map_step::handed_over);
  // A handover begun after it came back is not stale.
  t.begin(5);
  CHECK(t.on_map(5, true, shard_status::releasing) == map_step::keep);
}

TEST_CASE("handover: the new owner holds the subscribers until a map names it") {
  table t;
  t.ingested(7, {"n1/1", "n2/9"});
  // A map for another move still names the old owner: the subscribers stay.
  CHECK(t.on_map(7, false, shard_status::elsewhere) == map_step::none);
  CHECK(t.on_map(7, true, shard_status::elsewhere) == map_step::adopt);
  auto subs = t.take_adopted(7);
  REQUIRE(subs);
  CHECK(*subs == std::vector<std::string>{"n1/1", "n2/9"});
  CHECK_FALSE(t.take_adopted(7));
}

TEST_CASE("handover: a shard that goes elsewhere without a handover is lost") {
  table t;
  CHECK(t.on_map(2, false, shard_status::owned) == map_step::lost);
  // A shard this node was not serving becomes its own (a new cluster, a restart): adopt.
  CHECK(t.on_map(2, true, shard_status::elsewhere) == map_step::adopt);
  CHECK_FALSE(t.take_adopted(2));  // nothing came with it
}

TEST_CASE("handover files: only plain file names are written (no way out of the staging dir)") {
  CHECK(plain_file_name("000012.sst"));
  CHECK(plain_file_name("..sst"));
  CHECK_FALSE(plain_file_name(""));
  CHECK_FALSE(plain_file_name("."));
  CHECK_FALSE(plain_file_name(".."));
  CHECK_FALSE(plain_file_name("../journal/CURRENT"));
  CHECK_FALSE(plain_file_name("/etc/passwd"));
  CHECK_FALSE(plain_file_name("a/b"));
}

TEST_CASE("handover files: what the old owner read is what the new owner writes, in a fresh dir") {
  kaiwa::test::temp_dir tmp;
  auto out = tmp.str() + "/out";
  std::filesystem::create_directories(out);
  std::ofstream(out + "/a.sst", std::ios::binary) << std::string("x\0y", 3);
  std::ofstream(out + "/b.sst", std::ios::binary) << "";
  auto files = read_shard_files({out + "/a.sst", out + "/b.sst"});
  CHECK(files.names == std::vector<std::string>{"a.sst", "b.sst"});
  CHECK(files.contents == std::vector<std::string>{std::string("x\0y", 3), ""});

  auto in = tmp.str() + "/in";
  std::filesystem::create_directories(in);
  std::ofstream(in + "/stale.sst") << "left from a failed ingest";
  std::vector<std::string> paths;
  CHECK(write_shard_files(in, files, paths).empty());
  CHECK(paths == std::vector<std::string>{in + "/a.sst", in + "/b.sst"});
  CHECK_FALSE(std::filesystem::exists(in + "/stale.sst"));
  CHECK(read_shard_files(paths).contents == files.contents);
}

TEST_CASE("handover files: a staging dir that can't be made is an error, not an exception") {
  kaiwa::test::temp_dir tmp;
  auto blocker = tmp.file("plain", "a file where the dir's parent should be");
  std::vector<std::string> paths;
  auto err = write_shard_files(blocker + "/in-3", {{"a.sst"}, {"x"}}, paths);
  CHECK(err.starts_with("can't create " + blocker + "/in-3"));
  CHECK(paths.empty());
}

TEST_CASE("handover: a release answered after its handover was called off lands in none") {
  table t;
  auto first = t.begin(3);
  t.released(3, first)->push_back("lobby");
  REQUIRE(t.take_back(3));                 // called off: the rooms released so far are given back
  CHECK(t.released(3, first) == nullptr);  // a late answer: its rooms go back too, not here
  // A newer handover of the same shard doesn't take the old one's late answers either.
  auto second = t.begin(3);
  CHECK(second != first);
  CHECK(t.released(3, first) == nullptr);
  REQUIRE(t.released(3, second) != nullptr);
  CHECK(t.released(3, second)->empty());
}
