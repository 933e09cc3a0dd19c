#include "model/config/model_config.h"

#include <gtest/gtest.h>

namespace i3 {
namespace {

TEST(ModelConfig, ParameterCountsOfThePublishedShape) {
  ModelConfig c = preset("i3-80m");
  c.vocab_size = 35560;
  EXPECT_EQ(c.parameter_count(), 76861160);
  c.vocab_size = 41320;
  EXPECT_EQ(c.parameter_count(), 82765160);
  c.vocab_size = 0;
  EXPECT_EQ(c.parameter_count(), 40412160);  // the V-independent part: 1025·V + 40,412,160
}

TEST(ModelConfig, JsonRejectsUnknownKeysAndBadValuesByName) {
  ModelConfig base = preset("i3-tiny");
  ModelConfig c = ModelConfig::from_json(nlohmann::json{{"d_model", 64}, {"vocab_size", 10}}, "x.json", base);
  EXPECT_EQ(c.d_model, 64);
  EXPECT_EQ(c.n_heads, base.n_heads);
  try {
    ModelConfig::from_json(nlohmann::json{{"d_modle", 64}}, "x.json", base);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("x.json: unknown model key \"d_modle\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(ModelConfig::from_json(nlohmann::json{{"d_model", 1.5}}, "x.json", base), std::invalid_argument);
  EXPECT_THROW(ModelConfig::from_json(nlohmann::json{{"d_model", "64"}}, "x.json", base), std::invalid_argument);
}

TEST(ModelConfig, ValidateNamesTheField) {
  ModelConfig c = preset("i3-tiny");
  try {
    c.validate();
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("vocab_size must be positive"), std::string::npos);
  }
  c.vocab_size = 10;
  c.validate();
  c.n_heads = 3;
  EXPECT_THROW(c.validate(), std::invalid_argument);
}

TEST(ModelConfig, SetOverridesOneKey) {
  ModelConfig c = preset("i3-tiny");
  c.set("context=128");
  EXPECT_EQ(c.context, 128);
  EXPECT_THROW(c.set("context"), std::invalid_argument);
  EXPECT_THROW(c.set("nope=1"), std::invalid_argument);
  EXPECT_THROW(c.set("context=abc"), std::invalid_argument);
}

TEST(ModelConfig, PublishedConfigJson) {
  ModelConfig c = preset("i3-80m");
  c.vocab_size = 41320;
  nlohmann::json j = c.to_published_json();
  EXPECT_EQ(j["architectures"], nlohmann::json::array({"i3Model"}));
  EXPECT_EQ(j["model_type"], "i3");
  EXPECT_EQ(j["n_layers"], 16);
  EXPECT_EQ(j["conv_layers"], 10);
  EXPECT_EQ(j["attn_layers"], 6);
  EXPECT_EQ(j["max_seq_len"], 256);
  EXPECT_EQ(j["d_state"], 32);
  EXPECT_EQ(j["tokenizer_type"], "chunk");
  EXPECT_FALSE(j.contains("ffn_mult"));
  ModelConfig back = ModelConfig::from_published_json(j, "config.json");
  EXPECT_EQ(back.to_json(), c.to_json());
  j.erase("d_model");
  EXPECT_THROW(ModelConfig::from_published_json(j, "config.json"), std::invalid_argument);
}

TEST(ModelConfig, Presets) {
  for (const auto& name : preset_names()) {
    ModelConfig c = preset(name);
    c.vocab_size = 100;
    EXPECT_NO_THROW(c.validate()) << name;
  }
  EXPECT_THROW(preset("i3-huge"), std::invalid_argument);
}

}  // namespace
}  // namespace i3
