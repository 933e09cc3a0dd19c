#include "model/io/safetensors.h"

#include <cstdio>
#include <cstring>
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
  std::string bytes;
  try {
    bytes = util::read_file(path);
  } catch (const std::runtime_error& e) {
    throw FormatError(e.what());
  }
  Header header;
  try {
    header = parse_header(bytes, bytes.size());
  } catch (const FormatError& e) {
    throw FormatError(path + ": " + e.what());
  }
  TensorFile file;
  file.metadata = header.metadata;
  for (const auto& info : header.tensors) {
    const char* data = bytes.data() + header.data_start + info.begin;
    torch::Tensor t = torch::empty(info.shape, torch::TensorOptions().dtype(to_torch(info.dtype)));
    std::memcpy(t.data_ptr(), data, info.end - info.begin);
    file.tensors.emplace_back(info.name, std::move(t));
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
