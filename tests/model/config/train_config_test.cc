// The training config: defaults, overrides, errors, the shipped configs. No LibTorch: this
// test links only model/config, as the control plane does.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <nlohmann/json.hpp>

#include "model/config/train_config.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// --- the config ----------------------------------------------------------------------------------

const json kMinimal = {{"data", {{"vocab", "v.json"}, {"sources", {{{"path", "a.txt"}}}}}}};

std::string parse_error(const json& j, const std::vector<std::string>& overrides = {}) {
  try {
    i3::TrainConfig::parse(j, "cfg.json", overrides);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TrainConfig, DefaultsAreThePublishedRecipe) {
  const i3::TrainConfig c = i3::TrainConfig::parse(kMinimal, "cfg.json");
  EXPECT_EQ(c.model.d_model, 512);
  EXPECT_EQ(c.model.n_hybrid, 10);
  EXPECT_EQ(c.batch_size, 4);
  EXPECT_EQ(c.sampler, "random");
  EXPECT_DOUBLE_EQ(c.schedule.peak, 3e-4);
  EXPECT_EQ(c.schedule.warmup, 100);
  EXPECT_EQ(c.schedule.max_iters, 5000);  // lr_decay_iters 0 → train.max_iters
  EXPECT_DOUBLE_EQ(c.schedule.floor, 0.1);
  EXPECT_DOUBLE_EQ(c.adamw.weight_decay, 0.01);
  EXPECT_TRUE(c.adamw.decay_all);
  EXPECT_DOUBLE_EQ(c.grad_clip, 1.0);
  EXPECT_EQ(c.log_interval, 10);
  EXPECT_EQ(c.eval_interval, 500);
  EXPECT_EQ(c.prompts, (std::vector<std::string>{"hello", "user: tell me", "once upon a time"}));
  // The resolved config reads back to itself (what resume does with the stored config).
  EXPECT_EQ(i3::TrainConfig::parse(c.to_json(), "stored").to_json(), c.to_json());
  EXPECT_EQ(c.to_json()["model"]["d_model"], 512);
}

TEST(TrainConfig, OverridesAndPresets) {
  json j = kMinimal;
  j["model"] = {{"preset", "i3-tiny"}, {"context", 32}};
  const i3::TrainConfig c = i3::TrainConfig::parse(
      j, "cfg.json",
      {"optim.lr=0.01", "model.d_model=64", "data.sampler=epoch", "logging.prompts=[\"a b\"]", "train.max_iters=300",
       "optim.lr_decay_iters=1000", "name=my run"});
  EXPECT_EQ(c.model.d_model, 64);
  EXPECT_EQ(c.model.context, 32);
  EXPECT_EQ(c.model.n_hybrid, 2);  // from the preset
  EXPECT_DOUBLE_EQ(c.schedule.peak, 0.01);
  EXPECT_EQ(c.sampler, "epoch");
  EXPECT_EQ(c.prompts, std::vector<std::string>{"a b"});
  EXPECT_EQ(c.max_iters, 300);
  EXPECT_EQ(c.schedule.max_iters, 1000);
  EXPECT_EQ(c.name, "my run");
}

TEST(TrainConfig, ErrorsNameTheFileAndKey) {
  json unknown = kMinimal;
  unknown["optim"] = {{"lrr", 1}};
  EXPECT_NE(parse_error(unknown).find("cfg.json: unknown key \"optim.lrr\""), std::string::npos) << parse_error(unknown);
  json type = kMinimal;
  type["train"] = {{"max_iters", "many"}};
  EXPECT_EQ(parse_error(type), "cfg.json: \"train.max_iters\" must be an integer, got \"many\"");
  json fractional = kMinimal;
  fractional["train"] = {{"max_iters", 10.5}};
  EXPECT_NE(parse_error(fractional).find("must be an integer"), std::string::npos);
  EXPECT_NE(parse_error(kMinimal, {"optim.lr=-1"}).find("\"optim.lr\" must be positive"), std::string::npos);
  EXPECT_NE(parse_error(kMinimal, {"train.on_nonfinite=ignore"}).find("train.on_nonfinite"), std::string::npos);
  EXPECT_NE(parse_error(kMinimal, {"model.preset=i3-1t"}).find("model.preset"), std::string::npos);
  EXPECT_NE(parse_error(kMinimal, {"model.depth=3"}).find("unknown model key \"depth\""), std::string::npos);
  EXPECT_NE(parse_error(kMinimal, {"lr"}).find("--set expects"), std::string::npos);
  json source = kMinimal;
  source["data"]["sources"] = {{{"path", "a.txt"}, {"fromat", "jsonl"}}};
  EXPECT_NE(parse_error(source).find("data.sources[0]: unknown key \"fromat\""), std::string::npos) << parse_error(source);
  json no_data = {{"data", {{"vocab", "v.json"}}}};
  EXPECT_NE(parse_error(no_data).find("\"data.sources\" is required"), std::string::npos);
  EXPECT_NE(parse_error(json::array()).find("must be a JSON object"), std::string::npos);
}

TEST(TrainConfig, ShippedConfigsAreValid) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(I3LAB_SOURCE_DIR "/configs")) {
    if (entry.path().extension() != ".json") continue;
    if (entry.path().filename().string().find("sweep") != std::string::npos) continue;  // sweep_spec_test reads those
    EXPECT_NO_THROW(i3::TrainConfig::load(entry.path().string())) << entry.path();
    ++count;
  }
  EXPECT_GE(count, 2);
  const i3::TrainConfig published = i3::TrainConfig::load(I3LAB_SOURCE_DIR "/configs/i3-80m.json");
  // It spells out the defaults, which are the published recipe.
  json optim = i3::TrainConfig::parse(kMinimal, "defaults").to_json()["optim"];
  optim["lr_decay_iters"] = 5000;
  EXPECT_EQ(published.to_json()["optim"], optim);
}

// docs/training.md shows the key table (`i3lab train --print-keys`): every key, with its
// default, so the page cannot drift from the parser.
TEST(TrainConfig, TheDocsListEveryKeyWithItsDefault) {
  std::ifstream in(I3LAB_SOURCE_DIR "/docs/training.md");
  const std::string docs((std::istreambuf_iterator<char>(in)), {});
  ASSERT_FALSE(docs.empty());
  const std::vector<i3::TrainConfigKey> keys = i3::train_config_keys();
  EXPECT_GE(keys.size(), 40u);
  for (const auto& k : keys) {
    const std::string row = "| `" + k.path + "` | `" + k.default_value.dump() + "` | " + k.meaning + " |";
    EXPECT_NE(docs.find(row), std::string::npos) << "docs/training.md lacks the row\n" << row;
  }
  // And the table covers exactly the defaults.
  json from_table = json::object();
  for (const auto& k : keys) from_table[json::json_pointer("/" + std::regex_replace(k.path, std::regex("\\."), "/"))] = k.default_value;
  EXPECT_EQ(from_table, i3::default_train_config());
}

}  // namespace
