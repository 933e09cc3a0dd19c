// Hostile vocabulary files: the documents that once crashed or confused i3lab, then seeded
// random mutations of real ones. Every input must load, or end in std::runtime_error naming
// its origin; never a crash or an exception of another type.
#include <gtest/gtest.h>

#include <random>

#include "model/text/tokenizer.h"
#include "tests/fuzz.h"
#include "tests/test_paths.h"

namespace i3 {
namespace {

std::string outcome(const std::string& text) {
  try {
    const ChunkTokenizer tok = ChunkTokenizer::from_json(text, "vocab.json");
    EXPECT_GT(tok.vocab_size(), 0);
    tok.encode("once upon a time");
    return "";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("vocab.json", 0), 0u) << e.what();
    return e.what();
  }
}

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(HostileVocabularies, RegressionCases) {
  // Was: nlohmann's serializer recursed printing a 100,000-deep vocab_size in the error.
  EXPECT_HAS(outcome(R"({"chunk_to_idx": {"<UNK>": 0}, "vocab_size": )" + std::string(100000, '[') +
                     std::string(100000, ']') + "}"),
             "nested deeper than 128");
  // Was: "[json.exception.invalid_iterator.207]" with no file name.
  EXPECT_HAS(outcome(R"({"chunk_to_idx": {"<UNK>": 0, "a": 1}, "idx_to_chunk": ["<UNK>", "a"]})"),
             "vocab.json: idx_to_chunk must be an object");
  EXPECT_HAS(outcome(R"({"chunk_to_idx": {"<UNK>": 0, "a": 18446744073709551615}})"), "is out of range or repeated");
  EXPECT_HAS(outcome(R"({"chunk_to_idx": {"<UNK>": 0, "a": 1}, "idx_to_chunk": {"99999999999999999999": "a"}})"),
             "disagrees with chunk_to_idx");
}

TEST(HostileVocabularies, BuildingFromADirectoryIsAnError) {
  // Was: `tokenizer build DIR` read the directory as an empty text.
  VocabBuilder builder;
  const std::string dir = ::testing::TempDir();
  try {
    builder.add_file(dir);
    FAIL() << "a directory was read as text";
  } catch (const std::runtime_error& e) {
    EXPECT_HAS(std::string(e.what()), "is a directory");
  }
  EXPECT_THROW(builder.add_jsonl_file(dir, "text"), std::runtime_error);
  EXPECT_THROW(builder.add_file("/dev/zero"), std::runtime_error);
}

TEST(FuzzVocabularies, ChunkTokenizerJson) {
  VocabBuilder builder;
  builder.add_text("Once upon a time, a hostile file met a careful reader. The end.");
  std::vector<std::string> seeds = {builder.build().to_json()};
  for (const auto& [name, bytes] : fuzz::corpus("tokenizer")) {
    seeds.push_back(bytes);
    SCOPED_TRACE(name);
    outcome(bytes);
  }
  const std::vector<std::string> dictionary = {"[", "]", "{", "}", "\"", ",", ":", "-1", "0", "18446744073709551615",
                                               "\"<UNK>\"", "\"idx_to_chunk\":", "\"vocab_size\":", "\"unk_idx\":",
                                               "\"\\ud800\"", "\"\\u0000\"", "\xff", "\xc3"};
  std::mt19937_64 rng(20261129);
  int loaded = 0;
  for (int i = 0; i < 3000; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    if (outcome(fuzz::mutate_n(seeds[i % seeds.size()], rng, dictionary, 1 + static_cast<int>(rng() % 4))).empty())
      ++loaded;
  }
  RecordProperty("loaded", loaded);
}

}  // namespace
}  // namespace i3
