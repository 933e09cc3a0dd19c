// The data pipeline: sources, documents, the token cache, the split and the samplers.
#include "model/data/samplers.h"
#include "model/data/token_cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "tests/test_paths.h"

namespace fs = std::filesystem;

namespace i3 {
namespace {

ChunkTokenizer vocab_for(const std::vector<std::string>& texts) {
  VocabBuilder b;
  for (const auto& t : texts) b.add_text(t);
  return b.build();
}

std::string decode_range(const TokenCache& c, const ChunkTokenizer& tok, TokenSpan span) {
  std::vector<int64_t> ids(span.end - span.begin);
  c.copy(span.begin, span.end - span.begin, ids.data());
  return tok.decode(ids);
}

TEST(TokenCache, ReadsTextSeparatedTextAndJsonLinesInOrder) {
  const fs::path dir = test_path("data");
  write_file(dir / "a" / "one.txt", "First story.");
  write_file(dir / "a" / "two.txt", "Second story.");
  write_file(dir / "stories.txt", "Tale one.<|endoftext|>Tale two.<|endoftext|>  <|endoftext|>Tale three.");
  write_file(dir / "chat.jsonl", "{\"text\": \"Hello there.\"}\n\n{\"text\": \"How are you?\", \"id\": 2}\n");
  std::vector<DataSource> sources = {{(dir / "a" / "*.txt").string()},
                                     {(dir / "stories.txt").string(), "text", "", "<|endoftext|>"},
                                     {(dir / "chat.jsonl").string(), "jsonl", "text"}};
  ChunkTokenizer tok = vocab_for({"First story.", "Second story.", "Tale one.", "Tale two.", "Tale three.", "Hello there.",
                                  "How are you?"});
  DataOptions no_val;
  no_val.val_fraction = 0;
  auto cache = TokenCache::open(test_path("cache"), sources, tok, no_val);
  EXPECT_TRUE(cache->built_now());
  EXPECT_EQ(cache->bytes_per_token(), 2);
  EXPECT_EQ(cache->documents(false), 7);  // the blank document is dropped
  EXPECT_EQ(cache->documents(true), 0);
  ASSERT_EQ(cache->train().size(), 3u);
  EXPECT_EQ(decode_range(*cache, tok, cache->train()[0]), "first story.second story.");
  EXPECT_EQ(decode_range(*cache, tok, cache->train()[1]), "tale one.tale two.tale three.");
  EXPECT_EQ(decode_range(*cache, tok, cache->train()[2]), "hello there.how are you?");
  EXPECT_EQ(cache->size(), cache->train()[2].end);

  // A folder is every file below it, in path order.
  auto folder = TokenCache::open(test_path("cache"), {{(dir / "a").string()}}, tok, no_val);
  EXPECT_EQ(folder->documents(false), 2);
  EXPECT_EQ(decode_range(*folder, tok, folder->train()[0]), "first story.second story.");
}

TEST(TokenCache, IsReusedUntilAnInputChanges) {
  const fs::path dir = test_path("data");
  write_file(dir / "t.txt", "some text to learn from");
  std::vector<DataSource> sources = {{(dir / "t.txt").string()}};
  ChunkTokenizer tok = vocab_for({"some text to learn from"});
  const std::string cache_dir = test_path("cache");
  auto first = TokenCache::open(cache_dir, sources, tok, {});
  auto second = TokenCache::open(cache_dir, sources, tok, {});
  EXPECT_TRUE(first->built_now());
  EXPECT_FALSE(second->built_now());
  EXPECT_EQ(first->path(), second->path());
  write_file(dir / "t.txt", "some other text, longer than before");
  auto changed = TokenCache::open(cache_dir, sources, tok, {});
  EXPECT_TRUE(changed->built_now());
  EXPECT_NE(changed->path(), first->path());
  auto other_vocab = TokenCache::open(cache_dir, sources, vocab_for({"other"}), {});
  EXPECT_TRUE(other_vocab->built_now());
  DataOptions other_split;
  other_split.split_seed = 9;
  EXPECT_TRUE(TokenCache::open(cache_dir, sources, tok, other_split)->built_now());

  // A damaged cache file is refused with what to do.
  const std::string path = changed->path();
  changed.reset();
  fs::resize_file(path, fs::file_size(path) - 1);
  try {
    TokenCache::open(cache_dir, sources, tok, {});
    FAIL() << "damage not detected";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("damaged token cache; delete it"), std::string::npos) << e.what();
  }
}

TEST(TokenCache, SplitsByDocumentDeterministically) {
  const fs::path dir = test_path("data");
  std::string text;
  std::vector<std::string> docs;
  for (int i = 0; i < 400; ++i) {
    docs.push_back("document number " + std::to_string(i));
    text += docs.back() + "\n\n";
  }
  write_file(dir / "docs.txt", text);
  std::vector<DataSource> sources = {{(dir / "docs.txt").string(), "text", "", "\n\n"}};
  ChunkTokenizer tok = vocab_for(docs);  // every chunk of every document is known: no <UNK>
  DataOptions o;
  o.val_fraction = 0.25;
  auto a = TokenCache::open(test_path("cache_a"), sources, tok, o);
  EXPECT_EQ(a->documents(false) + a->documents(true), 400);
  EXPECT_GT(a->documents(true), 60);
  EXPECT_LT(a->documents(true), 140);
  auto again = TokenCache::open(test_path("cache_b"), sources, tok, o);
  EXPECT_EQ(decode_range(*again, tok, again->val()[0]), decode_range(*a, tok, a->val()[0]));
  o.split_seed = 1;
  auto reseeded = TokenCache::open(test_path("cache_c"), sources, tok, o);
  EXPECT_NE(decode_range(*reseeded, tok, reseeded->val()[0]), decode_range(*a, tok, a->val()[0]));
  // Every document is in exactly one set: both sets together hold all the text.
  EXPECT_EQ(decode_range(*a, tok, a->train()[0]).size() + decode_range(*a, tok, a->val()[0]).size(),
            std::string(text).size() - 400 * 2);
}

TEST(TokenCache, SeparatorTokenAndWideIds) {
  const fs::path dir = test_path("data");
  write_file(dir / "d.txt", "ab|cd|ef");
  std::vector<std::string> chunks = {"<UNK>", "ab", "cd", "ef"};
  for (int i = 0; i < 70000; ++i) chunks.push_back("w" + std::to_string(i));  // over 65,536 ids: uint32
  ChunkTokenizer tok(chunks);
  DataOptions o;
  o.val_fraction = 0;
  o.separator_token = 69999;
  auto cache = TokenCache::open(test_path("cache"), {{(dir / "d.txt").string(), "text", "", "|"}}, tok, o);
  EXPECT_EQ(cache->bytes_per_token(), 4);
  std::vector<int64_t> ids(cache->size());
  cache->copy(0, cache->size(), ids.data());
  EXPECT_EQ(ids, (std::vector<int64_t>{1, 69999, 2, 69999, 3}));
}

TEST(TokenCache, BadInputNamesFileAndPlace) {
  const fs::path dir = test_path("data");
  ChunkTokenizer tok = vocab_for({"x"});
  auto error_of = [&](const DataSource& s) {
    try {
      TokenCache::open(test_path("cache"), {s}, tok, {});
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({(dir / "none*.txt").string()}).find("no files match"), std::string::npos);
  write_file(dir / "bad.txt", "good doc|bad \xff doc");
  EXPECT_NE(error_of({(dir / "bad.txt").string(), "text", "", "|"}).find("bad.txt at byte 9: invalid UTF-8"), std::string::npos)
      << error_of({(dir / "bad.txt").string(), "text", "", "|"});
  write_file(dir / "bad.jsonl", "{\"text\": \"ok\"}\n{\"body\": 1}\n");
  EXPECT_NE(error_of({(dir / "bad.jsonl").string(), "jsonl"}).find("bad.jsonl:2: not a JSON object with string field \"text\""),
            std::string::npos);
  EXPECT_NE(error_of({(dir / "bad.txt").string(), "csv"}).find("format must be"), std::string::npos);
}

// Was: a damaged cache with ids outside the vocabulary failed deep in LibTorch ("index out of
// range in self"); failed builds left *.tmp files in the cache folder.
TEST(TokenCache, DamagedCachesAndFailedBuildsAreCaught) {
  const fs::path dir = test_path("data");
  write_file(dir / "d.txt", "x x x");
  ChunkTokenizer tok = vocab_for({"x"});
  const std::string cache_dir = test_path("cache");
  std::string path;
  {
    auto cache = TokenCache::open(cache_dir, {{(dir / "d.txt").string()}}, tok, {});
    path = cache->path();
  }
  std::string bytes = file_contents(path);
  bytes[bytes.size() - 2] = '\xff';  // the last uint16 id: 0xff?? is no id of this vocabulary
  write_file(path, bytes);
  try {
    TokenCache::open(cache_dir, {{(dir / "d.txt").string()}}, tok, {});
    FAIL() << "a cache with ids outside the vocabulary was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ": token "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("outside the vocabulary's"), std::string::npos) << e.what();
  }
  write_file(path, bytes.substr(0, 20));
  EXPECT_THROW(TokenCache::open(cache_dir, {{(dir / "d.txt").string()}}, tok, {}), std::runtime_error);

  write_file(dir / "bad.txt", "ok|bad \xff");
  EXPECT_THROW(TokenCache::open(cache_dir, {{(dir / "bad.txt").string(), "text", "", "|"}}, tok, {}), std::runtime_error);
  for (const auto& entry : fs::directory_iterator(cache_dir))
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
}

class Samplers : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path dir = test_path("data");
    std::string big, small;
    for (int i = 0; i < 3000; ++i) big += "the quick brown fox " + std::to_string(i) + ". ";
    for (int i = 0; i < 300; ++i) small += "a small source " + std::to_string(i) + ". ";
    write_file(dir / "big.txt", big);
    write_file(dir / "small.txt", small);
    sources_ = {{(dir / "big.txt").string()}, {(dir / "small.txt").string()}};
    tok_ = vocab_for({big, small});
    DataOptions o;
    o.val_fraction = 0;
    cache_ = TokenCache::open(test_path("cache"), sources_, tok_, o);
  }
  std::vector<DataSource> sources_;
  ChunkTokenizer tok_;
  std::unique_ptr<TokenCache> cache_;
};

