#include "model/text/tokenizer.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/util/files.h"
#include "common/util/json.h"
#include "model/text/unicode.h"

namespace i3 {
namespace {

// A chunk of at most 3 code points packed into 63 bits: (cp+1) in 21-bit fields, first code
// point highest, unused fields 0. Numeric order of keys is the code-point order of chunks
// (a prefix sorts first), which is the vocabulary's tie-break order.
uint64_t pack(const char32_t* s, size_t len) {
  uint64_t key = 0;
  for (size_t i = 0; i < 3; ++i) key = (key << 21) | (i < len ? static_cast<uint64_t>(s[i]) + 1 : 0);
  return key;
}

std::u32string unpack(uint64_t key) {
  std::u32string out;
  for (int shift = 42; shift >= 0; shift -= 21) {
    uint64_t field = (key >> shift) & 0x1FFFFF;
    if (field) out.push_back(static_cast<char32_t>(field - 1));
  }
  return out;
}

constexpr std::array<const char*, 28> kTrigramText = {
    "the", "and", "ing", "ion", "tio", "for", "tha", "ter", "hat", "his", "ere", "ent", "her", "was",
    "you", "are", "not", "but", "can", "all", "whi", "one", "our", "out", "whe", "hav", "thi", "wit"};

bool is_trigram(const char32_t* s) {
  static const std::vector<uint64_t> sorted = [] {
    std::vector<uint64_t> keys;
    for (const char* t : kTrigramText) {
      char32_t cps[3] = {char32_t(t[0]), char32_t(t[1]), char32_t(t[2])};
      keys.push_back(pack(cps, 3));
    }
    std::sort(keys.begin(), keys.end());
    return keys;
  }();
  return std::binary_search(sorted.begin(), sorted.end(), pack(s, 3));
}

// Length of the chunk starting at s[0], given the `avail` code points known from s on.
// REQUIRES: the text ends after them, or avail >= 4 (the rule looks at s[3]).
// `after_space`: the character before s[0] is an ASCII space.
size_t chunk_length(const char32_t* s, size_t avail, bool after_space) {
  bool use3 = avail >= 3 && (is_trigram(s) || after_space || (avail > 3 && s[3] == U' '));
  return use3 ? 3 : std::min<size_t>(2, avail);
}

void append_json_string(const std::string& utf8, std::string* out) {
  // Python json.dump with ensure_ascii=True: everything outside ' '..'~' is escaped.
  std::u32string cps;
  decode_utf8(utf8, &cps);
  out->push_back('"');
  char buf[16];
  for (char32_t cp : cps) {
    switch (cp) {
      case '"': *out += "\\\""; continue;
      case '\\': *out += "\\\\"; continue;
      case '\n': *out += "\\n"; continue;
      case '\r': *out += "\\r"; continue;
      case '\t': *out += "\\t"; continue;
      case '\b': *out += "\\b"; continue;
      case '\f': *out += "\\f"; continue;
      default: break;
    }
    if (cp >= 0x20 && cp <= 0x7E) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x10000) {
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
      *out += buf;
    } else {
      char32_t v = cp - 0x10000;
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(0xD800 + (v >> 10)));
      *out += buf;
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(0xDC00 + (v & 0x3FF)));
      *out += buf;
    }
  }
  out->push_back('"');
}

}  // namespace

