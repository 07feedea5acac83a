#include "apps/secrets.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace kaiwa::app {

namespace {

std::optional<std::string> read_secret_file(const std::string& file, std::string& error) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    // The stream doesn't say why; open(2) does (no such file, permission denied).
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    error = "can't read '" + file + "': " + (fd < 0 ? std::strerror(errno) : "not readable");
    if (fd >= 0) ::close(fd);
    return std::nullopt;
  }
  std::string text;
  text.resize(max_secret_file_bytes + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > max_secret_file_bytes) {
    error = "'" + file + "' is over " + std::to_string(max_secret_file_bytes) + " bytes";
    return std::nullopt;
  }
  return text;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

std::optional<token_keys> load_token_keys(const std::string& file, std::string& error) {
  auto from_env = env("KAIWA_SECRET");
  if (!file.empty() && !from_env.empty()) {
    error = "both KAIWA_SECRET and a secret file are set: use one";
    return std::nullopt;
  }
  if (file.empty()) {
    if (from_env.empty()) return token_keys{};
    return token_keys{{"", from_env}};
  }
  auto text = read_secret_file(file, error);
  if (!text) return std::nullopt;
  auto keys = parse_token_keys(*text, error);
  if (!keys) error = "secret file '" + file + "': " + error;
  return keys;
}

std::optional<std::string> load_admin_token(const std::string& file, std::string& error) {
  auto from_env = env("KAIWA_ADMIN_TOKEN");
  if (!file.empty() && !from_env.empty()) {
    error = "both KAIWA_ADMIN_TOKEN and an admin token file are set: use one";
    return std::nullopt;
  }
  if (file.empty()) return from_env;
  auto text = read_secret_file(file, error);
  if (!text) return std::nullopt;
  auto token = text->substr(0, text->find_first_of("\r\n"));
  if (token.empty()) {
    error = "admin token file '" + file + "' is empty";
    return std::nullopt;
  }
  return token;
}

std::string permissions_warning(const std::string& file) {
  struct stat st {};
  if (file.empty() || stat(file.c_str(), &st) != 0 || (st.st_mode & 077) == 0) return {};
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return "warning: '" + file + "' can be read by other users (mode " + mode + "); chmod 600 it";
}

}  // namespace kaiwa::app
