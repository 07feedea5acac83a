#pragma once
// A page of read-model results (rooms, directory, search hits) as one node computes it from
// the shards it owns, and as pages from several nodes merge into one reply.
//
// Every item carries a sort key: byte strings compared lexicographically, newest first (the
// largest key first). Paging is by the last key returned: the next page asks for items with a
// key below it (`before`). Keys are unique across the cluster (they end with the room name, and
// for hits the seq), so merged pages never repeat or skip an item.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kaiwa::read {

struct item {
  std::string sort_key;  // compared as bytes, descending
  std::string json;      // the item as it appears in the reply's array
};

struct page {
  std::vector<item> items;  // sorted by sort_key, descending
  bool more = false;        // the node holds more items past the last one
};

/// Merges pages of several nodes into the first `limit` items; `more` if any page had more
/// or items were cut.
page merge(std::vector<page> parts, std::size_t limit);

/// The opaque `before`/`next` cursor clients see: the sort key in lowercase hex.
std::string encode_cursor(std::string_view sort_key);
/// nullopt if `cursor` is not one (the request is then a bad_request): odd length, not hex, or
/// longer than 1,024 characters.
std::optional<std::string> decode_cursor(std::string_view cursor);

/// The wire form of a page between nodes, and back: nullopt if `bytes` is not one, or declares
/// more items or bytes than it holds (it comes from the network).
std::string encode_page(const page& p);
std::optional<page> decode_page(std::string_view bytes);

}  // namespace kaiwa::read
