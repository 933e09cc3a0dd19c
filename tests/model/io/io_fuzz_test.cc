// Hostile weight files and model folders: the inputs that once crashed, hung or exhausted
// i3lab (each named after what it did), then seeded random mutations of real files. Every
// input must end in the reader's own error type with a message, never a crash, a hang, an
// exception of another type (a LibTorch error means a check is missing) or a huge allocation.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "model/io/model_folder.h"
#include "model/io/safetensors.h"
#include "model/io/torch_checkpoint.h"
#include "tests/fuzz.h"
#include "tests/test_paths.h"

namespace fs = std::filesystem;

namespace i3 {
namespace {

using fuzz::op::binunicode;

std::string safetensors_error(const std::string& path) {
  try {
    safetensors::load(path);
  } catch (const safetensors::FormatError& e) {
    return e.what();
  }
  return "";
}

std::string checkpoint_error(const std::string& path) {
  try {
    load_torch_state_dict(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

std::string folder_error(const std::string& dir) {
  try {
    load_model_folder(dir);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

// A safetensors file of float32 tensors: (name, shape), each filled with zeros.
std::string safetensors_bytes(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors) {
  std::vector<safetensors::TensorInfo> infos;
  for (const auto& [name, shape] : tensors) infos.push_back({name, safetensors::DType::F32, shape});
  std::string out = safetensors::make_header(&infos, {});
  out.resize(out.size() + (infos.empty() ? 0 : infos.back().end), '\0');
  return out;
}

ModelConfig tiny() {
  ModelConfig c = preset("i3-tiny");
  c.vocab_size = 12;
  return c;
}

// A model folder whose config.json says `config` and whose weights are `weights`.
std::string folder_with(const std::string& name, const ModelConfig& config, const std::string& weights_file,
                        const std::string& weights) {
  const std::string dir = test_path(name);
  write_file(dir + "/config.json", config.to_published_json().dump());
  write_file(dir + "/" + weights_file, weights);
  return dir;
}

#define EXPECT_HAS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(HostileWeights, AHugeTensorNameIsRefusedWithoutRecursion) {
  // Was: std::regex recursed once per character of a 50,000-character layer name.
  const std::string long_name = "layers.0.hybrid." + std::string(60000, 'x');
  const std::string path = test_path("long.safetensors");
  write_file(path, safetensors_bytes({{long_name, {1}}}));
  EXPECT_HAS(safetensors_error(path), "over the limit of 1024");

  const std::string dir = folder_with("long_bin", tiny(), "pytorch_model.bin",
                                      fuzz::torch_archive(fuzz::one_tensor_pickle(long_name, 1, 0, {1}, {1}),
                                                          {{"0", std::string(4, '\0')}}));
  EXPECT_HAS(folder_error(dir), "over the limit of 1024");

  // Within the limit, a name that only starts like a layer is an unexpected tensor.
  auto all_and = [](const std::string& name) {
    auto tensors = parameter_shapes(tiny());
    tensors.push_back({name, {1}});
    return safetensors_bytes(tensors);
  };
  const std::string odd = "layers.0.hybrid." + std::string(1000, 'x');
  EXPECT_HAS(folder_error(folder_with("odd", tiny(), "model.safetensors", all_and(odd))),
             "unexpected tensor \"layers.0.hybrid.xxxx");
  // A layer index of 20 digits: was "error: stoll".
  const std::string index =
      folder_with("index", tiny(), "model.safetensors", all_and("layers.99999999999999999999.attn.x"));
  EXPECT_HAS(folder_error(index), "names a layer past i3lab's limit of 1024 layers");
}

TEST(HostileWeights, DeepPicklesAreRefusedAndTornDownWithoutRecursion) {
  using namespace fuzz::op;
  const std::string path = test_path("deep.bin");
  // Tuples nested 100,000 deep: "((((…tttt".
  write_file(path, fuzz::torch_archive(proto() + std::string(100000, '(') + std::string(100000, 't') + kStop));
  EXPECT_HAS(checkpoint_error(path), "nests containers more than 128 deep");
  // Lists nested 100,000 deep: "]]]]…aaaa".
  write_file(path, fuzz::torch_archive(proto() + std::string(100000, ']') + std::string(99999, 'a') + kStop));
  EXPECT_HAS(checkpoint_error(path), "nests containers more than 128 deep");
  // A chain of 100,000 lists, each appended to its parent through the memo after the parent
  // was placed, so no depth is seen; only its parent holds each list. Freeing it must not
  // recurse. The pickle's value is an empty dict: an empty state dict.
  std::string chain = proto() + kEmptyList + binput(0) + global("collections", "OrderedDict") + binput(1);
  for (int i = 0; i < 100000; ++i)
    chain += binget(1) + binget(0) + kEmptyList + binput(0) + kAppend + tuple1() + kReduce;
  chain += kStop;
  write_file(path, fuzz::torch_archive(chain));
  EXPECT_TRUE(load_torch_state_dict(path).empty());
}

TEST(HostileWeights, MarkUnderflowIsAnError) {
  using namespace fuzz::op;
  // Was: TUPLE2 took values from below the MARK, then 't' built a vector from past its end.
  const std::string path = test_path("mark.bin");
  write_file(path, fuzz::torch_archive(proto() + "NN(" + "\x86" + kTuple + kStop));
  EXPECT_HAS(checkpoint_error(path), "stack underflow");
  write_file(path, fuzz::torch_archive(proto() + kEmptyList + "(" + "N" + kAppend + kStop));
  EXPECT_HAS(checkpoint_error(path), "stack underflow");
}

TEST(HostileWeights, ViewsAndStoragesCannotDescribeMoreThanTheFileHolds) {
  const std::string path = test_path("view.bin");
  const std::string four_bytes(4, '\0');
  // Was: size [2^30], stride [0] over a one-element storage allocated 4 GB.
  write_file(path, fuzz::torch_archive(fuzz::one_tensor_pickle("w", 1, 0, {int64_t{1} << 30}, {0}), {{"0", four_bytes}}));
  EXPECT_HAS(checkpoint_error(path), "more elements than the file's storages");
  // A storage numel that overflows numel × 4 into the 4 bytes there are.
  write_file(path, fuzz::torch_archive(fuzz::one_tensor_pickle("w", (int64_t{1} << 62) + 1, 0, {1}, {1}),
                                       {{"0", four_bytes}}));
  EXPECT_HAS(checkpoint_error(path), "holds 4 bytes, but the pickle says");
  // Sizes and strides whose reach overflows int64.
  write_file(path, fuzz::torch_archive(fuzz::one_tensor_pickle("w", 1, 0, {INT64_MAX, 2}, {INT64_MAX, 1}),
                                       {{"0", four_bytes}}));
  EXPECT_HAS(checkpoint_error(path), "overflow");
  // A view past the storage's end.
  write_file(path, fuzz::torch_archive(fuzz::one_tensor_pickle("w", 1, 1, {1}, {1}), {{"0", four_bytes}}));
  EXPECT_HAS(checkpoint_error(path), "runs outside the storage's 1 elements");
}

TEST(HostileWeights, ZeroElementTensorsDoNotSetHugeShapes) {
  // Was: a [33554432, 0] pos_embed, a [2^62, 0] FFN weight or a [2^20, 0] hybrid.A set the
  // model's shape, and i3lab allocated 4 GB to 4 TB before comparing shapes.
  ModelConfig c = tiny();
  std::vector<std::pair<std::string, std::vector<int64_t>>> base;
  for (const auto& [name, shape] : parameter_shapes(c)) base.push_back({name, shape});
  auto with = [&](const std::string& name, std::vector<int64_t> shape) {
    auto tensors = base;
    for (auto& t : tensors)
      if (t.first == name) t.second = shape;
    return safetensors_bytes(tensors);
  };
  EXPECT_HAS(folder_error(folder_with("pos", c, "model.safetensors", with("pos_embed.weight", {33554432, 0}))),
             "context is 33554432, over i3lab's limit");
  EXPECT_HAS(folder_error(folder_with("ffn", c, "model.safetensors",
                                      with("layers.0.ffn.0.weight", {int64_t{1} << 62, 0}))),
             "ffn_mult");
  EXPECT_HAS(folder_error(folder_with("A", c, "model.safetensors", with("layers.0.hybrid.A", {1 << 20, 0}))),
             "d_state is 1048576, over i3lab's limit");
}

#if !defined(__SANITIZE_ADDRESS__)  // ASan reserves terabytes of address space itself
// In a death test's child: limits the address space to what is mapped now plus 1 GiB, loads
// `dir`, prints the error and exits 3.
[[noreturn]] void load_with_one_more_gib(const std::string& dir) {
  std::ifstream status("/proc/self/status");
  uint64_t vm_kb = 0;
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmSize:", 0) == 0) vm_kb = std::stoull(line.substr(7));
  const rlim_t limit = (vm_kb + (1u << 20)) * 1024;
  const rlimit rl{limit, limit};
  setrlimit(RLIMIT_AS, &rl);
  std::cerr << folder_error(dir);
  std::exit(3);
}
#endif

// Within every limit, a 4 KB file whose shapes make a 4 GB model: refused before the model
// is built, which the address-space limit of the child process proves (the allocation
// would fail there with another message).
TEST(HostileWeights, ShapesAreCheckedBeforeTheModelIsBuilt) {
  ModelConfig c;
  c.vocab_size = 1, c.d_model = 1024, c.n_heads = 1, c.d_state = 1, c.n_hybrid = 1, c.n_attn = 0, c.ffn_mult = 1;
  c.context = 1 << 20;
  const std::string dir = folder_with("big", c, "model.safetensors",
                                      safetensors_bytes({{"embed.weight", {1, 1024}},
                                                         {"pos_embed.weight", {1 << 20, 0}},
                                                         {"layers.0.hybrid.A", {1, 1}},
                                                         {"layers.0.ffn.0.weight", {1024, 0}}}));
  EXPECT_HAS(folder_error(dir), "tensor pos_embed.weight has shape [1048576, 0], the model needs [1048576, 1024]");
#if !defined(__SANITIZE_ADDRESS__)
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(load_with_one_more_gib(dir), ::testing::ExitedWithCode(3), "the model needs \\[1048576, 1024\\]");
#endif
}

TEST(HostileWeights, FifosAndDevicesAreRefusedWithoutBlocking) {
  // Was: a FIFO named model.safetensors blocked forever; a link to /dev/zero was read whole.
  const std::string dir = folder_with("fifo", tiny(), "config.json", tiny().to_published_json().dump());
  ASSERT_EQ(::mkfifo((dir + "/model.safetensors").c_str(), 0600), 0);
  EXPECT_HAS(folder_error(dir), "is not a regular file");
  fs::remove(dir + "/model.safetensors");
  fs::create_symlink("/dev/zero", dir + "/model.safetensors");
  EXPECT_HAS(folder_error(dir), "is not a regular file");
  fs::remove(dir + "/model.safetensors");
  fs::create_symlink("/dev/zero", dir + "/pytorch_model.bin");
  EXPECT_HAS(folder_error(dir), "is not a regular file");
  fs::remove(dir + "/pytorch_model.bin");
  fs::create_directory(dir + "/model.safetensors");
  EXPECT_HAS(folder_error(dir), "is a directory");
}

// ---------------------------------------------------------------------------------------------
// Random mutations of real files, seeded: each must load or give the reader's own error.

constexpr int kIterations = 1500;

TEST(FuzzWeights, SafetensorsReader) {
  torch::manual_seed(0);
  I3Model model(tiny());
  const std::string seed_path = test_path("seed.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> tensors = model->state_dict();
  safetensors::save(seed_path, tensors, {{"format", "pt"}});
  std::vector<std::string> seeds = {file_contents(seed_path)};
  for (const auto& [name, bytes] : fuzz::corpus("safetensors")) seeds.push_back(bytes);
  const std::vector<std::string> dictionary = {"[", "]", "{", "}", "\"shape\":", "\"data_offsets\":", "18446744073709551615",
                                               "9223372036854775807", "-1", "0,", "\"F32\"", "\"dtype\":\"BF16\"", "\"__metadata__\":{}"};
  std::mt19937_64 rng(20261124);
  const std::string path = test_path("mutant.safetensors");
  int loaded = 0;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    const std::string bytes = fuzz::mutate_n(seeds[i % seeds.size()], rng, dictionary, 1 + static_cast<int>(rng() % 3));
    write_file(path, bytes);
    try {
      safetensors::load(path);
      ++loaded;
    } catch (const safetensors::FormatError& e) {
      ASSERT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
    }
  }
  RecordProperty("loaded", loaded);
}

TEST(FuzzWeights, TorchCheckpointReader) {
  torch::manual_seed(0);
  I3Model model(tiny());
  c10::Dict<std::string, at::Tensor> dict;
  for (auto& [name, t] : model->state_dict()) dict.insert(name, t.detach().clone());
  const std::vector<char> saved = torch::pickle_save(c10::IValue(dict));
  std::vector<std::string> seeds = {std::string(saved.begin(), saved.end())};
  for (const char* name : {"state_dict.bin", "nested.bin", "evil.bin"})
    seeds.push_back(file_contents(std::string(I3LAB_SOURCE_DIR) + "/tests/data/torch_save/" + name));
  for (const auto& [name, bytes] : fuzz::corpus("torch_checkpoint")) seeds.push_back(bytes);
  std::mt19937_64 rng(20261125);
  const std::string path = test_path("mutant.bin");
  int loaded = 0;
  for (int i = 0; i < kIterations; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    std::string bytes = seeds[i % seeds.size()];
    // Mutate inside data.pkl mostly: the zip around it only guards the way in.
    const size_t pkl = bytes.find("data.pkl");
    if (pkl != std::string::npos && rng() % 4 != 0) {
      const size_t at = std::min(bytes.size(), pkl + 8 + static_cast<size_t>(rng() % 2000));
      bytes = bytes.substr(0, at) + fuzz::mutate(bytes.substr(at, 1 + rng() % 64), rng) + bytes.substr(std::min(bytes.size(), at + 1 + rng() % 64));
    } else {
      bytes = fuzz::mutate_n(bytes, rng, {}, 1 + static_cast<int>(rng() % 3));
    }
    write_file(path, bytes);
    try {
      load_torch_state_dict(path);
      ++loaded;
    } catch (const CheckpointError& e) {
      ASSERT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
    }
  }
  RecordProperty("loaded", loaded);
}

TEST(FuzzWeights, ModelFolderLoader) {
  torch::manual_seed(0);
  I3Model model(tiny());
  VocabBuilder vocab;
  vocab.add_text("once upon a time there was a hostile file");
  const ChunkTokenizer tok = vocab.build();
  const std::string seed_dir = test_path("seed");
  save_model_folder(seed_dir, model, &tok);
  const std::string files[] = {"config.json", "tokenizer.json", "model.safetensors"};
  const std::vector<std::string> json_dictionary = {"[", "]", "{", "}", "\"", "1e400", "-1", "0", "65536",
                                                    "9223372036854775807", "18446744073709551616", ",\"n_heads\":3",
                                                    "\"d_model\":", "null", "\"\\ud800\""};
  std::mt19937_64 rng(20261126);
  const std::string dir = test_path("mutant");
  int loaded = 0;
  for (int i = 0; i < kIterations / 3; ++i) {
    SCOPED_TRACE("iteration " + std::to_string(i));
    fs::remove_all(dir);
    fs::copy(seed_dir, dir);
    const std::string& file = files[i % 3];
    write_file(dir + "/" + file,
               fuzz::mutate_n(file_contents(seed_dir + "/" + file), rng, json_dictionary, 1 + static_cast<int>(rng() % 4)));
    try {
      load_model_folder(dir);
      ++loaded;
    } catch (const std::runtime_error& e) {
      ASSERT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
    }
  }
  RecordProperty("loaded", loaded);
}

}  // namespace
}  // namespace i3
