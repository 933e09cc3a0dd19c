// Per-test scratch paths for tests that use real files.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

// TEST_TMPDIR/<test name>_<name>, with anything a previous run left there removed (the file,
// SQLite's -wal and -shm companions, an artifact store, a folder).
inline std::string test_path(const std::string& name) {
  const std::string path = ::testing::TempDir() + "/" +
                           ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" + name;
  for (const char* suffix : {"", "-wal", "-shm", ".artifacts"}) std::filesystem::remove_all(path + suffix);
  return path;
}

// The bytes of the file at `path` ("" if it cannot be read).
inline std::string file_contents(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Writes `content` to `path`, creating its folder and replacing any file there.
inline void write_file(const std::filesystem::path& path, const std::string& content) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}
