#pragma once
// A fresh directory under the system temp dir, removed with everything in it at scope end.

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace kaiwa::test {

class temp_dir {
 public:
  temp_dir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("kaiwa-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  /// Writes `text` to the file `name` in this directory, readable by its owner only (as
  /// secret files should be); returns its path.
  std::string file(const std::string& name, const std::string& text) const {
    auto p = path_ / name;
    std::ofstream(p) << text;
    std::filesystem::permissions(
        p, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace kaiwa::test
