#include "core/json.hpp"

#include <charconv>

namespace kaiwa {

void json_writer::sep() {
  if (out_.size() == base_) return;
  char last = out_.back();
  if (last != '{' && last != '[' && last != ':') out_ += ',';
}

json_writer& json_writer::key(std::string_view k) {
  sep();
  append_json_string(out_, k);
  out_ += ':';
  return *this;
}

json_writer& json_writer::value(std::string_view s) {
  sep();
  append_json_string(out_, s);
  return *this;
}

template <class Int>
static void append_int(std::string& out, Int n) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, res.ptr);
}

json_writer& json_writer::value(std::int64_t n) {
  sep();
  append_int(out_, n);
  return *this;
}

json_writer& json_writer::value(std::uint64_t n) {
  sep();
  append_int(out_, n);
  return *this;
}

json_writer& json_writer::value(bool b) {
  sep();
  out_ += b ? "true" : "false";
  return *this;
}

json_writer& json_writer::raw(std::string_view json) {
  sep();
  out_ += json;
  return *this;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  std::size_t run = 0;  // start of the pending run of bytes that need no escape
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xf];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

}  // namespace kaiwa
