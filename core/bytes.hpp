#pragma once
// Big-endian integers in stored keys and values: their bytes sort as the numbers do, so a
// RocksDB range scan walks them in order. Storage's key layout depends on these bytes exactly.

#include <cstdint>
#include <string>
#include <string_view>

namespace kaiwa {

inline void append_be16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

inline void append_be32(std::string& out, std::uint32_t v) {
  for (int i = 3; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

inline void append_be64(std::string& out, std::uint64_t v) {
  for (int i = 7; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

inline std::string be64(std::uint64_t v) {
  std::string s;
  append_be64(s, v);
  return s;
}

/// The number in the first 2 bytes of `s`; as `read_be32`, never past the end of `s`.
inline std::uint16_t read_be16(std::string_view s) {
  std::uint16_t v = 0;
  for (char c : s.substr(0, 2))
    v = static_cast<std::uint16_t>((v << 8) | static_cast<unsigned char>(c));
  return v;
}

/// The number in the first 4 bytes of `s`. Callers check that `s` holds them; a shorter `s`
/// is read as far as it goes, never past its end.
inline std::uint32_t read_be32(std::string_view s) {
  std::uint32_t v = 0;
  for (char c : s.substr(0, 4)) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

/// The number in the first 8 bytes of `s`; as `read_be32`, never past the end of `s`.
inline std::uint64_t read_be64(std::string_view s) {
  std::uint64_t v = 0;
  for (char c : s.substr(0, 8)) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

/// Reads a be32 length and that many bytes into `out`, moving `in` past them; false when the
/// bytes end first (the length is checked before anything is allocated for it).
inline bool take_string(std::string_view& in, std::string& out) {
  if (in.size() < 4) return false;
  auto n = read_be32(in);
  in.remove_prefix(4);
  if (n > in.size()) return false;
  out.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

}  // namespace kaiwa
