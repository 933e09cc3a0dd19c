#include "model/data/token_cache.h"

#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/util/files.h"
#include "common/util/json.h"
#include "model/text/unicode.h"

namespace fs = std::filesystem;

namespace i3 {
namespace {

constexpr char kMagic[8] = {'I', '3', 'T', 'O', 'K', 'v', '1', '\n'};

// Header: magic, u32 width, u32 sources, i64 count, i64 train_docs, i64 val_docs,
// then per source i64 train begin/end and val begin/end. Tokens follow.
size_t header_size(size_t sources) { return 8 + 4 + 4 + 3 * 8 + sources * 4 * 8; }

std::vector<std::string> expand(const DataSource& source) {
  glob_t g;
  std::vector<std::string> out;
  if (::glob(source.path.c_str(), 0, nullptr, &g) == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      if (fs::is_regular_file(g.gl_pathv[i])) out.push_back(g.gl_pathv[i]);
      if (fs::is_directory(g.gl_pathv[i]))
        for (const auto& entry : fs::recursive_directory_iterator(g.gl_pathv[i]))
          if (entry.is_regular_file()) out.push_back(entry.path().string());
    }
  globfree(&g);
  std::sort(out.begin(), out.end());
  if (out.empty()) throw std::runtime_error(source.path + ": no files match");
  return out;
}

bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

// Calls visit(document, where) for each non-empty document of a source, in order; `where`
// names the file and byte offset or line for errors.
void for_each_document(const DataSource& source, const std::function<void(const std::string&, const std::string&)>& visit) {
  for (const auto& path : expand(source)) {
    if (source.format == "jsonl") {
      std::ifstream in(path, std::ios::binary);
      std::string line;
      for (size_t n = 1; std::getline(in, line); ++n) {
        if (blank(line)) continue;
        const std::string where = path + ":" + std::to_string(n);
        const nlohmann::json obj = util::try_parse_json(line).value_or(nlohmann::json());
        if (!obj.is_object() || !obj.contains(source.field) || !obj[source.field].is_string())
          throw std::runtime_error(where + ": not a JSON object with string field \"" + source.field + "\"");
        const std::string& doc = obj[source.field].get_ref<const std::string&>();
        if (!blank(doc)) visit(doc, where);
      }
    } else if (source.format == "text") {
      const std::string text = util::read_file(path, util::kNoSizeLimit);  // a corpus may be large
      if (source.separator.empty()) {
        if (!blank(text)) visit(text, path + " at byte 0");
        continue;
      }
      for (size_t begin = 0; begin <= text.size();) {
        size_t end = text.find(source.separator, begin);
        if (end == std::string::npos) end = text.size();
        const std::string doc = text.substr(begin, end - begin);
        if (!blank(doc)) visit(doc, path + " at byte " + std::to_string(begin));
        begin = end + source.separator.size();
      }
    } else {
      throw std::runtime_error(source.path + ": format must be \"text\" or \"jsonl\", not \"" + source.format + "\"");
    }
  }
}

// splitmix64: a good 64-bit mix for the per-document split decision.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::string cache_key(const std::vector<DataSource>& sources, const ChunkTokenizer& tok, const DataOptions& o) {
  // FNV-1a over the inputs: a name, not a security boundary.
  uint64_t h = 1469598103934665603ull;
  auto add = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  };
  add(std::string(kMagic, 8));
  add(tok.to_json());
  for (const auto& s : sources) {
    add(s.format), add(s.field), add(s.separator);
    for (const auto& path : expand(s)) {
      struct stat st;
      ::stat(path.c_str(), &st);
      add(fs::absolute(path).string());
      add(std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec));
    }
  }
  add(std::to_string(o.val_fraction) + "/" + std::to_string(o.split_seed) + "/" + std::to_string(o.separator_token));
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// Appends token ids of one set to a temporary file.
class TokenWriter {
 public:
  TokenWriter(const std::string& path, int width) : out_(path, std::ios::binary | std::ios::trunc), width_(width) {
    if (!out_) throw std::runtime_error(path + ": cannot write");
  }
  void add(int64_t id) {
    if (width_ == 2) {
      const uint16_t v = static_cast<uint16_t>(id);
      out_.write(reinterpret_cast<const char*>(&v), 2);
    } else {
      const uint32_t v = static_cast<uint32_t>(id);
      out_.write(reinterpret_cast<const char*>(&v), 4);
    }
    ++count_;
  }
  int64_t count() const { return count_; }
  void close() {
    if (!out_.flush()) throw std::runtime_error("cannot write the token cache (disk full?)");
    out_.close();
  }

