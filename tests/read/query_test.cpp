#include <catch2/catch.hpp>

#include "read/query.hpp"

using namespace kaiwa;
using namespace kaiwa::read;

TEST_CASE("a query's bytes between members decode to the same query") {
  query_request r;
  r.kind = query_kind::search;
  r.user = user_id{"alice"};
  r.q = "会議 \"lock file\"";
  r.room = room_id{"general"};
  r.before = std::string("\x00\x01\xff", 3);
  r.limit = 20;
  auto bytes = encode_query(r);
  auto back = decode_query(bytes);
  REQUIRE(back);
  CHECK(back->kind == r.kind);
  CHECK(back->user == r.user);
  CHECK(back->q == r.q);
  CHECK(back->room == r.room);
  CHECK(back->before == r.before);
  CHECK(back->limit == 20);
  CHECK(encode_query(*back) == bytes);

  query_request plain;
  plain.user = user_id{"bob"};
  auto p = decode_query(encode_query(plain));
  REQUIRE(p);
  CHECK_FALSE(p->room);
  CHECK_FALSE(p->before);
}

TEST_CASE("bytes that are no query are refused, whatever lengths they declare") {
  query_request r;
  r.user = user_id{"alice"};
  auto good = encode_query(r);
  CHECK_FALSE(decode_query(""));
  CHECK_FALSE(decode_query(std::string(1, '\x07')));  // no such kind
  for (std::size_t n = 0; n < good.size(); ++n) CHECK_FALSE(decode_query(good.substr(0, n)));
  CHECK_FALSE(decode_query(good + "x"));  // trailing bytes
  auto huge = good;
  huge[1] = '\x7f';  // the user's length: far more than is there
  CHECK_FALSE(decode_query(huge));
  query_request bad = r;
  bad.user = user_id{"no spaces"};
  CHECK_FALSE(decode_query(encode_query(bad)));
  bad = r;
  bad.limit = 0;
  CHECK_FALSE(decode_query(encode_query(bad)));
  bad.limit = 201;
  CHECK_FALSE(decode_query(encode_query(bad)));
}
