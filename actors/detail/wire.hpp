#pragma once
// The byte form of what crosses between nodes besides CAF's own types: commands, lists of link
// ids, handed-over subscribers. Little-endian fixed-width integers and length-prefixed strings;
// a reader that runs past the end or finds junk reports failure instead of throwing.
//
// Bytes come from peers: nothing is allocated by a declared count or length. A string is read
// only when that many bytes are there, and a list grows one element per element actually read,
// so decoding allocates no more than the input's size (plus per-element overhead).

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "actors/command.hpp"

namespace kaiwa::detail {

class wire_writer {
 public:
  wire_writer& u64(std::uint64_t v) {
    char b[8];
    std::memcpy(b, &v, 8);
    out_.append(b, 8);
    return *this;
  }
  wire_writer& str(std::string_view s) {
    u64(s.size());
    out_.append(s);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class wire_reader {
 public:
  explicit wire_reader(std::string_view in) : in_(in) {}

  std::uint64_t u64() {
    if (in_.size() < 8) return fail();
    std::uint64_t v;
    std::memcpy(&v, in_.data(), 8);
    in_.remove_prefix(8);
    return v;
  }
  std::string str() {
    auto n = u64();
    if (!ok_ || in_.size() < n) return fail(), std::string();
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  bool done() const { return in_.empty(); }
  bool ok() const { return ok_; }

 private:
  std::uint64_t fail() {
    ok_ = false;
    in_ = {};
    return 0;
  }
  std::string_view in_;
  bool ok_ = true;
};

/// Everything of `c` but its link (the receiving node supplies a stand-in for it).
std::string encode_command(const command& c);
std::optional<command> decode_command(std::string_view bytes);

/// The sessions one push goes to: link ids of the receiving node's sessions.
std::string encode_link_ids(const std::vector<std::uint64_t>& ids);
std::optional<std::vector<std::uint64_t>> decode_link_ids(std::string_view bytes);

/// A subscriber that goes along with a handed-over room: its session's node, the session's link
/// id there, its user.
struct handed_subscriber {
  std::string node;
  std::uint64_t link = 0;
  user_id user;
};
struct handed_room {
  std::string room;
  std::vector<handed_subscriber> subscribers;
};
/// The subscribers of every room of a shard being handed over, as the new owner receives them.
std::string encode_handover(const std::vector<handed_room>& rooms);
std::optional<std::vector<handed_room>> decode_handover(std::string_view bytes);

}  // namespace kaiwa::detail
