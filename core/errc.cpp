#include "core/errc.hpp"

namespace kaiwa {

std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::bad_request:
      return "bad_request";
    case errc::unauthorized:
      return "unauthorized";
    case errc::forbidden:
      return "forbidden";
    case errc::not_found:
      return "not_found";
    case errc::room_exists:
      return "room_exists";
    case errc::too_large:
      return "too_large";
    case errc::rate_limited:
      return "rate_limited";
    case errc::unavailable:
      return "unavailable";
    case errc::timeout:
      return "timeout";
    case errc::archived:
      return "archived";
    case errc::internal:
      return "internal";
  }
  return "internal";
}

}  // namespace kaiwa
