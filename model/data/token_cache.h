// Training data (spec: i3-model.md §5): sources → documents → a token cache → batches.
//
// A source is a plain-text file (the whole file one document, or documents split by a
// separator string such as "<|endoftext|>" or "\n\n" for blank lines), a JSON-lines file (one
// document per line, from a named string field), a glob of such files ("data/*.txt"), or a
// folder (every file below it). Files are read in sorted path order.
// Empty documents are dropped. Documents are tokenized once into a cache file of uint16 ids (a
// vocabulary of at most 65,536 ids) or uint32 ids, memory-mapped for training. The cache is
// named by a hash of the vocabulary, each matched file's path, size and modification time, and
// the split settings, so any change to them builds a new cache.
//
// Validation is held out by document: a document is in the validation set when a hash of
// (split seed, source index, document index) falls below val_fraction. Within each set the
// documents are concatenated in order, as the published recipe does, optionally with a
// separator token between documents.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/text/tokenizer.h"

namespace i3 {

struct DataSource {
  std::string path;             // a file, a glob or a folder
  std::string format = "text";  // "text" or "jsonl"
  std::string field = "text";   // jsonl: the string field holding a document
  std::string separator;        // text: "" → one document per file; else the string between documents
  double weight = 0;            // > 0: sample this source with probability ∝ weight; 0: ∝ its tokens
};

struct DataOptions {
  double val_fraction = 0.01;
  uint64_t split_seed = 0;
  int64_t separator_token = -1;  // ≥ 0: inserted between documents (off reproduces the published recipe)
};

// The tokens of one set (train or validation), as ranges per source.
struct TokenSpan {
  int64_t begin = 0, end = 0;  // offsets into TokenCache::tokens()
};

class TokenCache {
 public:
  // Returns the cache for these inputs from `cache_dir`, building it if needed (with progress on
  // stderr). Throws std::runtime_error naming the file and line or byte offset of bad input
  // (no matching files, invalid UTF-8, malformed JSON lines), or a damaged cache file.
  static std::unique_ptr<TokenCache> open(const std::string& cache_dir, const std::vector<DataSource>& sources,
                                          const ChunkTokenizer& tokenizer, const DataOptions& options);
  ~TokenCache();

  const std::string& path() const { return path_; }
  bool built_now() const { return built_now_; }
  int bytes_per_token() const { return width_; }
  int64_t size() const { return count_; }
  int64_t token(int64_t i) const { return width_ == 2 ? static_cast<const uint16_t*>(data_)[i] : static_cast<const uint32_t*>(data_)[i]; }
  // Copies tokens [begin, begin + n) into out (int64, for an index tensor).
  void copy(int64_t begin, int64_t n, int64_t* out) const;
  // Every token of `spans` (e.g. val()), in order.
  std::vector<int64_t> gather(const std::vector<TokenSpan>& spans) const;

  // Per source, its training and validation tokens (sources in the order given).
  const std::vector<TokenSpan>& train() const { return train_; }
  const std::vector<TokenSpan>& val() const { return val_; }
  int64_t documents(bool validation) const { return validation ? val_docs_ : train_docs_; }

 private:
  TokenCache() = default;
  std::string path_;
  bool built_now_ = false;
  int width_ = 2;
  int64_t count_ = 0, train_docs_ = 0, val_docs_ = 0;
  std::vector<TokenSpan> train_, val_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const void* data_ = nullptr;
};

}  // namespace i3
