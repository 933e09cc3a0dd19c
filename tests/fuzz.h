// Helpers of the fuzz tests (label "fuzz"): a seeded mutator, the corpus under
// tests/data/fuzz/, and writers of the containers hostile files come in (a stored zip as
// torch.save writes, a pickle). Every fuzz test is deterministic: a failure names the seed and
// iteration, and reruns the same way.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace fuzz {

// The files of tests/data/fuzz/SUBDIR, sorted by name, as (name, bytes).
inline std::vector<std::pair<std::string, std::string>> corpus(const std::string& subdir) {
  const std::filesystem::path dir = std::filesystem::path(I3LAB_SOURCE_DIR) / "tests/data/fuzz" / subdir;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    out.emplace_back(entry.path().filename().string(), std::string(std::istreambuf_iterator<char>(in), {}));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// One random edit of `bytes`: flip a bit, overwrite a byte with an interesting one, insert or
// delete a run, duplicate a slice, truncate, splice in a token of `dictionary` (e.g. JSON
// brackets, huge numbers), or repeat a token many times (deep nesting, long names).
inline std::string mutate(std::string bytes, std::mt19937_64& rng, const std::vector<std::string>& dictionary = {}) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  static const unsigned char kInteresting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '"', '\\', '[', '{', ']', '}', ',', ':',
                                               '-', '0', '9', '.', 'e', '\n', '('};
  const size_t at = pick(bytes.size() + 1);
  switch (rng() % 9) {
    case 0:
      if (!bytes.empty()) bytes[pick(bytes.size())] ^= static_cast<char>(1u << (rng() % 8));
      break;
    case 1:
      if (!bytes.empty()) bytes[pick(bytes.size())] = static_cast<char>(kInteresting[pick(sizeof kInteresting)]);
      break;
    case 2:
      bytes.insert(at, std::string(1 + pick(8), static_cast<char>(kInteresting[pick(sizeof kInteresting)])));
      break;
    case 3:
      bytes.erase(at, 1 + pick(16));
      break;
    case 4: {
      const size_t from = pick(bytes.size()), n = std::min<size_t>(1 + pick(64), bytes.size() - from);
      bytes.insert(pick(bytes.size() + 1), bytes.substr(from, n));
      break;
    }
    case 5:
      bytes.resize(pick(bytes.size() + 1));
      break;
    case 6:
      if (!dictionary.empty()) bytes.insert(at, dictionary[pick(dictionary.size())]);
      break;
    case 7:
      if (!dictionary.empty()) {
        const std::string& token = dictionary[pick(dictionary.size())];
        std::string run;
        for (size_t i = 0, n = 1 + pick(2000); i < n; ++i) run += token;
        bytes.insert(at, run);
      }
      break;
    default:  // a few bytes overwritten with random ones
      for (size_t i = 0, n = 1 + pick(4); i < n && !bytes.empty(); ++i)
        bytes[pick(bytes.size())] = static_cast<char>(rng());
  }
  return bytes;
}

// `rounds` random edits in a row.
inline std::string mutate_n(std::string bytes, std::mt19937_64& rng, const std::vector<std::string>& dictionary,
                            int rounds) {
  for (int i = 0; i < rounds; ++i) bytes = mutate(std::move(bytes), rng, dictionary);
  return bytes;
}

