#include <catch2/catch.hpp>

#include "actors/creation_limiter.hpp"

using namespace kaiwa;

TEST_CASE("a user creates at most per_minute rooms at once, then one per 60/per_minute s") {
  creation_limiter l(60);
  for (int i = 0; i < 60; ++i) CHECK(l.allow("alice", 1000));
  CHECK_FALSE(l.allow("alice", 1000));
  CHECK(l.allow("bob", 1000));  // buckets are per user
  CHECK_FALSE(l.allow("alice", 1999));
  CHECK(l.allow("alice", 2000));  // one token a second
  CHECK_FALSE(l.allow("alice", 2000));
  CHECK(l.allow("alice", 2000 + 60'000));
}

TEST_CASE("0 means no limit") {
  creation_limiter l(0);
  for (int i = 0; i < 1000; ++i) CHECK(l.allow("alice", 0));
  CHECK(l.tracked() == 0);
}

TEST_CASE("the bucket table is bounded: refilled buckets go, and new users wait when it is full") {
  creation_limiter l(2, 3);
  CHECK(l.allow("a", 0));
  CHECK(l.allow("b", 0));
  CHECK(l.allow("c", 0));
  CHECK(l.tracked() == 3);
  CHECK_FALSE(l.allow("d", 1000));  // full, and nothing has refilled (one token takes 30 s)
  CHECK(l.allow("d", 30'000));      // a, b and c have refilled: swept
  CHECK(l.tracked() == 1);
}
