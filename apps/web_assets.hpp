#pragma once
// The browser client (web/), embedded in the binary at build time (cmake/embed_web.cmake), so
// that a node serves it with no files beside it and no network.

#include <string_view>

namespace kaiwa::app {

struct web_asset {
  std::string_view path;          // "/index.html", "/app.js", ...
  std::string_view content_type;  // with charset for text
  std::string_view body;
  std::string_view etag;  // quoted SHA-1 of the body
};

/// The asset served at `path` ("/" is "/index.html"); nullptr when there is none.
const web_asset* find_web_asset(std::string_view path);

}  // namespace kaiwa::app
