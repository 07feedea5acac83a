#pragma once
// A minimal compact JSON writer that appends to a std::string. Commas are inserted from the
// last byte written, so call sites read like the JSON they produce. Strings must be UTF-8
// (kaiwa validates every input before it gets here); they are escaped, not validated.

#include <cstdint>
#include <string>
#include <string_view>

namespace kaiwa {

class json_writer {
 public:
  explicit json_writer(std::string& out) : out_(out), base_(out.size()) {}

  json_writer& begin_object() {
    sep();
    out_ += '{';
    return *this;
  }
  json_writer& end_object() {
    out_ += '}';
    return *this;
  }
  json_writer& begin_array() {
    sep();
    out_ += '[';
    return *this;
  }
  json_writer& end_array() {
    out_ += ']';
    return *this;
  }

  /// Writes `"k":`; the next call writes its value.
  json_writer& key(std::string_view k);
  json_writer& value(std::string_view s);
  json_writer& value(const char* s) { return value(std::string_view{s}); }
  json_writer& value(std::int64_t n);
  json_writer& value(std::uint64_t n);
  json_writer& value(int n) { return value(static_cast<std::int64_t>(n)); }
  json_writer& value(bool b);
  /// Writes already-encoded JSON (e.g. a stored event or a request's id) as a value.
  json_writer& raw(std::string_view json);

  template <class T>
  json_writer& field(std::string_view k, const T& v) {
    return key(k).value(v);
  }

 private:
  void sep();
  std::string& out_;
  std::size_t base_;  // where this writer's document starts in out_
};

/// Appends `s` to `out` as a JSON string literal, quotes included.
void append_json_string(std::string& out, std::string_view s);

}  // namespace kaiwa
