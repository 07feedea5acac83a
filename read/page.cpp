#include "read/page.hpp"

#include <algorithm>
#include <cstdint>

#include "core/bytes.hpp"
#include "core/shard.hpp"

namespace kaiwa::read {

std::optional<std::string> continue_key(const page& p) {
  if (!p.more) return std::nullopt;
  if (p.next) return p.next;
  if (p.items.empty()) return std::nullopt;
  return p.items.back().sort_key;
}

void cover(page& p, std::uint16_t s) {
  if (p.shards.size() <= s / 8u) p.shards.resize(s / 8u + 1, '\0');
  p.shards[s / 8u] = static_cast<char>(p.shards[s / 8u] | (1 << (s % 8u)));
}

bool covers_all(const page& p, std::uint32_t count) {
  for (std::uint32_t s = 0; s < count; ++s)
    if (s / 8u >= p.shards.size() || (p.shards[s / 8u] & (1 << (s % 8u))) == 0) return false;
  return true;
}

page merge(std::vector<page> parts, std::size_t limit) {
  page out;
  for (auto& p : parts) {
    if (out.shards.size() < p.shards.size()) out.shards.resize(p.shards.size(), '\0');
    for (std::size_t i = 0; i < p.shards.size(); ++i) out.shards[i] |= p.shards[i];
  }
  std::optional<std::string> horizon;  // the highest continue key of the parts with more
  bool blind = false;                  // a part has more and nothing to continue from
  for (auto& p : parts) {
    if (p.more) {
      out.more = true;
      if (auto k = continue_key(p); !k)
        blind = true;
      else if (!horizon || *k > *horizon)
        horizon = std::move(k);
    }
    std::move(p.items.begin(), p.items.end(), std::back_inserter(out.items));
  }
  std::sort(out.items.begin(), out.items.end(),
            [](const item& a, const item& b) { return a.sort_key > b.sort_key; });
  if (blind) {
    out.items.clear();
  } else if (horizon) {
    auto below = std::find_if(out.items.begin(), out.items.end(),
                              [&](const item& it) { return it.sort_key < *horizon; });
    out.items.erase(below, out.items.end());
  }
  if (out.items.size() > limit) {
    out.items.resize(limit);
    out.more = true;
    out.next.reset();
  } else if (horizon) {
    out.next = std::move(horizon);
  }
  return out;
}

namespace {

constexpr std::size_t max_cursor_chars = 1024;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string encode_cursor(std::string_view sort_key) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(sort_key.size() * 2);
  for (unsigned char c : sort_key) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::optional<std::string> decode_cursor(std::string_view cursor) {
  if (cursor.size() % 2 != 0 || cursor.size() > max_cursor_chars) return std::nullopt;
  std::string out;
  out.reserve(cursor.size() / 2);
  for (std::size_t i = 0; i < cursor.size(); i += 2) {
    int hi = hex_value(cursor[i]), lo = hex_value(cursor[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

// Wire form: a flags byte (1: more, 2: a `next` key follows), the `next` key if flagged, a be32
// item count, then per item the sort key and the JSON, then the shard bitmap; every string is a
// be32 length and its bytes.
std::string encode_page(const page& p) {
  std::string out;
  out += static_cast<char>((p.more ? 1 : 0) | (p.next ? 2 : 0));
  if (p.next) {
    append_be32(out, static_cast<std::uint32_t>(p.next->size()));
    out += *p.next;
  }
  append_be32(out, static_cast<std::uint32_t>(p.items.size()));
  for (auto& it : p.items) {
    append_be32(out, static_cast<std::uint32_t>(it.sort_key.size()));
    out += it.sort_key;
    append_be32(out, static_cast<std::uint32_t>(it.json.size()));
    out += it.json;
  }
  append_be32(out, static_cast<std::uint32_t>(p.shards.size()));
  out += p.shards;
  return out;
}

std::optional<page> decode_page(std::string_view in) {
  if (in.empty() || static_cast<unsigned char>(in[0]) > 3) return std::nullopt;
  page p;
  p.more = (in[0] & 1) != 0;
  bool has_next = (in[0] & 2) != 0;
  in.remove_prefix(1);
  if (has_next && !take_string(in, p.next.emplace())) return std::nullopt;
  if (in.size() < 4) return std::nullopt;
  auto n = read_be32(in);
  in.remove_prefix(4);
  // Each item takes at least 8 bytes: a count beyond that is a lie, refused before reserving.
  if (n > in.size() / 8) return std::nullopt;
  p.items.reserve(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    item it;
    if (!take_string(in, it.sort_key) || !take_string(in, it.json)) return std::nullopt;
    p.items.push_back(std::move(it));
  }
  // A bitmap of at most max_shards bits (core/shard.hpp).
  if (!take_string(in, p.shards) || p.shards.size() > max_shards / 8) return std::nullopt;
  if (!in.empty()) return std::nullopt;
  return p;
}

}  // namespace kaiwa::read
