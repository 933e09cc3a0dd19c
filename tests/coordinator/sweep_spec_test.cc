// Sweep definitions: W&B's keys from YAML or JSON, W&B's distribution inference, the nested
// parameter form, and errors that name the file and field before anything runs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "common/config_file/config_file.h"
#include "common/util/files.h"
#include "coordinator/sweep/sweep_spec.h"

namespace {

using nlohmann::json;
using sweep::Distribution;

struct Files {
  util::TempDir dir{"sweep_spec"};
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = dir.path() + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
};

std::string error_of(const json& j) {
  try {
    sweep::parse_sweep_spec(j, "sweep.yaml", ".");
  } catch (const sweep::SweepSpecError& e) {
    return e.what();
  }
  return "";
}

json base() {
  return {{"method", "random"},
          {"metric", {{"name", "val/loss"}}},
          {"parameters", {{"optim.lr", {{"min", 1e-4}, {"max", 1e-2}}}}},
          {"job", {{"kind", "train"}, {"config", {{"data", {{"vocab", "vocab.json"}, {"sources", {{{"path", "train.txt"}}}}}}, {"optim", {{"lr", 1e-3}}}}}}}};
}

// A sweep file with W&B's keys (entity and all) over a training job: W&B's inference, the
// nested form, hyperband. (W&B's own program form: sweep_cluster_test.)
TEST(SweepSpec, AWandbSweepFileReadsWithItsInferredDistributions) {
  Files f;
  f.write("train.json", R"({"data": {"vocab": "vocab.json", "sources": [{"path": "train.txt"}]}, "optim": {"lr": 0.002}, "train": {"max_iters": 100}})");
  const std::string path = f.write("sweep.yaml", R"(
entity: my-team
method: bayes
name: lr-and-width
metric:
  name: val/loss
  goal: minimize
  target: 2.5
parameters:
  optim.lr:
    distribution: log_uniform_values
    min: 0.0001
    max: 0.1
  model:
    parameters:
      d_model:
        values: [64, 128, 256]
        probabilities: [0.25, 0.25, 0.5]
  train.max_iters:
    min: 50
    max: 150
  optim.weight_decay:
    min: 0.0
    max: 0.2
  optim.warmup_iters:
    value: 10
early_terminate:
  type: hyperband
  min_iter: 3
job: train.json
seed: 7
)");
  const sweep::SweepSpec s = sweep::read_sweep_file(path);
  EXPECT_EQ(s.method, sweep::Method::kBayes);
  EXPECT_EQ(s.name, "lr-and-width");
  EXPECT_EQ(s.metric.name, "val/loss");
  EXPECT_FALSE(s.metric.maximize);
  EXPECT_EQ(*s.metric.target, 2.5);
  // By path: JSON objects, and so YAML maps, keep no order.
  ASSERT_EQ(s.parameters.size(), 5u);
  std::map<std::string, const sweep::Parameter*> by_path;
  for (const auto& p : s.parameters) by_path[p.path] = &p;
  EXPECT_EQ(by_path.at("optim.lr")->distribution, Distribution::kLogUniformValues);
  const sweep::Parameter& width = *by_path.at("model.d_model");  // the nested form
  EXPECT_EQ(width.distribution, Distribution::kCategorical);
  EXPECT_EQ(width.values, (std::vector<json>{64, 128, 256}));
  EXPECT_EQ(width.probabilities, (std::vector<double>{0.25, 0.25, 0.5}));
  EXPECT_EQ(by_path.at("train.max_iters")->distribution, Distribution::kIntUniform);    // integer bounds
  EXPECT_EQ(by_path.at("optim.weight_decay")->distribution, Distribution::kUniform);   // 0.0: float bounds
  EXPECT_EQ(by_path.at("optim.warmup_iters")->distribution, Distribution::kConstant);
  EXPECT_TRUE(s.early_terminate.enabled);
  EXPECT_EQ(s.early_terminate.min_steps, 3);
  EXPECT_EQ(s.early_terminate.eta, 3);
  EXPECT_EQ(s.seed, 7u);
  // A file without "kind" is a training config, read relative to the sweep file.
  EXPECT_EQ(s.job["kind"], "train");
  EXPECT_EQ(s.job["config"]["train"]["max_iters"], 100);
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find("entity is W&B's and is not used"), std::string::npos);
  // What the coordinator stores reads back the same.
  const json stored = sweep::to_json(s);
  EXPECT_EQ(sweep::to_json(sweep::parse_sweep_spec(stored, "stored", ".")), stored);
}

