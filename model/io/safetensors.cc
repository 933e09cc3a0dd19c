#include "model/io/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "common/util/files.h"

namespace safetensors {
namespace {

torch::Dtype to_torch(DType dtype) {
  switch (dtype) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
  }
  throw FormatError("unsupported dtype");
}

DType from_torch(torch::Dtype dtype, const std::string& name) {
  switch (dtype) {
    case torch::kFloat64: return DType::F64;
    case torch::kFloat32: return DType::F32;
    case torch::kFloat16: return DType::F16;
    case torch::kBFloat16: return DType::BF16;
    case torch::kInt64: return DType::I64;
    case torch::kInt32: return DType::I32;
    case torch::kInt16: return DType::I16;
    case torch::kInt8: return DType::I8;
    case torch::kUInt8: return DType::U8;
    case torch::kBool: return DType::BOOL;
    default: throw std::invalid_argument("tensor \"" + name + "\": dtype has no safetensors equivalent");
  }
}

}  // namespace

TensorFile load(const std::string& path) {
  TensorFile file;
  try {
    // The header first, checked whole, so that nothing is allocated for a file that lies;
    // then each tensor's bytes straight into its storage.
    const util::RegularFile in(path);
    std::string prefix(std::min<uint64_t>(in.size(), 8), '\0');
    in.read_at(0, prefix.data(), prefix.size());
    const uint64_t n = header_length(prefix, in.size());
    prefix.resize(8 + n);
    in.read_at(8, prefix.data() + 8, n);
    const Header header = parse_header(prefix, in.size());
    file.metadata = header.metadata;
    for (const auto& info : header.tensors) {
      torch::Tensor t = torch::empty(info.shape, torch::TensorOptions().dtype(to_torch(info.dtype)));
      in.read_at(header.data_start + info.begin, t.data_ptr(), info.end - info.begin);
      file.tensors.emplace_back(info.name, std::move(t));
    }
  } catch (const FormatError& e) {
    throw FormatError(path + ": " + e.what());
  } catch (const std::runtime_error& e) {  // util::RegularFile's errors name the path
    throw FormatError(e.what());
  }
  return file;
}

void save(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata) {
  std::vector<TensorInfo> infos;
  std::vector<torch::Tensor> contiguous;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw std::invalid_argument("a tensor cannot be named __metadata__");
    TensorInfo info;
    info.name = name;
    info.dtype = from_torch(tensor.scalar_type(), name);
    info.shape = tensor.sizes().vec();
    infos.push_back(info);
    contiguous.push_back(tensor.detach().to(torch::kCPU).contiguous());
  }
  const std::string header = make_header(&infos, metadata);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(tmp + ": cannot write");
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (size_t i = 0; i < contiguous.size(); ++i)
      out.write(static_cast<const char*>(contiguous[i].data_ptr()), static_cast<std::streamsize>(infos[i].end - infos[i].begin));
    if (!out.flush()) throw std::runtime_error(tmp + ": write failed (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename from " + tmp);
}

}  // namespace safetensors