std::vector<std::u32string> segment(std::u32string_view s) {
  std::vector<std::u32string> out;
  for (size_t p = 0; p < s.size();) {
    size_t len = chunk_length(s.data() + p, s.size() - p, p > 0 && s[p - 1] == U' ');
    out.emplace_back(s.substr(p, len));
    p += len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// ChunkTokenizer

ChunkTokenizer::ChunkTokenizer() : ChunkTokenizer(std::vector<std::string>{kUnkToken}) {}

ChunkTokenizer::ChunkTokenizer(std::vector<std::string> chunks) : chunks_(std::move(chunks)) {
  if (chunks_.empty() || chunks_[0] != kUnkToken) throw std::invalid_argument("vocabulary must start with <UNK>");
  lookup_.reserve(chunks_.size() * 2);
  std::u32string cps;
  for (size_t id = 1; id < chunks_.size(); ++id) {
    cps.clear();
    decode_utf8(chunks_[id], &cps);
    if (cps.empty()) throw std::invalid_argument("vocabulary id " + std::to_string(id) + " is an empty chunk");
    if (cps.size() > 3) continue;  // never produced by segmentation; kept for decoding only
    if (!lookup_.emplace(pack(cps.data(), cps.size()), static_cast<int32_t>(id)).second)
      throw std::invalid_argument("vocabulary chunk '" + chunks_[id] + "' appears twice");
  }
}

ChunkTokenizer ChunkTokenizer::load(const std::string& path) { return from_json(util::read_file(path), path); }

ChunkTokenizer ChunkTokenizer::from_json(const std::string& text, const std::string& origin) {
  nlohmann::json doc;
  try {
    doc = util::parse_json(text, origin);
  } catch (const util::JsonError& e) {
    throw std::runtime_error(e.what());
  }
  // Keys and values are quoted cut short: a chunk may be a megabyte long.
  auto quote = [](const nlohmann::json& v) { return util::brief(v, util::kQuoteChars); };
  if (!doc.is_object() || !doc.contains("chunk_to_idx") || !doc["chunk_to_idx"].is_object())
    throw std::runtime_error(origin + ": not a chunk vocabulary (expected an object with \"chunk_to_idx\")");
  if (doc.contains("unk_idx") && doc["unk_idx"] != 0)
    throw std::runtime_error(origin + ": unk_idx must be 0, got " + quote(doc["unk_idx"]));
  if (doc.contains("unk_token") && doc["unk_token"] != kUnkToken)
    throw std::runtime_error(origin + ": unk_token must be \"<UNK>\", got " + quote(doc["unk_token"]));
  const auto& map = doc["chunk_to_idx"];
  std::vector<std::string> chunks(map.size());
  std::vector<bool> seen(map.size(), false);
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it.value().is_number_integer())
      throw std::runtime_error(origin + ": chunk_to_idx[" + quote(it.key()) + "] is not an integer id");
    // An id past int64 (2^64 - 1) reads as out of range, not as its wrapped value.
    const int64_t id = util::as_int64(it.value()).value_or(-1);
    if (id < 0 || id >= static_cast<int64_t>(map.size()) || seen[id])
      throw std::runtime_error(origin + ": chunk_to_idx[" + quote(it.key()) + "] = " + quote(it.value()) +
                               " is out of range or repeated (ids must be 0.." + std::to_string(map.size() - 1) + ")");
    seen[id] = true;
    chunks[id] = it.key();
  }
  if (chunks.empty() || chunks[0] != kUnkToken)
    throw std::runtime_error(origin + ": id 0 must be \"<UNK>\"");
  if (doc.contains("vocab_size") && doc["vocab_size"] != static_cast<int64_t>(chunks.size()))
    throw std::runtime_error(origin + ": vocab_size " + quote(doc["vocab_size"]) + " does not match the " +
                             std::to_string(chunks.size()) + " entries of chunk_to_idx");
  if (doc.contains("idx_to_chunk")) {
    const auto& ids = doc["idx_to_chunk"];
    if (!ids.is_object())
      throw std::runtime_error(origin + ": idx_to_chunk must be an object {\"id\": \"chunk\", ...}, got " + quote(ids) +
                               "; fix it or remove it (chunk_to_idx alone defines the vocabulary)");
    for (auto it = ids.begin(); it != ids.end(); ++it) {
      const std::string& key = it.key();
      const bool decimal = !key.empty() && key.size() <= 10 && key.find_first_not_of("0123456789") == std::string::npos;
      const uint64_t id = decimal ? std::stoull(key) : chunks.size();
      if (!it.value().is_string() || id >= chunks.size() || chunks[id] != it.value().get_ref<const std::string&>())
        throw std::runtime_error(origin + ": idx_to_chunk[" + quote(key) + "] disagrees with chunk_to_idx");
    }
  }
  try {
    return ChunkTokenizer(std::move(chunks));
  } catch (const std::exception& e) {
    throw std::runtime_error(origin + ": " + e.what());
  }
}

std::string ChunkTokenizer::to_json() const {
  std::string out = "{\"chunk_to_idx\": {";
  for (size_t id = 0; id < chunks_.size(); ++id) {
    if (id) out += ", ";
    append_json_string(chunks_[id], &out);
    out += ": " + std::to_string(id);
  }
  out += "}, \"idx_to_chunk\": {";
  for (size_t id = 0; id < chunks_.size(); ++id) {
    if (id) out += ", ";
    out += "\"" + std::to_string(id) + "\": ";
    append_json_string(chunks_[id], &out);
  }
  out += "}, \"vocab_size\": " + std::to_string(chunks_.size()) +
         ", \"unk_token\": \"<UNK>\", \"unk_idx\": 0}";
  return out;
}

void ChunkTokenizer::save(const std::string& path) const {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << to_json();
  if (!out.flush()) throw std::runtime_error(path + ": cannot write vocabulary file");
}

std::vector<int32_t> ChunkTokenizer::encode(std::string_view utf8) const {
  std::u32string cps;
  decode_utf8(utf8, &cps);
  return encode(std::u32string_view(lowercase(cps)));
}

std::vector<int32_t> ChunkTokenizer::encode(std::u32string_view s) const {
  std::vector<int32_t> ids;
  ids.reserve(s.size() / 2 + 1);
  for (size_t p = 0; p < s.size();) {
    size_t len = chunk_length(s.data() + p, s.size() - p, p > 0 && s[p - 1] == U' ');
    // The chunk, else its longest known prefix, else <UNK> for one character.
    size_t used = 1;
    int32_t id = kUnkId;
    for (size_t l = len; l >= 1; --l) {
      auto it = lookup_.find(pack(s.data() + p, l));
      if (it != lookup_.end()) {
        id = it->second;
        used = l;
        break;
      }
    }
    ids.push_back(id);
    p += used;
  }
  return ids;
}