TEST(SweepSpec, GridSizeIsTheProductOfEachParametersValues) {
  json j = base();
  j["method"] = "grid";
  j["parameters"] = {{"optim.lr", {{"values", {1e-3, 2e-3, 3e-3}}}}, {"train.max_iters", {{"min", 10}, {"max", 13}}},
                     {"optim.warmup_iters", {{"value", 5}}}};
  EXPECT_EQ(sweep::grid_size(sweep::parse_sweep_spec(j, "sweep.json", ".")), 12u);
  j["parameters"]["optim.weight_decay"] = {{"min", 0.0}, {"max", 0.1}};
  EXPECT_NE(error_of(j).find("parameters.optim.weight_decay: a uniform distribution has no grid"), std::string::npos) << error_of(j);
  j["parameters"].erase("optim.weight_decay");
  j["parameters"]["train.max_iters"] = {{"min", 1}, {"max", 1000000}};
  EXPECT_NE(error_of(j).find("more than 100000 points"), std::string::npos) << error_of(j);
}

TEST(SweepSpec, ErrorsNameTheFileAndFieldBeforeAnythingRuns) {
  const auto with = [](const std::function<void(json&)>& edit) {
    json j = base();
    edit(j);
    return error_of(j);
  };
  const std::vector<std::pair<std::string, std::function<void(json&)>>> cases = {
      {"sweep.yaml: methd is not a sweep key", [](json& j) { j["methd"] = "grid"; }},
      {"sweep.yaml: method must be grid, random or bayes", [](json& j) { j["method"] = "hyperopt"; }},
      {"sweep.yaml: method is missing", [](json& j) { j.erase("method"); }},
      {"sweep.yaml: job is missing", [](json& j) { j.erase("job"); }},
      {"sweep.yaml: parameters.optim.lr.step is not a parameter key", [](json& j) { j["parameters"]["optim.lr"]["step"] = 1; }},
      {"sweep.yaml: parameters.optim.lr is an empty range", [](json& j) { j["parameters"]["optim.lr"]["max"] = 1e-5; }},
      {"sweep.yaml: parameters.optim.lr.distribution \"gaussian\" is not one of",
       [](json& j) { j["parameters"]["optim.lr"]["distribution"] = "gaussian"; }},
      {"sweep.yaml: parameters.optim.lr.min must be above 0 for log_uniform_values",
       [](json& j) { j["parameters"]["optim.lr"] = {{"distribution", "log_uniform_values"}, {"min", 0.0}, {"max", 1.0}}; }},
      {"sweep.yaml: parameters.optim.lr.probabilities must sum to 1",
       [](json& j) { j["parameters"]["optim.lr"] = {{"values", {1e-3, 2e-3}}, {"probabilities", {0.5, 0.6}}}; }},
      {"sweep.yaml: parameters.optim.lr needs value, values, or min and max", [](json& j) { j["parameters"]["optim.lr"] = {{"q", 1}}; }},
      {"sweep.yaml: parameters.optim.lrr does not fit the training config",
       [](json& j) { j["parameters"] = {{"optim.lrr", {{"values", {1e-3}}}}}; }},
      {"sweep.yaml: parameters.optim.lr does not fit the training config",
       [](json& j) { j["parameters"]["optim.lr"] = {{"values", {"high"}}}; }},
      {"sweep.yaml: metric is needed by method bayes", [](json& j) { j["method"] = "bayes", j.erase("metric"); }},
      {"sweep.yaml: metric.goal must be minimize or maximize", [](json& j) { j["metric"]["goal"] = "lower"; }},
      {"sweep.yaml: early_terminate.min_steps is missing", [](json& j) { j["early_terminate"] = {{"type", "asha"}}; }},
      {"sweep.yaml: early_terminate.type must be asha or hyperband", [](json& j) { j["early_terminate"] = {{"type", "envelope"}}; }},
      {"sweep.yaml: job.kind is \"eval\"", [](json& j) { j["job"] = {{"kind", "eval"}, {"args", {"--model", "m"}}}; }},
      {"sweep.yaml: program and job are both given", [](json& j) { j["program"] = "train.py"; }},
      {"sweep.yaml: command has ${project}", [](json& j) { j.erase("job"), j["program"] = "t.py", j["command"] = {"${program}", "${project}"}; }},
      {"sweep.yaml: run_cap must be an integer", [](json& j) { j["run_cap"] = -1; }},
  };
  for (const auto& [expected, edit] : cases) EXPECT_EQ(with(edit).rfind(expected, 0), 0u) << with(edit);
  // A synthetic job takes any parameter.
  json j = base();
  j["job"] = {{"kind", "synthetic"}};
  j["parameters"] = {{"x", {{"min", -1.0}, {"max", 1.0}}}};
  EXPECT_EQ(error_of(j), "");
}