 private:
  std::ofstream out_;
  int width_;
  int64_t count_ = 0;
};

void write_cache(const std::string& path, const std::string& tmp, const std::string& train_tmp,
                 const std::string& val_tmp, const std::vector<DataSource>& sources, const ChunkTokenizer& tok,
                 const DataOptions& o, int width);

// Writes the cache to `path` through temporary files named after this process (two processes
// may build the same cache at once: each renames a complete file into place). A failure
// removes them: bad input leaves nothing behind.
void build_cache(const std::string& path, const std::vector<DataSource>& sources, const ChunkTokenizer& tok,
                 const DataOptions& o, int width) {
  const std::string stem = path + "." + std::to_string(::getpid());
  const std::string train_tmp = stem + ".train.tmp", val_tmp = stem + ".val.tmp", tmp = stem + ".tmp";
  try {
    write_cache(path, tmp, train_tmp, val_tmp, sources, tok, o, width);
  } catch (...) {
    std::error_code ignored;
    for (const std::string& f : {train_tmp, val_tmp, tmp}) fs::remove(f, ignored);
    throw;
  }
}

void write_cache(const std::string& path, const std::string& tmp, const std::string& train_tmp,
                 const std::string& val_tmp, const std::vector<DataSource>& sources, const ChunkTokenizer& tok,
                 const DataOptions& o, int width) {
  TokenWriter train(train_tmp, width), val(val_tmp, width);
  std::vector<int64_t> spans;  // per source: train begin, end, val begin, end (relative to each set)
  int64_t train_docs = 0, val_docs = 0;
  for (size_t s = 0; s < sources.size(); ++s) {
    spans.push_back(train.count());
    const int64_t val_begin = val.count();
    int64_t doc_index = 0;
    for_each_document(sources[s], [&](const std::string& doc, const std::string& where) {
      const uint64_t h = mix(o.split_seed ^ mix(s * 0x100000001b3ull + static_cast<uint64_t>(doc_index++)));
      const bool is_val = static_cast<double>(h >> 11) * 0x1.0p-53 < o.val_fraction;
      std::vector<int32_t> ids;
      try {
        ids = tok.encode(std::string_view(doc));
      } catch (const Utf8Error& e) {
        throw std::runtime_error(where + ": " + e.what() + " (within this document)");
      }
      TokenWriter& w = is_val ? val : train;
      if (o.separator_token >= 0 && (is_val ? val_docs : train_docs) > 0) w.add(o.separator_token);
      for (int32_t id : ids) w.add(id);
      (is_val ? val_docs : train_docs)++;
      if ((train_docs + val_docs) % 100000 == 0)
        std::cerr << "  tokenizing: " << train_docs + val_docs << " documents, " << train.count() + val.count() << " tokens\n";
    });
    spans.push_back(train.count());
    spans.push_back(val_begin);
    spans.push_back(val.count());
  }
  train.close();
  val.close();
  const int64_t n_train = train.count(), count = n_train + val.count();
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(kMagic, 8);
    const uint32_t w = static_cast<uint32_t>(width), n = static_cast<uint32_t>(sources.size());
    out.write(reinterpret_cast<const char*>(&w), 4);
    out.write(reinterpret_cast<const char*>(&n), 4);
    for (int64_t v : {count, train_docs, val_docs}) out.write(reinterpret_cast<const char*>(&v), 8);
    for (size_t i = 0; i < spans.size(); ++i) {
      const int64_t v = spans[i] + (i % 4 >= 2 ? n_train : 0);  // validation tokens follow the training ones
      out.write(reinterpret_cast<const char*>(&v), 8);
    }
    for (const std::string& part : {train_tmp, val_tmp}) {
      std::ifstream in(part, std::ios::binary);
      if (fs::file_size(part) > 0) out << in.rdbuf();  // streaming an empty buffer would set failbit
    }
    if (!out.flush()) throw std::runtime_error(tmp + ": cannot write (disk full?)");
  }
  fs::remove(train_tmp);
  fs::remove(val_tmp);
  fs::rename(tmp, path);
}

}  // namespace