const std::string& ChunkTokenizer::chunk(int32_t id) const {
  static const std::string unk = kUnkToken;
  return id > 0 && id < static_cast<int64_t>(chunks_.size()) ? chunks_[id] : unk;
}

std::string ChunkTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) out += chunk(id);
  return out;
}

std::string ChunkTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) out += chunk(id >= 0 && id <= INT32_MAX ? static_cast<int32_t>(id) : -1);
  return out;
}

// ---------------------------------------------------------------------------------------------
// VocabBuilder

// Feeds lower-cased code points of one text piece by piece and counts its chunks. A chunk is
// cut once 4 code points from its start are known (the rule looks at s[p+3]) or the text ends.
class StreamSegmenter {
 public:
  explicit StreamSegmenter(VocabBuilder* b) : b_(b) {}
  void push(std::u32string_view lowered) {
    pending_.append(lowered);
    drain(false);
  }
  void finish() {
    drain(true);
    b_->texts_++;
  }

 private:
  void drain(bool at_end) {
    size_t p = 0;
    while (p < pending_.size() && (at_end || pending_.size() - p >= 4)) {
      size_t len = chunk_length(pending_.data() + p, pending_.size() - p, after_space_);
      b_->counts_[pack(pending_.data() + p, len)]++;
      b_->chunks_seen_++;
      after_space_ = pending_[p + len - 1] == U' ';
      p += len;
    }
    pending_.erase(0, p);
  }
  VocabBuilder* b_;
  std::u32string pending_;
  bool after_space_ = false;
};

void VocabBuilder::add_text(std::string_view utf8) {
  std::u32string cps;
  decode_utf8(utf8, &cps);
  StreamSegmenter seg(this);
  seg.push(lowercase(cps));
  seg.finish();
}

void VocabBuilder::add_file(const std::string& path) {
  util::regular_file_size(path);  // refuses a directory (once read as an empty text), a FIFO, a device
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  StreamSegmenter seg(this);
  constexpr size_t kBlock = 1 << 20;
  std::string block;
  std::u32string decoded;  // decoded, not yet lower-cased
  size_t offset = 0;       // file offset of block[0]
  std::string carry;       // bytes of a UTF-8 sequence cut by the block boundary
  try {
    while (true) {
      block = carry;
      block.resize(carry.size() + kBlock);
      in.read(block.data() + carry.size(), kBlock);
      size_t got = static_cast<size_t>(in.gcount());
      block.resize(carry.size() + got);
      bool eof = got == 0 || !in;
      size_t left = decode_utf8(block, &decoded, offset, eof);
      carry = block.substr(block.size() - left);
      offset += block.size() - left;
      // Lower-case up to the last ASCII space: case mapping never looks across a space (the
      // final-sigma context stops at it), so pieces cut there lower-case exactly as the whole.
      // A run of 4M characters without a space is cut anyway.
      size_t cut = eof ? decoded.size() : decoded.rfind(U' ');
      if (cut == std::u32string::npos) cut = decoded.size() > (4u << 20) ? decoded.size() : 0;
      else if (!eof) cut += 1;
      if (cut > 0) {
        seg.push(lowercase(std::u32string_view(decoded).substr(0, cut)));
        decoded.erase(0, cut);
      }
      if (eof) break;
    }
  } catch (const Utf8Error& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  seg.finish();
}

void VocabBuilder::add_jsonl_file(const std::string& path, const std::string& field) {
  util::regular_file_size(path);  // refuses a directory (once read as an empty text), a FIFO, a device
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json obj;
    try {
      obj = util::parse_json(line, path + ":" + std::to_string(lineno));
    } catch (const util::JsonError& e) {
      throw std::runtime_error(e.what());
    }
    if (!obj.is_object() || !obj.contains(field) || !obj[field].is_string())
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ": no string field \"" + field + "\"");
    try {
      add_text(obj[field].get_ref<const std::string&>());
    } catch (const Utf8Error& e) {
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ": " + e.what());
    }
  }
}

ChunkTokenizer VocabBuilder::build(const Options& options) const {
  std::vector<std::pair<uint64_t, uint64_t>> entries;  // (count, key)
  entries.reserve(counts_.size());
  for (const auto& [key, count] : counts_)
    if (static_cast<int64_t>(count) >= options.min_count) entries.emplace_back(count, key);
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  if (options.max_size > 0 && static_cast<int64_t>(entries.size()) > options.max_size - 1)
    entries.resize(std::max<int64_t>(options.max_size - 1, 0));
  std::vector<std::string> chunks;
  chunks.reserve(entries.size() + 1);
  chunks.emplace_back(ChunkTokenizer::kUnkToken);
  for (const auto& e : entries) chunks.push_back(to_utf8(unpack(e.second)));
  return ChunkTokenizer(std::move(chunks));
}

}  // namespace i3