TEST(ConfigFile, YamlScalarsTakeTheCoreSchemasTypesAndErrorsNameTheLine) {
  const json j = config_file::parse_yaml("a: 1\nb: 1e-3\nc: '1e-3'\nd: true\ne: ~\nf: word\ng: [1, \"2\"]\nh: .inf\n", "t.yaml");
  EXPECT_EQ(j["a"], 1);
  EXPECT_TRUE(j["b"].is_number_float());
  EXPECT_EQ(j["c"], "1e-3");  // quoted: a string
  EXPECT_EQ(j["d"], true);
  EXPECT_TRUE(j["e"].is_null());
  EXPECT_EQ(j["f"], "word");
  EXPECT_EQ(j["g"], json({1, "2"}));
  EXPECT_TRUE(std::isinf(j["h"].get<double>()));
  const auto error = [](const std::string& text) {
    try {
      config_file::parse_yaml(text, "t.yaml");
    } catch (const config_file::ConfigFileError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error("a: 1\na: 2\n").rfind("t.yaml:2: the key \"a\" appears twice", 0), 0u) << error("a: 1\na: 2\n");
  EXPECT_EQ(error("a: [1, 2\n").rfind("t.yaml:", 0), 0u);
  EXPECT_NE(error("a: [1, 2\n").find("not valid YAML"), std::string::npos);
  EXPECT_NE(error("a: !python/object x\n").find("is not supported"), std::string::npos);
  EXPECT_NE(error("---\na: 1\n---\nb: 2\n").find("holds 2 YAML documents"), std::string::npos);
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  EXPECT_NE(error(deep).find("nested deeper than 128 levels"), std::string::npos) << error(deep);
}

}  // namespace

namespace {

TEST(SweepSpec, ShippedSweepConfigsAreValid) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(I3LAB_SOURCE_DIR "/configs")) {
    if (entry.path().filename().string().find("sweep") == std::string::npos) continue;
    EXPECT_NO_THROW(sweep::read_sweep_file(entry.path().string())) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 1);
}

}  // namespace

namespace {

// W&B's program form: a command job running the program (with python3 for a .py file) from the
// sweep file's folder, the arguments left as a macro; a command of W&B's macros.
TEST(SweepSpec, WandbsProgramAndCommandBecomeACommandJob) {
  const sweep::SweepSpec plain = sweep::parse_sweep_spec(
      {{"program", "train.py"}, {"method", "random"}, {"parameters", {{"lr", {{"min", 0.1}, {"max", 0.2}}}}}}, "s.yaml", "/sweeps/a");
  EXPECT_EQ(plain.job, json({{"kind", "command"}, {"argv", {"python3", "/sweeps/a/train.py", "${args}"}}}));
  const sweep::SweepSpec custom = sweep::parse_sweep_spec(
      {{"program", "run.sh"}, {"command", {"${env}", "bash", "${program}", "--fast", "${args_no_hyphens}"}}, {"method", "random"},
       {"parameters", {{"lr", {{"min", 0.1}, {"max", 0.2}}}}}},
      "s.yaml", "/sweeps/a");
  EXPECT_EQ(custom.job["argv"], json({"bash", "/sweeps/a/run.sh", "--fast", "${args_no_hyphens}"}));
  // Stored and read back by the coordinator: the same job.
  EXPECT_EQ(sweep::parse_sweep_spec(sweep::to_json(custom), "stored", ".").job, custom.job);
}

}  // namespace
