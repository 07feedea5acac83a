#pragma once
// A page of read-model results (rooms, directory, search hits) as one node computes it from
// the shards it owns, and as pages from several nodes merge into one reply.
//
// Every item carries a sort key: byte strings compared lexicographically, newest first (the
// largest key first). Paging is by the last key returned: the next page asks for items with a
// key below it (`before`). Keys are unique across the cluster (they end with the room name, and
// for hits the seq), so merged pages never repeat or skip an item.

#include <cstddef>
#include <cstdint>
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
  /// With `more`: every item not returned sorts below this key. Unset: below the last item. A
  /// query that stopped at its work bound sets it, since its items may be few or none.
  std::optional<std::string> next;
  /// The shards the page was read from, as a bitmap (shard s: bit s % 8 of byte s / 8). A
  /// merged page covers what its parts did; a reply that doesn't cover every shard is partial
  /// (a shard between owners during a handover, say, is read by neither).
  std::string shards;
};

/// Marks shard `s` as read for `p`.
void cover(page& p, std::uint16_t s);
/// Whether `p` was read from every one of shards 0 .. count - 1.
bool covers_all(const page& p, std::uint32_t count);

/// The key the page after `p` asks below (its `before`): nullopt when there is no more, or a
/// page with more has no item and no `next` (nothing to continue from).
std::optional<std::string> continue_key(const page& p);

/// Merges pages of several nodes into the first `limit` items. A page that has more holds back
/// every item of the others that sorts below its continue key (that node may hold unseen items
/// above them): what is returned is exactly the newest items of all nodes, and the next page
/// continues below the merged `next` without a gap or a repeat.
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
