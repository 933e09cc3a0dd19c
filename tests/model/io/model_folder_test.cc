// Model folders: our own round trip, a published-style folder, and broken folders.
#include "model/io/model_folder.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "model/io/safetensors.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;

namespace i3 {
namespace {

ModelConfig tiny(int64_t vocab) {
  ModelConfig c = preset("i3-tiny");
  c.vocab_size = vocab;
  return c;
}

ChunkTokenizer small_vocab() {
  VocabBuilder b;
  b.add_text("once upon a time");
  b.add_text("hello there");
  return b.build();  // 12 ids
}

std::string error_of(const std::string& dir) {
  try {
    load_model_folder(dir);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

torch::Tensor logits_of(I3Model& model) {
  torch::NoGradGuard no_grad;
  return model->forward(torch::tensor({1, 2, 3, 4, 5}, torch::kLong).view({1, -1}));
}

TEST(ModelFolder, SaveLoadRoundTrip) {
  torch::manual_seed(0);
  I3Model model(tiny(12));
  ChunkTokenizer tok = small_vocab();
  const std::string dir = test_path("m");
  save_model_folder(dir, model, &tok);
  EXPECT_TRUE(fs::exists(dir + "/config.json"));
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
  EXPECT_TRUE(fs::exists(dir + "/tokenizer.json"));
  ModelFolder folder = load_model_folder(dir);
  EXPECT_TRUE(folder.warnings.empty());
  EXPECT_EQ(folder.config.to_json(), model->config().to_json());
  ASSERT_TRUE(folder.tokenizer.has_value());
  EXPECT_EQ(folder.tokenizer->to_json(), tok.to_json());
  auto saved = model->state_dict();
  auto loaded = folder.model->state_dict();
  ASSERT_EQ(saved.size(), loaded.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    EXPECT_EQ(saved[i].first, loaded[i].first);
    EXPECT_TRUE(torch::equal(saved[i].second, loaded[i].second)) << saved[i].first;
  }
  EXPECT_TRUE(torch::equal(logits_of(model), logits_of(folder.model)));
}

TEST(ModelFolder, PublishedNamesAndCount) {
  ModelConfig c = preset("i3-80m");
  c.vocab_size = 100;
  I3Model model(c);
  auto sd = model->state_dict();
  EXPECT_EQ(sd.size(), 208u);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (auto& [name, t] : sd) shapes[name] = t.sizes().vec();
  EXPECT_EQ(shapes["embed.weight"], (std::vector<int64_t>{100, 512}));
  EXPECT_EQ(shapes["pos_embed.weight"], (std::vector<int64_t>{256, 512}));
  EXPECT_EQ(shapes["layers.0.hybrid.A"], (std::vector<int64_t>{32, 32}));
  EXPECT_EQ(shapes["layers.9.hybrid.B"], (std::vector<int64_t>{32, 512}));
  EXPECT_EQ(shapes["layers.9.hybrid.C"], (std::vector<int64_t>{512, 32}));
  EXPECT_EQ(shapes["layers.10.attn.qkv.weight"], (std::vector<int64_t>{1536, 512}));
  EXPECT_EQ(shapes["layers.15.attn.out_proj.bias"], (std::vector<int64_t>{512}));
  EXPECT_EQ(shapes["layers.15.ffn.0.weight"], (std::vector<int64_t>{2048, 512}));
  EXPECT_EQ(shapes["layers.15.ffn.2.weight"], (std::vector<int64_t>{512, 2048}));
  EXPECT_EQ(shapes["head.bias"], (std::vector<int64_t>{100}));
  EXPECT_EQ(shapes.count("ln_f.weight"), 1u);
  EXPECT_EQ(shapes.count("layers.3.ln2.bias"), 1u);
}

// A published-style folder written from C++: config.json claiming d_state 64, weights in a
// pytorch_model.bin from LibTorch's pickle_save, the vocabulary as chunk_vocab_combined.json.
// (ReproducesPyTorchLogits... below covers a folder written by Python's torch.save.)
TEST(ModelFolder, LoadsAPublishedStyleFolderTrustingShapes) {
  torch::manual_seed(1);
  I3Model model(tiny(12));  // d_state 8
  const std::string dir = test_path("published");
  fs::create_directories(dir);
  nlohmann::json config = model->config().to_published_json();
  config["d_state"] = 64;
  std::ofstream(dir + "/config.json") << config.dump(2);
  c10::Dict<std::string, at::Tensor> dict;
  for (auto& [name, t] : model->state_dict()) dict.insert(name, t.detach().clone());
  std::vector<char> bytes = torch::pickle_save(c10::IValue(dict));
  std::ofstream(dir + "/pytorch_model.bin", std::ios::binary).write(bytes.data(), bytes.size());
  small_vocab().save(dir + "/chunk_vocab_combined.json");

  ModelFolder folder = load_model_folder(dir);
  EXPECT_EQ(folder.config.d_state, 8);
  ASSERT_EQ(folder.warnings.size(), 1u);
  EXPECT_NE(folder.warnings[0].find("d_state = 64 but the tensors have 8"), std::string::npos) << folder.warnings[0];
  ASSERT_TRUE(folder.tokenizer.has_value());
  EXPECT_EQ(folder.tokenizer->vocab_size(), 12);
  EXPECT_TRUE(torch::equal(logits_of(model), logits_of(folder.model)));
}

// tests/data/python_i3 was written by PyTorch (tests/data/make_python_i3.py): a real
// torch.save'd pytorch_model.bin, a json.dump'd vocabulary and PyTorch's own logits from an
// independent implementation with the per-token hybrid loop. i3lab must reproduce them.
TEST(ModelFolder, ReproducesPyTorchLogitsForAFolderMadeByPyTorch) {
  const std::string dir = std::string(I3LAB_SOURCE_DIR) + "/tests/data/python_i3";
  ModelFolder folder = load_model_folder(dir);
  EXPECT_EQ(folder.config.d_state, 4);
  EXPECT_EQ(folder.config.n_hybrid, 2);
  EXPECT_EQ(folder.config.n_attn, 2);
  ASSERT_EQ(folder.warnings.size(), 1u);
  EXPECT_NE(folder.warnings[0].find("d_state = 64 but the tensors have 4"), std::string::npos);

  ASSERT_TRUE(folder.tokenizer.has_value());
  std::ifstream vocab_file(dir + "/chunk_vocab_combined.json");
  std::stringstream vocab_text;
  vocab_text << vocab_file.rdbuf();
  EXPECT_EQ(folder.tokenizer->to_json(), vocab_text.str()) << "vocabulary JSON differs from Python's json.dump";

  std::ifstream expected_file(dir + "/expected.json");
  nlohmann::json expected = nlohmann::json::parse(expected_file);
  std::vector<int64_t> ids = expected["ids"].get<std::vector<int64_t>>();
  torch::NoGradGuard no_grad;
  torch::Tensor logits = folder.model->forward(torch::tensor(ids).view({1, -1}))[0];  // [T,V]
  std::vector<std::vector<double>> rows = expected["logits"].get<std::vector<std::vector<double>>>();
  torch::Tensor reference = torch::empty({static_cast<int64_t>(rows.size()), 12}, torch::kFloat64);
  for (size_t t = 0; t < rows.size(); ++t)
    for (size_t v = 0; v < rows[t].size(); ++v) reference[t][v] = rows[t][v];
  const double diff = (logits.to(torch::kFloat64) - reference).abs().max().item<double>();
  RecordProperty("max_abs_diff", ::testing::PrintToString(diff));
  EXPECT_GT(reference.abs().max().item<double>(), 0.5);
  EXPECT_LE(diff, 1e-5);
}

TEST(ModelFolder, BrokenFoldersGetErrorsNamingTheProblem) {
  torch::manual_seed(2);
  I3Model model(tiny(12));
  ChunkTokenizer tok = small_vocab();
  auto fresh = [&](const std::string& name) {
    std::string dir = test_path(name);
    save_model_folder(dir, model, &tok);
    return dir;
  };
  auto rewrite_weights = [&](const std::string& dir, auto edit) {
    auto tensors = read_weights(dir);
    edit(&tensors);
    safetensors::save(dir + "/model.safetensors", tensors);
  };

  EXPECT_NE(error_of(test_path("none")).find("no such directory"), std::string::npos);

  std::string dir = fresh("noconfig");
  fs::remove(dir + "/config.json");
  EXPECT_NE(error_of(dir).find("config.json: cannot open"), std::string::npos) << error_of(dir);

  dir = fresh("badjson");
  std::ofstream(dir + "/config.json") << "{\"vocab_size\": ";
  EXPECT_NE(error_of(dir).find("config.json: not valid JSON"), std::string::npos);

  dir = fresh("noweights");
  fs::remove(dir + "/model.safetensors");
  EXPECT_NE(error_of(dir).find("no model.safetensors or pytorch_model.bin"), std::string::npos);

  dir = fresh("truncated");
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 100);
  EXPECT_NE(error_of(dir).find("model.safetensors: tensor"), std::string::npos) << error_of(dir);

  dir = fresh("missing");
  rewrite_weights(dir, [](auto* t) { t->erase(t->begin() + 5); });
  EXPECT_NE(error_of(dir).find("weights lack tensor"), std::string::npos) << error_of(dir);

  dir = fresh("extra");
  rewrite_weights(dir, [](auto* t) { t->emplace_back("layers.0.hybrid.extra_thing", torch::ones({1})); });
  EXPECT_NE(error_of(dir).find("unexpected tensor \"layers.0.hybrid.extra_thing\""), std::string::npos) << error_of(dir);

  dir = fresh("misshaped");
  rewrite_weights(dir, [](auto* t) {
    for (auto& [name, tensor] : *t)
      if (name == "layers.1.ffn.2.bias") tensor = torch::zeros({31});
  });
  EXPECT_NE(error_of(dir).find("tensor layers.1.ffn.2.bias has shape [31]"), std::string::npos) << error_of(dir);

  dir = fresh("bigvocab");
  std::vector<std::string> chunks = {"<UNK>"};
  for (int i = 0; i < 20; ++i) chunks.push_back("c" + std::to_string(i));
  ChunkTokenizer(chunks).save(dir + "/tokenizer.json");
  EXPECT_NE(error_of(dir).find("more than the model's 12 embedding rows"), std::string::npos) << error_of(dir);

  dir = fresh("badpickle");
  fs::remove(dir + "/model.safetensors");
  std::ofstream(dir + "/pytorch_model.bin") << "not a pickle";
  EXPECT_NE(error_of(dir).find("pytorch_model.bin: too short to be a torch.save zip archive"), std::string::npos)
      << error_of(dir);
}

}  // namespace
}  // namespace i3
