// Hostile model and training configs: the documents that once crashed i3lab (JSON nested
// 100,000 deep quoted in an error message) or overflowed it (a parameter count past int64),
// then seeded random mutations. Every input must end in std::invalid_argument with a
// message, or in a config that validates; never a crash or an exception of another type.
#include <gtest/gtest.h>

#include <random>

#include "common/util/json.h"
#include "model/config/model_config.h"
#include "model/config/train_config.h"
#include "tests/fuzz.h"

namespace i3 {
namespace {

const std::vector<std::string> kJsonDictionary = {"[", "]", "{", "}", "\"", ",", ":", "1e400", "-1", "0", "65536",
                                                  "9223372036854775807", "18446744073709551615", "-9223372036854775808",
                                                  "null", "true", "\"\\ud800\"", "\"d_model\":", "\"optim\":{",
                                                  "\"model\":{", "\"lr\":", "\"max_iters\":"};

// What a model config document gives, read as i3lab's own keys (`published` false) or as a
// published config.json: "" if it is accepted and validates, else the error.
std::string model_config_outcome(const std::string& text, bool published = false) {
  try {
    const nlohmann::json j = util::parse_json(text, "config.json");
    ModelConfig c = published ? ModelConfig::from_published_json(j, "config.json")
                              : ModelConfig::from_json(j, "config.json", preset("i3-tiny"));
    c.validate();
    EXPECT_GT(c.parameter_count(), 0);
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

std::string train_config_outcome(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    TrainConfig::parse(util::parse_json(text, "train.json"), "train.json", overrides);
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
}

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(HostileConfigs, DeepValuesAreRefusedBeforeAnyErrorPrintsThem) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  // Was: nlohmann's serializer recursed 100,000 deep printing the value in an error.
  EXPECT_HAS(model_config_outcome("{\"d_model\": " + deep + "}"), "config.json: JSON nested deeper than 128 levels");
  EXPECT_HAS(model_config_outcome("{\"model_type\": " + deep + "}"), "nested deeper than 128");
  EXPECT_HAS(train_config_outcome("{\"project\": " + deep + "}"), "train.json: JSON nested deeper than 128 levels");
  EXPECT_HAS(train_config_outcome("{\"notes\": " + deep + "}"), "nested deeper than 128");
  // A long value is quoted cut short.
  const std::string long_string = "\"" + std::string(4 << 20, 'x') + "\"";
  const std::string error = model_config_outcome("{\"d_model\": " + long_string + "}");
  EXPECT_HAS(error, "must be an integer");
  EXPECT_LT(error.size(), 300u);
}

TEST(HostileConfigs, HugeShapesAreRefusedAndCountsNeverOverflow) {
  ModelConfig c = preset("i3-tiny");
  c.vocab_size = 100;
  // Was: `model info --set d_model=2^62` printed a negative parameter count.
  c.set("d_model=4611686018427387904");
  EXPECT_THROW(c.validate(), std::invalid_argument);
  EXPECT_THROW(c.parameter_count(), std::invalid_argument);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    EXPECT_HAS(std::string(e.what()), "d_model is 4611686018427387904, over i3lab's limit of 65536");
  }
  EXPECT_HAS(model_config_outcome("{\"vocab_size\": 18446744073709551615}"), "must be an integer");
  EXPECT_HAS(model_config_outcome(R"({"vocab_size": 10, "d_model": 8, "n_heads": 2, "max_seq_len": 8,
                                      "n_layers": -9223372036854775808, "attn_layers": 1})",
                                  /*published=*/true),
             "out of range");
  // Every field at its limit at once: refused by the parameter bound, counted without overflow.
  ModelConfig big;
  big.vocab_size = kMaxVocabSize, big.d_model = kMaxDModel, big.n_heads = 1, big.d_state = kMaxDState;
  big.n_hybrid = kMaxLayers / 2, big.n_attn = kMaxLayers / 2, big.ffn_mult = kMaxFfnMult, big.context = kMaxContext;
  EXPECT_THROW(big.validate(), std::invalid_argument);
}

TEST(FuzzConfigs, ModelConfigJson) {
  std::vector<std::string> seeds;
  for (const auto& [name, bytes] : fuzz::corpus("model_config")) {
    seeds.push_back(bytes);
    SCOPED_TRACE(name);
    model_config_outcome(bytes);
    model_config_outcome(bytes, /*published=*/true);
  }
  seeds.push_back(preset("i3-80m").to_json().dump());
  ModelConfig published = preset("i3-80m");
  published.vocab_size = 41320;
  seeds.push_back(published.to_published_json().dump());
  std::mt19937_64 rng(20261127);
  int accepted = 0;
  for (int i = 0; i < 4000; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const std::string text = fuzz::mutate_n(seeds[i % seeds.size()], rng, kJsonDictionary, 1 + static_cast<int>(rng() % 4));
    const std::string error = model_config_outcome(text) + model_config_outcome(text, /*published=*/true);
    if (error.empty()) ++accepted;
    else ASSERT_LT(error.size(), 1000u) << error.substr(0, 1000);
  }
  RecordProperty("accepted", accepted);
}

TEST(FuzzConfigs, TrainConfigJsonAndOverrides) {
  std::vector<std::string> seeds;
  for (const auto& [name, bytes] : fuzz::corpus("train_config")) {
    seeds.push_back(bytes);
    SCOPED_TRACE(name);
    train_config_outcome(bytes);
  }
  const nlohmann::json minimal = {{"data", {{"vocab", "v.json"}, {"sources", {{{"path", "a.txt"}}}}}}};
  seeds.push_back(minimal.dump());
  seeds.push_back(TrainConfig::parse(minimal, "defaults").to_json().dump());
  std::mt19937_64 rng(20261128);
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const std::string text = fuzz::mutate_n(seeds[i % seeds.size()], rng, kJsonDictionary, 1 + static_cast<int>(rng() % 4));
    // And an override (--set KEY=VALUE) made of mutated pieces.
    const std::string set = fuzz::mutate_n("optim.lr=0.001", rng, kJsonDictionary, static_cast<int>(rng() % 3));
    const std::string error = train_config_outcome(text, {set});
    if (error.empty()) ++accepted;
    else ASSERT_LT(error.size(), 1000u) << error.substr(0, 1000);
  }
  RecordProperty("accepted", accepted);
}

}  // namespace
}  // namespace i3