TEST_F(Samplers, RandomWindowsAreSeededResumableAndInBounds) {
  RandomWindows a(*cache_, sources_, 65, 42), b(*cache_, sources_, 65, 42), c(*cache_, sources_, 65, 43);
  std::vector<int64_t> first;
  for (int i = 0; i < 200; ++i) {
    first.push_back(a.next());
    EXPECT_EQ(first.back(), b.next());
    EXPECT_GE(first.back(), 0);
    EXPECT_LE(first.back() + 65, cache_->size());
  }
  int same = 0;
  for (int i = 0; i < 200; ++i) same += c.next() == first[i];
  EXPECT_LT(same, 5);
  RandomWindows resumed(*cache_, sources_, 65, 42);
  resumed.restore(150);
  for (int i = 150; i < 200; ++i) EXPECT_EQ(resumed.next(), first[i]);
  EXPECT_EQ(resumed.draws(), 200u);
}

TEST_F(Samplers, WeightsChooseSources) {
  sources_[0].weight = 1;
  sources_[1].weight = 3;  // the small source is drawn three times as often as the big one
  RandomWindows w(*cache_, sources_, 33, 7);
  int small = 0;
  for (int i = 0; i < 8000; ++i) small += w.next() >= cache_->train()[1].begin;
  EXPECT_NEAR(small / 8000.0, 0.75, 0.03);
}

TEST_F(Samplers, EpochWindowsVisitEveryWindowOncePerEpoch) {
  EpochWindows e(*cache_, 129, 5);
  const int64_t n = e.windows_per_epoch();
  EXPECT_EQ(n, cache_->size() / 129);
  std::set<int64_t> seen;
  std::vector<int64_t> epoch0;
  for (int64_t i = 0; i < n; ++i) epoch0.push_back(e.next());
  seen.insert(epoch0.begin(), epoch0.end());
  EXPECT_EQ(static_cast<int64_t>(seen.size()), n);
  for (int64_t s : seen) EXPECT_EQ(s % 129, 0);
  std::vector<int64_t> epoch1;
  for (int64_t i = 0; i < n; ++i) epoch1.push_back(e.next());
  EXPECT_EQ(e.epoch(), 1);
  EXPECT_NE(epoch0, epoch1);
  EpochWindows resumed(*cache_, 129, 5);
  resumed.restore(1, 10);
  for (int64_t i = 10; i < n; ++i) EXPECT_EQ(resumed.next(), epoch1[i]);
}

}  // namespace
}  // namespace i3
