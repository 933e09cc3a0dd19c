// The i3 chunk tokenizer (spec: i3-model.md §4).
//
// Text is lower-cased like Python's str.lower(), indexed by code points and cut left to right
// into chunks of 3 characters (a common trigram, or next to an ASCII space) or 2 (the last
// chunk of a text may be 1). Ids run 1, 2, … by descending count then ascending chunk;
// id 0 is "<UNK>". Vocabulary files are byte-compatible with the published Python
// tokenizer's json.dump output (tokenizer.json / chunk_vocab_combined.json).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace i3 {

class ChunkTokenizer {
 public:
  static constexpr int32_t kUnkId = 0;
  static constexpr const char* kUnkToken = "<UNK>";

  // A vocabulary holding only "<UNK>".
  ChunkTokenizer();
  // REQUIRES: chunks[0] == "<UNK>", no duplicates.
  explicit ChunkTokenizer(std::vector<std::string> chunks);

  // Reads a vocabulary JSON file: util::read_file's checks (a regular file of at most
  // util::kMaxDocumentBytes), then from_json(). Throws std::runtime_error naming the file.
  static ChunkTokenizer load(const std::string& path);
  // Parses vocabulary JSON text; `origin` names it in every error. Throws std::runtime_error
  // for text util::parse_json refuses (invalid, or nested deeper than util::kMaxJsonDepth), a
  // document without a "chunk_to_idx" object, ids that are not exactly 0..N-1 with 0 "<UNK>",
  // and a vocab_size, unk_idx, unk_token or idx_to_chunk (an object {"id": "chunk"}) that
  // disagrees with chunk_to_idx. Values quoted in errors are cut to 64 characters.
  static ChunkTokenizer from_json(const std::string& text, const std::string& origin);
  // The JSON text, byte-identical to Python's json.dump of the published tokenizer's save().
  std::string to_json() const;
  void save(const std::string& path) const;

  // Throws Utf8Error on invalid UTF-8.
  std::vector<int32_t> encode(std::string_view utf8) const;
  std::vector<int32_t> encode(std::u32string_view lowercased) const;
  // Unknown ids and 0 decode to "<UNK>".
  std::string decode(const std::vector<int32_t>& ids) const;
  std::string decode(const std::vector<int64_t>& ids) const;

  // Number of ids, "<UNK>" included (the embedding rows a model needs).
  int64_t vocab_size() const { return static_cast<int64_t>(chunks_.size()); }
  const std::string& chunk(int32_t id) const;

 private:
  std::vector<std::string> chunks_;                // id → UTF-8 chunk
  std::unordered_map<uint64_t, int32_t> lookup_;   // packed chunk (≤ 3 code points) → id
};

// Segmentation (exposed for tests and the vocabulary builder).
// Cuts lower-cased text into chunks by the spec's rule; returns each chunk's length.
std::vector<std::u32string> segment(std::u32string_view lowercased);

// Counts chunks over many texts and turns the counts into a vocabulary. Memory grows with
// the number of distinct chunks, not with the amount of text: files are read in blocks.
class VocabBuilder {
 public:
  // Adds one whole text (UTF-8). Throws Utf8Error on invalid input.
  void add_text(std::string_view utf8);
  // Adds a plain-text file as one text, streaming it. Throws std::runtime_error naming the
  // file: for a path that is not a regular file (a directory, a FIFO, a device), and with the
  // byte offset for invalid UTF-8.
  void add_file(const std::string& path);
  // Adds each line of a JSON-lines file whose object has string field `field` as one text.
  // Lines that are empty are skipped; a path that is not a regular file, or a line that is not a JSON object with that string field
  // (or that util::parse_json refuses) is a std::runtime_error naming the file and line.
  void add_jsonl_file(const std::string& path, const std::string& field);

  struct Options {
    int64_t min_count = 1;  // drop chunks seen fewer times (1 keeps all: the reference)
    int64_t max_size = 0;   // keep at most this many ids including "<UNK>" (0: no cap)
  };
  ChunkTokenizer build(const Options& options) const;
  ChunkTokenizer build() const { return build(Options{}); }

  size_t distinct_chunks() const { return counts_.size(); }
  uint64_t texts() const { return texts_; }
  uint64_t chunks_seen() const { return chunks_seen_; }

 private:
  friend class StreamSegmenter;
  std::unordered_map<uint64_t, uint64_t> counts_;  // packed chunk → count
  uint64_t texts_ = 0;
  uint64_t chunks_seen_ = 0;
};

}  // namespace i3
