// Reading files written by Python's torch.save (fixtures: tests/data/make_torch_save_cases.py).
#include "model/io/torch_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace i3 {
namespace {

const std::string kDir = std::string(I3LAB_SOURCE_DIR) + "/tests/data/torch_save/";

std::string error_of(const std::string& path) {
  try {
    load_torch_state_dict(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

TEST(TorchCheckpoint, ReadsAStateDictAsPythonSavedIt) {
  auto entries = load_torch_state_dict(kDir + "state_dict.bin");
  std::vector<std::string> names;
  std::map<std::string, torch::Tensor> t;
  for (auto& [name, tensor] : entries) {
    names.push_back(name);
    t[name] = tensor;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "transposed", "bf16", "ids", "shared_a", "shared_b", "scalar", "param"}));
  torch::Tensor base = torch::arange(12, torch::kFloat32).view({3, 4});
  EXPECT_TRUE(torch::equal(t["weight"], base));
  EXPECT_TRUE(torch::equal(t["transposed"], base.t()));
  EXPECT_EQ(t["bf16"].scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(t["bf16"], torch::arange(6, torch::kBFloat16) / 4));
  EXPECT_EQ(t["ids"].scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(t["ids"], torch::arange(5, torch::kInt64) * -3));
  torch::Tensor shared = torch::arange(10, torch::kFloat64);
  EXPECT_TRUE(torch::equal(t["shared_a"], shared.slice(0, 2, 5)));
  EXPECT_TRUE(torch::equal(t["shared_b"], shared.slice(0, 6)));
  EXPECT_EQ(t["scalar"].dim(), 0);
  EXPECT_EQ(t["scalar"].item<float>(), 2.5f);
  EXPECT_TRUE(torch::equal(t["param"], torch::ones({2})));
}

TEST(TorchCheckpoint, FindsTheWeightsInsideATrainingCheckpoint) {
  auto entries = load_torch_state_dict(kDir + "nested.bin");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].first, "w");
  EXPECT_TRUE(torch::equal(entries[0].second, torch::ones({3})));
}

TEST(TorchCheckpoint, NeverRunsCodeTheFileNames) {
  std::string error = error_of(kDir + "evil.bin");
  EXPECT_NE(error.find("asks to build a posix.system"), std::string::npos) << error;
}

TEST(TorchCheckpoint, RejectsDamagedFiles) {
  const std::string tmp = ::testing::TempDir() + "/damaged.bin";
  std::filesystem::copy_file(kDir + "state_dict.bin", tmp, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(tmp, std::filesystem::file_size(tmp) / 2);
  EXPECT_NE(error_of(tmp).find(tmp + ": not a zip archive"), std::string::npos) << error_of(tmp);
  std::ofstream(tmp, std::ios::binary | std::ios::trunc) << std::string(100, 'x');
  EXPECT_NE(error_of(tmp).find("not a zip archive"), std::string::npos);
  EXPECT_NE(error_of(tmp + ".missing").find("cannot open"), std::string::npos);
  // Flip bytes inside the pickle: an error, never a crash or a silently different tensor.
  std::ifstream in(kDir + "state_dict.bin", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const size_t pkl = bytes.find("data.pkl") + 8 + 20;  // into the pickle of the first entry
  for (size_t i = 0; i < 200; ++i) {
    std::string damaged = bytes;
    damaged[pkl + (i * 37) % 1500] ^= static_cast<char>(0x5A + i);
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << damaged;
    try {
      load_torch_state_dict(tmp);
    } catch (const CheckpointError&) {
    }
  }
}

}  // namespace
}  // namespace i3
