// `runs --where/--sort`: the condition grammar (what parses, what is refused and how the error
// reads), filtering and sorting on a real database, the CLI's usage errors, and damaged stored
// values (config, tags, names, tables) read and printed as valid JSON.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "tests/i3lab_process.h"
#include "tracker/db/schema.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"

namespace fs = std::filesystem;

namespace tracker {
namespace {

using Op = RunCondition::Op;

struct Good {
  std::string condition, path;
  Op op;
  std::string text;
  std::optional<double> number;
};

TEST(RunFilterGrammar, ParsesWellFormedConditions) {
  const Good cases[] = {
      {"config.optim.lr>=0.001", "config.optim.lr", Op::kGe, "0.001", 0.001},
      {"summary.val/loss.min<2", "summary.val/loss.min", Op::kLt, "2", 2},
      {"summary.val/loss<=1e-3", "summary.val/loss", Op::kLe, "1e-3", 1e-3},
      {"config.x>-inf", "config.x", Op::kGt, "-inf", -INFINITY},
      {"name=\"<x>\"", "name", Op::kEq, "<x>", std::nullopt},
      {"name!=foo", "name", Op::kNe, "foo", std::nullopt},
      {"  config.lr  <=  0.5  ", "config.lr", Op::kLe, "0.5", 0.5},
      {"name = a b", "name", Op::kEq, "a b", std::nullopt},
      {"name=\"  padded \"", "name", Op::kEq, "  padded ", std::nullopt},
      {"name=\"\"", "name", Op::kEq, "", std::nullopt},
      {"name=\"a\\\"=b\\\\\"", "name", Op::kEq, "a\"=b\\", std::nullopt},
      {"status=finished", "status", Op::kEq, "finished", std::nullopt},
      {"id=3", "id", Op::kEq, "3", 3},
      {"config.flag!=true", "config.flag", Op::kNe, "true", std::nullopt},
      {"group=a=b", "group", Op::kEq, "a=b", std::nullopt},  // only the first operator counts
      {"finished_at>0", "finished_at", Op::kGt, "0", 0},
      {"uid=abc", "uid", Op::kEq, "abc", std::nullopt},
  };
  for (const Good& c : cases) {
    SCOPED_TRACE(c.condition);
    RunCondition parsed;
    ASSERT_NO_THROW(parsed = parse_run_condition(c.condition));
    EXPECT_EQ(parsed.path, c.path);
    EXPECT_EQ(parsed.op, c.op);
    EXPECT_EQ(parsed.text, c.text);
    EXPECT_EQ(parsed.number, c.number);
  }
}

struct Bad {
  std::string condition, says;
};

TEST(RunFilterGrammar, RefusesMalformedConditionsNamingThem) {
  const Bad cases[] = {
      {"config.optim.lr<abc", "'<' needs a number on the right, got abc"},
      {"config.lr<\"1\"", "needs a number"},
      {"config.lr>nan", "needs a number"},
      {"bogus=1", "unknown PATH 'bogus'"},
      {"config=1", "unknown PATH 'config'"},
      {"config..a=1", "has an empty config key"},
      {"config.a.=1", "has an empty config key"},
      {"config.=1", "has an empty config key"},
      {"summary.=1", "names no metric"},
      {"a=>1", "'=>' is not an operator"},
      {"name==x", "'==' is not an operator"},
      {"name=<x>", "'=<' is not an operator"},
      {"name!x", "'!' is not an operator"},
      {"name=", "no VALUE after '='"},
      {"name=   ", "no VALUE after '='"},
      {"=1", "no PATH"},
      {"name", "no operator"},
      {"", "no operator"},
      {"name=\"unterminated", "is not a JSON string"},
      {"name=\"a\" b", "is not a JSON string"},
      {"name=\"\xff\"", "is not a JSON string"},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.condition);
    try {
      parse_run_condition(c.condition);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("runs filter '" + c.condition + "': ", 0), 0u) << what;
      EXPECT_NE(what.find(c.says), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    }
  }
}

TEST(RunFilterGrammar, ErrorsQuoteAtMost80BytesOfALongCondition) {
  const std::string path = "config." + std::string(100000, 'k');
  try {
    parse_run_condition(path + "<x");
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_NE(std::string(e.what()).find("runs filter 'config.kkk"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(parse_run_condition(path + "=1")) << "a long path is no error in itself";
  // A cut never splits a UTF-8 character: "é" is 2 bytes, so byte 80 falls inside one.
  std::string accents = "name=x";
  for (int i = 0; i < 60; ++i) accents += "\xc3\xa9";
  try {
    parse_run_condition("bogus" + accents);
    FAIL() << "accepted";
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("\xc3\xa9\xe2\x80\xa6"), std::string::npos) << what;  // "é…"
    EXPECT_NO_THROW(nlohmann::json::parse(nlohmann::json(what).dump())) << "valid UTF-8";
  }
}

class RunsDb : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = test_path("runs.db");
    Store store(path_);
    auto add = [&](const std::string& name, nlohmann::json config, double loss) {
      tracker::Run run = tracker::Run::create(store, {"p", name, "", {"t"}, "", std::move(config)});
      run.log(0, {{"val/loss", loss + 1}});
      run.log(1, {{"val/loss", loss}});
      run.finish();
    };
    add("a", {{"optim", {{"lr", 0.01}}}, {"x", 2}}, 3.0);
    add("<x>", {{"optim", {{"lr", 0.0001}}}, {"x", "1x"}}, 1.5);
    add("foo", {{"optim", {{"lr", 0.001}}}, {"x", 10}}, 0.5);
    add("no config", nlohmann::json::object(), 9.0);
  }
  std::vector<std::string> names(const RunFilter& filter) {
    std::vector<std::string> out;
    for (const auto& r : Query(path_).runs(filter)) out.push_back(r.name);
    return out;
  }
  RunFilter where(std::vector<std::string> conditions) {
    RunFilter f;
    f.where = std::move(conditions);
    return f;
  }
  // Runs `sql` on the database with one text bound to ?1.
  void update(const std::string& sql, const std::string& text) {
    auto db = open_database(path_, OpenMode::kReadWrite);
    Stmt s(*db, sql.c_str());
    s.bind(1, text).run();
  }
  std::string path_;
};

using Names = std::vector<std::string>;

TEST_F(RunsDb, ConditionsSelectRuns) {
  EXPECT_EQ(names(where({"config.optim.lr>=0.001"})), (Names{"a", "foo"}));
  EXPECT_EQ(names(where({"summary.val/loss.min<2"})), (Names{"<x>", "foo"}));
  EXPECT_EQ(names(where({"summary.val/loss.max>=2.5"})), (Names{"a", "<x>", "no config"}));
  EXPECT_EQ(names(where({"summary.val/loss>9"})), Names{}) << ".last is 9 for the last run";
  EXPECT_EQ(names(where({"summary.val/loss>=9"})), (Names{"no config"}));
  EXPECT_EQ(names(where({"name=\"<x>\""})), (Names{"<x>"}));
  EXPECT_EQ(names(where({"name!=foo", "config.optim.lr<1"})), (Names{"a", "<x>"}));
  EXPECT_EQ(names(where({"config.x=10"})), (Names{"foo"}));
  EXPECT_EQ(names(where({"config.x=1x"})), (Names{"<x>"}));
  EXPECT_EQ(names(where({"config.x>1"})), (Names{"a", "foo"})) << "text never meets < <= > >=";
  EXPECT_EQ(names(where({"config.missing=1"})), Names{}) << "a run without the value fails";
  EXPECT_EQ(names(where({"name = no config"})), (Names{"no config"}));
}

TEST_F(RunsDb, SortingIsATotalOrderNumbersFirst) {
  RunFilter f;
  f.sort_by = "config.x";
  EXPECT_EQ(names(f), (Names{"a", "foo", "<x>", "no config"}));  // 2, 10, "1x", none
  f.descending = true;
  EXPECT_EQ(names(f), (Names{"<x>", "foo", "a", "no config"}));  // runs without the value stay last
  f.sort_by = "summary.val/loss.min";
  f.descending = false;
  f.limit = 2;
  EXPECT_EQ(names(f), (Names{"foo", "<x>"}));
}

TEST_F(RunsDb, AMalformedFilterThrowsBeforeReading) {
  RunFilter bad_sort;
  bad_sort.sort_by = "bogus";
  EXPECT_THROW(Query(path_).runs(bad_sort), std::invalid_argument);
  EXPECT_THROW(check_run_filter(bad_sort), std::invalid_argument);
  EXPECT_THROW(check_run_path("config."), std::invalid_argument);
  EXPECT_NO_THROW(check_run_path("summary.val/loss.best"));
  EXPECT_THROW(Query(path_).runs(where({"name=x", "config.lr<abc"})), std::invalid_argument);
  try {
    check_run_filter(bad_sort);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown PATH 'bogus'"), std::string::npos) << e.what();
  }
}

TEST_F(RunsDb, TheCliReportsAMalformedFilterAsAOneLineUsageErrorEvenWithoutADatabase) {
  const std::string missing = test_path("missing.db");
  for (const std::vector<std::string>& flags : std::vector<std::vector<std::string>>{
           {"--sort", "bogus"}, {"--where", "bogus=1"}, {"--where", "config.lr<abc"}, {"--where", "name==x"}}) {
    for (const std::string& db : {missing, path_}) {
      std::vector<std::string> args = {"runs", "--db", db};
      args.insert(args.end(), flags.begin(), flags.end());
      I3labResult r = i3lab(args);
      SCOPED_TRACE(flags[1] + " on " + db);
      EXPECT_EQ(r.status, 2);
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(r.err.rfind("i3lab runs: ", 0), 0u) << r.err;
      EXPECT_NE(r.err.find(flags[1]), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
    }
  }
  EXPECT_FALSE(fs::exists(missing));
  EXPECT_EQ(i3lab({"runs", "--db", path_, "--limit", "-1"}).status, 2);
  I3labResult ok = i3lab({"runs", "--db", path_, "--where", "name=\"<x>\"", "--json"});
  ASSERT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(ok.out).at(0)["name"], "<x>");
}

TEST_F(RunsDb, DamagedConfigsAndTagsReadAsNullWithAnErrorAndPrintAsValidJson) {
  // Not JSON; nested 100,000 deep (printing or destroying it would overflow the stack); JSON of
  // another kind.
  const std::string deep(100000, '[');
  update("UPDATE runs SET config = ?1 WHERE name = 'a'", "{\"a\":");
  update("UPDATE runs SET config = ?1 WHERE name = '<x>'", deep);
  update("UPDATE runs SET config = ?1, tags = ?1 WHERE name = 'foo'", "[1, 2]");
  update("UPDATE runs SET tags = ?1 WHERE name = 'no config'", deep);
  std::map<std::string, RunRecord> runs;
  for (auto& r : Query(path_).runs()) runs[r.name] = r;
  EXPECT_TRUE(runs["a"].config.is_null());
  EXPECT_EQ(runs["a"].config_error, "stored config is not valid JSON");
  EXPECT_EQ(runs["<x>"].config_error, "stored config is not valid JSON");
  EXPECT_EQ(runs["foo"].config_error, "stored config is not a JSON object");
  EXPECT_EQ(runs["foo"].tags_error, "stored tags is not a JSON array of strings");
  EXPECT_TRUE(runs["no config"].tags.is_null());
  EXPECT_EQ(runs["no config"].config_error, "");
  EXPECT_EQ(runs["no config"].to_json().count("config_error"), 0u);
  EXPECT_EQ(names(where({"config.optim.lr>0"})), Names{}) << "a damaged config has no values";
  RunFilter tagged;
  tagged.tag = "t";
  EXPECT_EQ(names(tagged), (Names{"a", "<x>"}));

  I3labResult r = i3lab({"runs", "--db", path_, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json out;
  ASSERT_NO_THROW(out = nlohmann::json::parse(r.out)) << r.out.substr(0, 300);
  ASSERT_EQ(out.size(), 4u);
  for (const auto& run : out) {
    SCOPED_TRACE(run["name"].dump());
    if (run["name"] == "no config") {
      EXPECT_TRUE(run["tags"].is_null());
      EXPECT_TRUE(run.contains("tags_error"));
      continue;
    }
    EXPECT_TRUE(run["config"].is_null());
    EXPECT_TRUE(run["config_error"].is_string());
  }
  I3labResult table = i3lab({"runs", "--db", path_, "--sort", "config.optim.lr", "--where", "name!=x"});
  EXPECT_EQ(table.status, 0) << table.err;
}

TEST_F(RunsDb, InvalidUtf8InStoredTextPrintsAsValidJson) {
  update("UPDATE runs SET name = ?1 WHERE name = 'a'", std::string("bad\xff\xfe name \xc3", 12));
  update("UPDATE runs SET notes = ?1", "\x80\x80");
  {
    auto db = open_database(path_, OpenMode::kReadWrite);
    db->exec("UPDATE metric_keys SET name = CAST(x'76616cff' AS TEXT)");  // "val\xff"
  }
  I3labResult r = i3lab({"runs", "--db", path_, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  nlohmann::json out;
  ASSERT_NO_THROW(out = nlohmann::json::parse(r.out)) << r.out.substr(0, 300);
  EXPECT_EQ(out.at(0)["name"], "bad\xef\xbf\xbd\xef\xbf\xbd name \xef\xbf\xbd");  // U+FFFD for each bad byte
  EXPECT_EQ(out.at(0)["summary"].begin().key(), "val\xef\xbf\xbd");
  I3labResult table = i3lab({"runs", "--db", path_});
  EXPECT_EQ(table.status, 0) << table.err;
}

TEST_F(RunsDb, ADamagedStoredTableReadsAsAnError) {
  {
    Store store(path_);
    tracker::Run run = tracker::Run::resume(store, 1);
    run.log_table("samples", 5, {"a"}, nlohmann::json::array({nlohmann::json::array({1})}));
    run.finish();
  }
  Query q(path_);
  EXPECT_EQ(q.table(1, "samples", 5), (nlohmann::json{{"columns", {"a"}}, {"rows", {{1}}}}));
  EXPECT_TRUE(q.table(1, "samples", 6).is_null());
  for (const std::string& damage : {std::string("[\"a\""), std::string(100000, '['), std::string("{}")}) {
    update("UPDATE run_tables SET rows = ?1", damage);
    const nlohmann::json t = Query(path_).table(1, "samples", 5);
    EXPECT_TRUE(t["rows"].is_null());
    EXPECT_TRUE(t["columns"].is_null());
    EXPECT_EQ(t["error"], "stored table is not valid JSON arrays");
  }
}

}  // namespace
}  // namespace tracker
