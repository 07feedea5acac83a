#include "cluster/handover.hpp"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace kaiwa::cluster {

shard_files read_shard_files(const std::vector<std::string>& paths) {
  shard_files out;
  for (auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream buf;
    buf << in.rdbuf();
    out.names.push_back(std::filesystem::path(path).filename().string());
    out.contents.push_back(std::move(buf).str());
  }
  return out;
}

bool plain_file_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

std::string write_shard_files(const std::string& dir, const shard_files& files,
                              std::vector<std::string>& paths) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) return "can't create " + dir + ": " + ec.message();
  for (std::size_t i = 0; i < files.names.size(); ++i) {
    paths.push_back(dir + "/" + files.names[i]);
    std::ofstream out(paths.back(), std::ios::binary);
    out.write(files.contents[i].data(), static_cast<std::streamsize>(files.contents[i].size()));
    if (!out) return "can't write " + paths.back();
  }
  return {};
}

}  // namespace kaiwa::cluster
