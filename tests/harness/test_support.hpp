// What every test may use without a server or a pgbust library: temporary directories,
// bounded waiting, the source tree.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace pgbust::test {

using namespace std::chrono_literals;

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  // Write a file below the directory and return its path.
  std::filesystem::path write(const std::string& name, const std::string& content) const;

 private:
  std::filesystem::path path_;
};

// Retry `pred` until true or `timeout` passes; returns its last result.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 15s);

// The source tree (for tests/data, examples/, systemd/).
std::filesystem::path source_dir();

}  // namespace pgbust::test
