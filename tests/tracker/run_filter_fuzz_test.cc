// A seeded randomized test of the `runs --where` condition reader (outside input: the command
// line, later the dashboard's query string). Every condition either parses or is refused with
// std::invalid_argument naming it, never anything else (no other exception, no crash, no
// unbounded message); Query::runs on a real database agrees with the parser and its results
// always print as valid JSON.
//
// The corpus is tests/data/fuzz/run_filter/, one condition per file (bytes as they are, no
// trailing newline): good_* must parse, bad_* must be refused, the others may do either. The
// mutations (tests/fuzz.h) start from it with a fixed seed, so a failure reproduces; the seed,
// iteration and condition are printed.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "common/util/files.h"
#include "tests/fuzz.h"
#include "tracker/db/schema.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"


namespace tracker {
namespace {

constexpr int kIterations = 10000;
constexpr size_t kMaxLength = 256 * 1024;

// The corpus, as (file name, bytes).
std::vector<std::pair<std::string, std::string>> seeds() { return fuzz::corpus("run_filter"); }

// `text` for a failure message: printable ASCII as it is, other bytes as \xHH, at most 200.
std::string shown(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size() && i < 200; ++i) {
    const unsigned char c = text[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return text.size() > 200 ? out + "… (" + std::to_string(text.size()) + " bytes)" : out;
}

enum class Outcome { kParsed, kRefused };

// Parses `condition` and runs it against `q`; fails the test for anything but a result or
// std::invalid_argument, or when the two disagree.
Outcome check(Query& q, const std::string& condition) {
  SCOPED_TRACE("condition \"" + shown(condition) + "\"");
  Outcome parsed = Outcome::kRefused;
  try {
    parse_run_condition(condition);
    parsed = Outcome::kParsed;
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind("runs filter '", 0), 0u) << shown(what);
    EXPECT_LT(what.size(), 1000u) << "the message quotes a brief of the condition";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "parse_run_condition threw something else: " << shown(e.what());
    return Outcome::kRefused;
  }
  RunFilter filter;
  filter.where = {condition};
  try {
    const std::vector<RunRecord> runs = q.runs(filter);
    EXPECT_EQ(parsed, Outcome::kParsed) << "Query::runs accepted what the parser refused";
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : runs) out.push_back(r.to_json());
    const std::string text = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    EXPECT_FALSE(nlohmann::json::parse(text, nullptr, false).is_discarded());
  } catch (const std::invalid_argument&) {
    EXPECT_EQ(parsed, Outcome::kRefused) << "Query::runs refused what the parser accepted";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "Query::runs threw something else: " << shown(e.what());
  }
  // The same text as a sort path: a PATH, or std::invalid_argument.
  RunFilter sort;
  sort.sort_by = condition;
  try {
    q.runs(sort);
  } catch (const std::invalid_argument&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "Query::runs (sort) threw something else: " << shown(e.what());
  }
  return parsed;
}

// 1 to 4 edits of fuzz::mutate, splicing in and repeating the grammar's own characters.
std::string mutate(const std::string& text, std::mt19937_64& rng) {
  static const std::vector<std::string> kTokens = {"=", "!", "<", ">", "\"", ".", "\\", " ", "config.", "summary.",
                                                   "\\u00", "1e-3", "-inf", "\xc3", "\xff", std::string(1, '\0')};
  std::string out = fuzz::mutate_n(text, rng, kTokens, 1 + static_cast<int>(rng() % 4));
  if (out.size() > kMaxLength) out.resize(kMaxLength);
  return out;
}

class RunFilterFuzz : public ::testing::Test {
 protected:
  // A small real database: runs with configs of several kinds, summaries, one damaged config.
  // Its own folder per process: ctest runs this suite's tests as parallel processes.
  static void SetUpTestSuite() {
    dir_ = new util::TempDir("run_filter_fuzz");
    path_ = new std::string(dir_->path() + "/runs.db");
    {
      Store store(*path_);
      const nlohmann::json configs[] = {{{"optim", {{"lr", 0.001}}}, {"a", 1}, {"name", "x"}},
                                        {{"optim", {{"lr", "high"}}}, {"a", {1, 2}}, {"k", {{"k", {{"k", 1}}}}}},
                                        nlohmann::json::object()};
      int i = 0;
      for (const auto& config : configs) {
        tracker::Run run = tracker::Run::create(store, {"p", "run " + std::to_string(i), "", {"t"}, "", config});
        run.define_metric("val/loss", Goal::kMinimize);
        run.log(0, {{"val/loss", 2.0 + i}, {"train/loss", 3.0}});
        if (i++ == 0) run.finish();
      }
    }
    open_database(*path_, OpenMode::kReadWrite)->exec("UPDATE runs SET config = '{\"a\":' WHERE name = 'run 2'");
  }
  static void TearDownTestSuite() {
    delete path_;
    path_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }
  static util::TempDir* dir_;
  static std::string* path_;
};
util::TempDir* RunFilterFuzz::dir_ = nullptr;
std::string* RunFilterFuzz::path_ = nullptr;

TEST_F(RunFilterFuzz, EveryCorpusConditionParsesOrIsRefusedCleanly) {
  const auto corpus = seeds();
  ASSERT_GE(corpus.size(), 30u) << "the corpus under tests/data/fuzz/run_filter";
  Query q(*path_);
  for (const auto& [name, text] : corpus) {
    SCOPED_TRACE(name);
    const Outcome outcome = check(q, text);
    if (name.rfind("good_", 0) == 0) {
      EXPECT_EQ(outcome, Outcome::kParsed);
    } else if (name.rfind("bad_", 0) == 0) {
      EXPECT_EQ(outcome, Outcome::kRefused);
    }
  }
}

TEST_F(RunFilterFuzz, MutatedConditionsParseOrAreRefusedCleanly) {
  const auto corpus = seeds();
  ASSERT_FALSE(corpus.empty());
  Query q(*path_);
  constexpr uint64_t kSeed = 0x13ab5eed;
  std::mt19937_64 rng(kSeed);
  int parsed = 0;
  for (int i = 0; i < kIterations && !HasFailure(); ++i) {
    const auto& [name, text] = corpus[rng() % corpus.size()];
    SCOPED_TRACE("seed " + std::to_string(kSeed) + ", iteration " + std::to_string(i) + ", from " + name);
    parsed += check(q, mutate(text, rng)) == Outcome::kParsed;
  }
  // The mutations must reach both sides, or they test little.
  EXPECT_GT(parsed, kIterations / 20);
  EXPECT_LT(parsed, kIterations - kIterations / 20);
}

}  // namespace
}  // namespace tracker
