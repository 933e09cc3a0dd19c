#include "tracker/db/content.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "common/util/sha256.h"

namespace fs = std::filesystem;

namespace tracker {
namespace {

// Copies `from` into the new file `tmp`, hashing the bytes on the way.
struct Copied {
  std::string sha;
  uint64_t size = 0;
};
Copied copy_hashing(const std::string& from, const std::string& tmp) {
  std::ifstream in(from, std::ios::binary);
  if (!in) throw std::runtime_error(from + ": cannot open");
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(tmp + ": cannot write");
  util::Sha256 h;
  Copied c;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    h.update(buf, static_cast<size_t>(in.gcount()));
    out.write(buf, in.gcount());
    c.size += static_cast<uint64_t>(in.gcount());
  }
  if (in.bad() || !out.flush()) {
    out.close();
    fs::remove(tmp);
    throw std::runtime_error(from + ": copy failed (disk full?)");
  }
  c.sha = h.hex();
  return c;
}

}  // namespace

ContentStore::ContentStore(const std::string& db_path) : root_(db_path + ".artifacts") {}

std::string ContentStore::path_of(const std::string& sha) const {
  return (fs::path(root_) / "sha256" / sha.substr(0, 2) / sha.substr(2)).string();
}

bool ContentStore::has(const std::string& sha) const { return fs::exists(path_of(sha)); }

std::string ContentStore::temp_name(const std::string& dir) const {
  static thread_local std::mt19937_64 gen(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  fs::create_directories(dir);
  return (fs::path(dir) / ("tmp-" + std::to_string(gen()))).string();
}

ArtifactFile ContentStore::put(const std::string& source, const std::string& relative) const {
  const std::string tmp = temp_name((fs::path(root_) / "staging").string());
  const Copied c = copy_hashing(source, tmp);
  const fs::path final_path = path_of(c.sha);
  if (fs::exists(final_path)) {
    fs::remove(tmp);
  } else {
    fs::create_directories(final_path.parent_path());
    fs::rename(tmp, final_path);
  }
  return {relative, c.sha, static_cast<int64_t>(c.size)};
}

void ContentStore::adopt(const std::string& verified, const std::string& sha) const {
  const fs::path final_path = path_of(sha);
  std::error_code ec;
  if (fs::exists(final_path)) {
    fs::remove(verified, ec);
    return;
  }
  fs::create_directories(final_path.parent_path(), ec);
  fs::rename(verified, final_path, ec);
  if (ec) throw std::runtime_error(verified + ": cannot move into " + root_ + ": " + ec.message());
}

std::string ContentStore::staging_dir() const {
  const fs::path dir = fs::path(root_) / "staging";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error(dir.string() + ": cannot create: " + ec.message());
  return dir.string();
}

std::string ContentStore::read_chunk(const std::string& sha, int64_t offset, size_t max_bytes, int64_t* size) const {
  const std::string path = path_of(sha);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("no file " + sha + " in " + root_);
  struct stat st;
  std::string chunk;
  ssize_t n = -1;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && offset >= 0 && offset <= st.st_size) {
    chunk.resize(static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(max_bytes), st.st_size - offset)));
    n = pread(fd, chunk.data(), chunk.size(), offset);
  }
  ::close(fd);
  if (n != static_cast<ssize_t>(chunk.size()))
    throw std::runtime_error("cannot read " + std::to_string(chunk.size()) + " bytes at " + std::to_string(offset) + " of " + path);
  *size = st.st_size;
  return chunk;
}

IncomingFile::IncomingFile(const ContentStore& store, std::string sha256, int64_t size)
    : store_(store), sha256_(std::move(sha256)), size_(size) {
  path_ = store.staging_dir() + "/incoming-" + sha256_ + "-" + std::to_string(::getpid()) + "-" +
          std::to_string(reinterpret_cast<uintptr_t>(this));
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw std::runtime_error(path_ + ": cannot write");
}

IncomingFile::~IncomingFile() {
  if (adopted_) return;
  out_.close();
  std::error_code ignored;
  fs::remove(path_, ignored);
}

bool IncomingFile::append(std::string_view chunk) {
  if (have_ + static_cast<int64_t>(chunk.size()) > size_)
    throw std::runtime_error("more bytes than the " + std::to_string(size_) + " of file " + sha256_);
  out_.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  hash_.update(chunk);
  have_ += static_cast<int64_t>(chunk.size());
  if (have_ == size_) out_.close();
  if (out_.fail()) throw std::runtime_error(path_ + ": write failed (disk full?)");
  if (have_ < size_) return false;
  const std::string got = hash_.hex();
  if (got != sha256_) throw DamagedContent("the bytes received as " + sha256_ + " hash to " + got);
  store_.adopt(path_, sha256_);
  adopted_ = true;
  return true;
}

bool ContentStore::copy_from(const ContentStore& from, const std::string& sha) const {
  return copy_in(from.path_of(sha), sha);
}

bool ContentStore::copy_in(const std::string& source, const std::string& sha) const {
  const fs::path target = path_of(sha);
  if (fs::exists(target)) return false;
  if (!fs::is_regular_file(source)) throw std::runtime_error(source + ": artifact file missing");
  const std::string tmp = temp_name(target.parent_path().string());
  if (copy_hashing(source, tmp).sha != sha) {
    fs::remove(tmp);
    throw std::runtime_error(source + ": damaged artifact file (its sha256 does not match its name)");
  }
  fs::rename(tmp, target);
  return true;
}

void ContentStore::fetch(const ArtifactFile& file, const std::string& target, const std::string& label) const {
  const fs::path stored = path_of(file.sha256);
  if (!fs::exists(stored)) throw std::runtime_error(label + ": file " + file.path + " is missing from " + root_);
  const std::string tmp = temp_name(fs::path(target).parent_path().string());
  const Copied c = copy_hashing(stored.string(), tmp);
  if (c.sha != file.sha256) {
    fs::remove(tmp);
    throw std::runtime_error(label + ": file " + file.path + " is damaged in " + root_ + " (sha256 " + c.sha +
                             ", expected " + file.sha256 + ")");
  }
  fs::rename(tmp, target);
}

std::string ContentStore::move_aside(const std::string& sha) const {
  const fs::path stored = path_of(sha);
  if (!fs::exists(stored)) return "";
  const std::string moved = temp_name((fs::path(root_) / "staging").string());
  fs::rename(stored, moved);
  return moved;
}

void ContentStore::restore(const std::string& sha, const std::string& moved) const {
  std::error_code ignored;
  if (!moved.empty() && !fs::exists(path_of(sha))) fs::rename(moved, path_of(sha), ignored);
}

std::string ContentStore::scratch_dir(const std::string& what) const {
  const fs::path dir = fs::path(root_) / "tmp" / (what + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

}  // namespace tracker