// A zip archive of stored (uncompressed) entries, as torch.save writes them; CRCs are left 0
// (the reader does not check them).
inline std::string zip(const std::vector<std::pair<std::string, std::string>>& entries) {
  auto u16 = [](std::string& out, uint32_t v) { out += char(v & 0xff), out += char(v >> 8 & 0xff); };
  auto u32 = [&](std::string& out, uint32_t v) { u16(out, v & 0xffff), u16(out, v >> 16); };
  std::string out, directory;
  for (const auto& [name, data] : entries) {
    const uint32_t local = static_cast<uint32_t>(out.size());
    u32(out, 0x04034b50), u16(out, 20), u16(out, 0), u16(out, 0), u32(out, 0), u32(out, 0);
    u32(out, static_cast<uint32_t>(data.size())), u32(out, static_cast<uint32_t>(data.size()));
    u16(out, static_cast<uint32_t>(name.size())), u16(out, 0);
    out += name + data;
    u32(directory, 0x02014b50), u16(directory, 20), u16(directory, 20), u16(directory, 0), u16(directory, 0);
    u32(directory, 0), u32(directory, 0), u32(directory, static_cast<uint32_t>(data.size()));
    u32(directory, static_cast<uint32_t>(data.size())), u16(directory, static_cast<uint32_t>(name.size()));
    u16(directory, 0), u16(directory, 0), u16(directory, 0), u16(directory, 0), u32(directory, 0), u32(directory, local);
    directory += name;
  }
  const uint32_t directory_at = static_cast<uint32_t>(out.size());
  out += directory;
  u32(out, 0x06054b50), u16(out, 0), u16(out, 0), u16(out, static_cast<uint32_t>(entries.size()));
  u16(out, static_cast<uint32_t>(entries.size())), u32(out, static_cast<uint32_t>(directory.size()));
  u32(out, directory_at), u16(out, 0);
  return out;
}

// Pickle opcodes (protocol 2), for writing hostile pickles by hand.
namespace op {
inline std::string proto() { return std::string("\x80\x02", 2); }
inline std::string binunicode(const std::string& s) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out += char(s.size() >> (8 * i) & 0xff);
  return out + s;
}
inline std::string global(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }
inline std::string binint(int32_t v) {
  std::string out = "J";
  for (int i = 0; i < 4; ++i) out += char(static_cast<uint32_t>(v) >> (8 * i) & 0xff);
  return out;
}
inline std::string long1(int64_t v) {
  std::string out = "\x8a\x08";
  for (int i = 0; i < 8; ++i) out += char(static_cast<uint64_t>(v) >> (8 * i) & 0xff);
  return out;
}
inline std::string binput(uint8_t slot) { return std::string("q") + char(slot); }
inline std::string binget(uint8_t slot) { return std::string("h") + char(slot); }
constexpr const char* kMark = "(";
constexpr const char* kTuple = "t";
constexpr const char* kEmptyDict = "}";
constexpr const char* kEmptyList = "]";
constexpr const char* kEmptyTuple = ")";
constexpr const char* kAppend = "a";
constexpr const char* kSetItem = "s";
constexpr const char* kReduce = "R";
constexpr const char* kBinPersId = "Q";
constexpr const char* kStop = ".";
inline std::string tuple1() { return "\x85"; }
}  // namespace op

// A torch.save-like archive "archive/…" holding `pickle` as data.pkl and `storages` as
// data/KEY.
inline std::string torch_archive(const std::string& pickle, const std::vector<std::pair<std::string, std::string>>& storages = {}) {
  std::vector<std::pair<std::string, std::string>> entries = {{"archive/data.pkl", pickle}, {"archive/byteorder", "little"}};
  for (const auto& [key, data] : storages) entries.emplace_back("archive/data/" + key, data);
  entries.emplace_back("archive/version", "3\n");
  return zip(entries);
}

// A pickle of {name: tensor} for one float32 tensor rebuilt from storage "0" of `numel`
// elements with the given view (what torch.save writes for a state dict of one tensor).
inline std::string one_tensor_pickle(const std::string& name, int64_t numel, int64_t offset,
                                     const std::vector<int64_t>& size, const std::vector<int64_t>& stride) {
  using namespace op;
  std::string p = proto() + kEmptyDict + binunicode(name);
  p += global("torch._utils", "_rebuild_tensor_v2") + kMark;
  p += std::string(kMark) + binunicode("storage") + global("torch", "FloatStorage") + binunicode("0") +
       binunicode("cpu") + long1(numel) + kTuple + kBinPersId;
  p += long1(offset);
  p += kMark;
  for (int64_t s : size) p += long1(s);
  p += kTuple;
  p += kMark;
  for (int64_t s : stride) p += long1(s);
  p += kTuple;
  p += std::string("\x89") + kEmptyTuple + kTuple + kReduce;  // requires_grad False, no hooks
  p += std::string(kSetItem) + kStop;
  return p;
}

}  // namespace fuzz
