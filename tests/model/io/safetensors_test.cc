// safetensors: round trips and every way a file can be broken.
#include "model/io/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "tests/test_paths.h"

namespace safetensors {
namespace {

std::string file_bytes(const std::string& header_json, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header_json.size();
  std::memcpy(out.data(), &n, 8);
  return out + header_json + data;
}

// The error message of loading `bytes`, or "" if it loads.
std::string load_error(const std::string& bytes) {
  const std::string path = test_path("case.safetensors");
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  try {
    load(path);
  } catch (const FormatError& e) {
    std::string what = e.what();
    EXPECT_EQ(what.rfind(path + ": ", 0), 0u) << "error must name the file: " << what;
    return what;
  }
  return "";
}

TEST(Safetensors, RoundTripKeepsValuesShapesDtypesAndMetadata) {
  torch::manual_seed(1);
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", torch::randn({3, 4})},
      {"f64", torch::randn({5}, torch::kFloat64)},
      {"bf16", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"i64", torch::arange(6, torch::kLong).view({2, 3})},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(3.5)},
      {"empty", torch::zeros({0, 7})},
      {"strided", torch::randn({4, 6}).t()},  // non-contiguous input
  };
  const std::string path = test_path("rt.safetensors");
  save(path, tensors, {{"format", "pt"}});
  TensorFile file = load(path);
  EXPECT_EQ(file.metadata.at("format"), "pt");
  ASSERT_EQ(file.tensors.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(file.tensors[i].first, tensors[i].first);
    EXPECT_EQ(file.tensors[i].second.scalar_type(), tensors[i].second.scalar_type()) << tensors[i].first;
    EXPECT_EQ(file.tensors[i].second.sizes(), tensors[i].second.sizes()) << tensors[i].first;
    EXPECT_TRUE(torch::equal(file.tensors[i].second, tensors[i].second)) << tensors[i].first;
  }
  // The header is padded so the data section starts 8-byte aligned.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, AcceptsAHandWrittenValidFile) {
  EXPECT_EQ(load_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'))), "");
  EXPECT_EQ(load_error(file_bytes(R"({})", "")), "");
}

TEST(Safetensors, RejectsEveryCorruption) {
  const std::string ok_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}})";
  const std::string ok = file_bytes(ok_header, std::string(16, '\1'));
  ASSERT_EQ(load_error(ok), "");
  struct Case {
    const char* what;
    std::string bytes;
    const char* message;
  };
  const Case cases[] = {
      {"shorter than 8 bytes", "abc", "shorter than the 8-byte header length"},
      {"data truncated", ok.substr(0, ok.size() - 1), "run past the 15 data bytes"},
      {"header truncated", ok.substr(0, 20), "runs past the end of the file"},
      {"huge header length", std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8) + "{}", "over the limit"},
      {"not JSON", file_bytes("{\"a\":", ""), "not valid JSON"},
      {"not an object", file_bytes("[1,2]", ""), "not a JSON object"},
      {"unknown dtype", file_bytes(R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x"), "unknown dtype \"F8\""},
      {"missing field", file_bytes(R"({"a":{"dtype":"F32","shape":[1]}})", "xxxx"), "needs dtype, shape and data_offsets"},
      {"size mismatch", file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')), "holds 8 bytes but F32 with this shape needs 12"},
      {"mis-typed (I64 for 4 bytes)", file_bytes(R"({"a":{"dtype":"I64","shape":[1],"data_offsets":[0,4]}})", std::string(4, '\0')), "needs 8"},
      {"overlap", file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", std::string(12, '\0')), "overlaps"},
      {"gap", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})", std::string(12, '\0')), "leaving a gap"},
      {"trailing bytes", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(6, '\0')), "2 bytes after the last tensor"},
      {"duplicate name", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')), "appears twice"},
      {"negative dimension", file_bytes(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, '\0')), "negative"},
      {"offsets reversed", file_bytes(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", std::string(4, '\0')), "end before they begin"},
      {"offsets not integers", file_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}})", std::string(4, '\0')), "data_offsets must be"},
      {"metadata not strings", file_bytes(R"({"__metadata__":{"k":1}})", ""), "__metadata__[\"k\"] is not a string"},
      {"overflowing shape", file_bytes(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})", std::string(4, '\0')), "too large"},
  };
  for (const auto& c : cases) {
    std::string error = load_error(c.bytes);
    EXPECT_NE(error.find(c.message), std::string::npos) << c.what << ": got \"" << error << "\"";
  }
}

TEST(Safetensors, SaveReplacesAtomically) {
  const std::string path = test_path("atomic.safetensors");
  save(path, {{"x", torch::ones({2})}});
  save(path, {{"y", torch::zeros({3})}});
  TensorFile file = load(path);
  ASSERT_EQ(file.tensors.size(), 1u);
  EXPECT_EQ(file.tensors[0].first, "y");
  std::ifstream tmp(path + ".tmp");
  EXPECT_FALSE(tmp.good()) << "temporary file left behind";
}

}  // namespace
}  // namespace safetensors
