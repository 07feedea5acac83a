#include "cluster/detail/strict_object.hpp"

#include <catch2/catch.hpp>

#include <string>

using kaiwa::cluster::detail::read_strict_object;

namespace {

constexpr std::array<std::string_view, 3> names{"a", "b", "c"};

/// Reads `json` with a and b required, c optional; the strings read, in field order.
std::optional<std::string> read(std::string_view json, std::size_t max_bytes = 256) {
  std::string got;
  bool ok = read_strict_object(json, max_bytes, names, 0b011,
                               [&](std::size_t i, simdjson::dom::element v) {
                                 std::string_view s;
                                 if (v.get_string().get(s)) return false;
                                 got += names[i];
                                 got += '=';
                                 got += s;
                                 got += ';';
                                 return true;
                               });
  if (!ok) return std::nullopt;
  return got;
}

}  // namespace

TEST_CASE("a strict object has known fields, each once, the required ones, within its bound",
          "[etcd][json]") {
  CHECK(read(R"({"a":"1","b":"2"})") == "a=1;b=2;");
  CHECK(read(R"({"b":"2","c":"3","a":"1"})") == "b=2;c=3;a=1;");
  CHECK_FALSE(read(R"({"a":"1"})"));                  // b is required
  CHECK_FALSE(read(R"({"a":"1","b":"2","a":"1"})"));  // a twice
  CHECK_FALSE(read(R"({"a":"1","b":"2","d":"4"})"));  // unknown field
  CHECK_FALSE(read(R"({"a":"1","b":2})"));            // the caller refuses the type
  CHECK_FALSE(read(R"(["a","b"])"));                  // not an object
  CHECK_FALSE(read(R"({"a":"1","b":"2"} {})"));       // two documents
  CHECK_FALSE(read(R"({"a":"1","b":"2")"));           // truncated
  CHECK_FALSE(read(""));
  std::string padded = R"({"a":"1","b":")" + std::string(300, 'x') + R"("})";
  CHECK_FALSE(read(padded));  // over the caller's bound
  CHECK(read(padded, 1024));
  std::string huge = R"({"a":"1","b":")" + std::string(5000, 'x') + R"("})";
  CHECK_FALSE(read(huge, 1 << 20));  // over the helper's own bound
}
