#include <catch2/catch.hpp>

#include "read/page.hpp"

using namespace kaiwa::read;

TEST_CASE("merge keeps the largest sort keys, newest first, and says when there is more") {
  page a{{{"\x03", "a3"}, {"\x01", "a1"}}, false, {}};
  page b{{{"\x04", "b4"}, {"\x02", "b2"}}, false, {}};
  auto m = merge({a, b}, 3);
  REQUIRE(m.items.size() == 3);
  CHECK(m.items[0].json == "b4");
  CHECK(m.items[1].json == "a3");
  CHECK(m.items[2].json == "b2");
  CHECK(m.more);
  CHECK_FALSE(merge({a, b}, 4).more);
  CHECK(merge({a, page{{{"\x09", "c9"}}, true, {}}}, 10).more);
}

TEST_CASE("a node that stopped early holds back the others' items below where it stopped") {
  // Node a stopped at its work bound having decided everything above "\x05"; node b is done.
  page a{{{"\x07", "a7"}}, true, std::string("\x05")};
  page b{{{"\x08", "b8"}, {"\x06", "b6"}, {"\x04", "b4"}, {"\x02", "b2"}}, false, {}};
  auto m = merge({a, b}, 10);
  REQUIRE(m.items.size() == 3);
  CHECK(m.items[2].json == "b6");
  CHECK(m.more);
  CHECK(continue_key(m) == std::string("\x05"));
  // With no items at all it still says where to continue.
  auto empty = merge({page{{}, true, std::string("\x05")}, b}, 10);
  CHECK(empty.items.size() == 2);
  CHECK(continue_key(empty) == std::string("\x05"));
  // A limit that cuts above the horizon continues below the last item.
  auto cut = merge({a, b}, 1);
  REQUIRE(cut.items.size() == 1);
  CHECK(continue_key(cut) == std::string("\x08"));
  // A part with more and nothing to continue from: nothing of the others can be trusted.
  auto blind = merge({page{{}, true, {}}, b}, 10);
  CHECK(blind.items.empty());
  CHECK(blind.more);
}

TEST_CASE("cursors are hex of the sort key and refuse anything else") {
  std::string key("\x00\xff\x10 room", 8);
  auto c = encode_cursor(key);
  CHECK(c == "00ff1020726f6f6d");
  CHECK(decode_cursor(c) == key);
  CHECK_FALSE(decode_cursor("abc"));
  CHECK_FALSE(decode_cursor("zz"));
  CHECK_FALSE(decode_cursor("AB"));
  CHECK_FALSE(decode_cursor(std::string(1026, 'a')));
  CHECK(decode_cursor("") == std::string());
}

TEST_CASE("a page survives the wire, and a damaged or lying one is refused") {
  page p{{{"k1", "{\"a\":1}"}, {std::string("\0k", 2), "[]"}}, true, std::string("n\0", 2)};
  auto bytes = encode_page(p);
  auto back = decode_page(bytes);
  REQUIRE(back);
  CHECK(back->more);
  CHECK(back->next == std::string("n\0", 2));
  REQUIRE(back->items.size() == 2);
  CHECK(back->items[1].sort_key == std::string("\0k", 2));
  CHECK(back->items[0].json == "{\"a\":1}");
  for (std::size_t cut = 0; cut < bytes.size(); ++cut)
    CHECK_FALSE(decode_page(std::string_view(bytes).substr(0, cut)));
  CHECK_FALSE(decode_page(bytes + "x"));
  // The shards a page was read from travel with it, and merge as a union.
  page a, b;
  cover(a, 0);
  cover(a, 2);
  cover(b, 1);
  cover(b, 9);
  auto a_back = decode_page(encode_page(a));
  REQUIRE(a_back);
  CHECK(a_back->shards == a.shards);
  CHECK_FALSE(covers_all(a, 3));
  auto ab = merge({a, b}, 10);
  CHECK(covers_all(ab, 3));
  CHECK_FALSE(covers_all(ab, 4));
  CHECK(covers_all(ab, 0));
  // A bitmap longer than any shard count could need is a lie.
  page huge;
  huge.shards.assign(65536 / 8 + 1, '\xff');
  CHECK_FALSE(decode_page(encode_page(huge)));
  std::string lying("\x00\xff\xff\xff\xff", 5);
  CHECK_FALSE(decode_page(lying));
  std::string long_item = std::string("\x00\x00\x00\x00\x01", 5) + "\x7f\xff\xff\xff";
  CHECK_FALSE(decode_page(long_item));
}