std::unique_ptr<TokenCache> TokenCache::open(const std::string& cache_dir, const std::vector<DataSource>& sources,
                                             const ChunkTokenizer& tokenizer, const DataOptions& options) {
  if (sources.empty()) throw std::runtime_error("no data sources given");
  if (!(options.val_fraction >= 0 && options.val_fraction < 1)) throw std::runtime_error("val_fraction must be in [0, 1)");
  if (options.separator_token >= (int64_t{1} << 32) - 1)
    throw std::runtime_error("separator token " + std::to_string(options.separator_token) + " is not an id (ids are < 2^32)");
  const int width = tokenizer.vocab_size() <= 65536 && options.separator_token < 65536 ? 2 : 4;
  std::unique_ptr<TokenCache> cache(new TokenCache());
  cache->path_ = (fs::path(cache_dir) / ("tokens-" + cache_key(sources, tokenizer, options) + ".bin")).string();
  fs::create_directories(cache_dir);  // after cache_key, which fails on a source that matches nothing
  if (!fs::exists(cache->path_)) {
    std::cerr << "building token cache " << cache->path_ << "\n";
    build_cache(cache->path_, sources, tokenizer, options, width);
    cache->built_now_ = true;
  }
  const int fd = ::open(cache->path_.c_str(), O_RDONLY);
  if (fd < 0) throw std::runtime_error(cache->path_ + ": cannot open");
  struct stat st;
  ::fstat(fd, &st);
  cache->map_size_ = static_cast<size_t>(st.st_size);
  const std::string damaged = cache->path_ + ": damaged token cache; delete it and it will be rebuilt";
  if (cache->map_size_ < header_size(sources.size())) {
    ::close(fd);
    throw std::runtime_error(damaged);
  }
  cache->map_ = ::mmap(nullptr, cache->map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (cache->map_ == MAP_FAILED) {
    cache->map_ = nullptr;
    throw std::runtime_error(cache->path_ + ": cannot map");
  }
  const char* p = static_cast<const char*>(cache->map_);
  uint32_t w, n;
  int64_t head[3];
  std::memcpy(&w, p + 8, 4);
  std::memcpy(&n, p + 12, 4);
  std::memcpy(head, p + 16, 24);
  if (std::memcmp(p, kMagic, 8) != 0 || (w != 2 && w != 4) || n != sources.size() || head[0] < 0 || head[1] < 0 ||
      head[2] < 0 || static_cast<uint64_t>(head[0]) != (cache->map_size_ - header_size(n)) / w ||
      (cache->map_size_ - header_size(n)) % w != 0)
    throw std::runtime_error(damaged);
  cache->width_ = static_cast<int>(w);
  cache->count_ = head[0];
  cache->train_docs_ = head[1];
  cache->val_docs_ = head[2];
  for (uint32_t s = 0; s < n; ++s) {
    int64_t span[4];
    std::memcpy(span, p + 40 + s * 32, 32);
    for (int64_t v : span)
      if (v < 0 || v > cache->count_) throw std::runtime_error(damaged);
    if (span[0] > span[1] || span[2] > span[3]) throw std::runtime_error(damaged);
    cache->train_.push_back({span[0], span[1]});
    cache->val_.push_back({span[2], span[3]});
  }
  cache->data_ = p + header_size(n);
  // Every id must be one the model can embed: the vocabulary's, or the separator token. A
  // cache this call just wrote holds this tokenizer's ids: only one found on disk is scanned.
  const int64_t limit = std::max<int64_t>(tokenizer.vocab_size(), options.separator_token + 1);
  for (int64_t i = 0; !cache->built_now_ && i < cache->count_; ++i)
    if (cache->token(i) >= limit)
      throw std::runtime_error(cache->path_ + ": token " + std::to_string(i) + " is id " + std::to_string(cache->token(i)) +
                               ", outside the vocabulary's " + std::to_string(tokenizer.vocab_size()) +
                               " ids; delete the cache and it will be rebuilt");
  return cache;
}

TokenCache::~TokenCache() {
  if (map_) ::munmap(map_, map_size_);
}

void TokenCache::copy(int64_t begin, int64_t n, int64_t* out) const {
  for (int64_t i = 0; i < n; ++i) out[i] = token(begin + i);
}

std::vector<int64_t> TokenCache::gather(const std::vector<TokenSpan>& spans) const {
  std::vector<int64_t> out;
  for (const auto& s : spans) {
    const size_t at = out.size();
    out.resize(at + (s.end - s.begin));
    copy(s.begin, s.end - s.begin, out.data() + at);
  }
  return out;
}

}  // namespace i3
