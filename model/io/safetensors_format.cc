#include "model/io/safetensors_format.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>

#include "common/util/json.h"

namespace safetensors {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::BOOL, "BOOL", 1},
};

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");


std::string tensor_label(const std::string& name) { return "tensor " + util::brief(name, util::kQuoteChars); }

}  // namespace

const char* dtype_name(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.name;
  return "?";
}

size_t dtype_size(DType dtype) {
  for (const auto& d : kDTypes)
    if (d.dtype == dtype) return d.size;
  return 0;
}

DType dtype_from_name(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.dtype;
  throw FormatError("unknown dtype " + util::brief(name, util::kQuoteChars));
}

uint64_t header_length(std::string_view first8, uint64_t file_size) {
  if (file_size < 8 || first8.size() < 8) throw FormatError("file is shorter than the 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, first8.data(), 8);
  if (n > kMaxHeaderBytes)
    throw FormatError("header length " + std::to_string(n) + " is over the limit of " + std::to_string(kMaxHeaderBytes) +
                      " bytes (not a safetensors file?)");
  if (n > file_size - 8) throw FormatError("header length " + std::to_string(n) + " runs past the end of the file (truncated?)");
  return n;
}

Header parse_header(const std::string& prefix, uint64_t file_size) {
  const uint64_t n = header_length(prefix, file_size);
  if (prefix.size() < 8 + n) throw FormatError("header is incomplete");

  const std::string_view text(prefix.data() + 8, n);
  // A name twice would be merged silently by the parsed document (the last one winning).
  std::set<std::string> names;
  auto no_duplicates = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
        !names.insert(parsed.get_ref<const std::string&>()).second)
      throw FormatError(tensor_label(parsed.get_ref<const std::string&>()) + " appears twice in the header");
    return true;
  };
  nlohmann::json doc;
  try {
    doc = util::parse_json(text, "header", no_duplicates);
  } catch (const util::JsonError& e) {
    throw FormatError(e.what());
  }
  if (!doc.is_object()) throw FormatError("header is not a JSON object");

  Header header;
  header.data_start = 8 + n;
  const uint64_t data_size = file_size - header.data_start;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& name = it.key();
    const auto& entry = it.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) throw FormatError("__metadata__ is not an object");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        if (!m.value().is_string())
          throw FormatError("__metadata__[" + util::brief(m.key(), util::kQuoteChars) + "] is not a string");
        header.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string what = tensor_label(name);
    if (name.size() > kMaxTensorNameBytes)
      throw FormatError(what + ": the name is " + std::to_string(name.size()) + " bytes, over the limit of " +
                        std::to_string(kMaxTensorNameBytes) + "; rename the tensor");
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      throw FormatError(what + ": needs dtype, shape and data_offsets");
    if (!entry["dtype"].is_string()) throw FormatError(what + ": dtype is not a string");
    TensorInfo info;
    info.name = name;
    try {
      info.dtype = dtype_from_name(entry["dtype"].get<std::string>());
    } catch (const FormatError& e) {
      throw FormatError(what + ": " + e.what());
    }
    const auto& shape = entry["shape"];
    if (!shape.is_array()) throw FormatError(what + ": shape is not an array");
    if (shape.size() > kMaxTensorRank)
      throw FormatError(what + ": shape has " + std::to_string(shape.size()) + " dimensions, over the limit of " +
                        std::to_string(kMaxTensorRank));
    // numel: the true element count; extent: the product with zeros read as 1, which LibTorch
    // multiplies into strides even when the tensor is empty.
    uint64_t numel = 1, extent = 1;
    for (const auto& dim : shape) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > uint64_t{INT64_MAX})
        throw FormatError(what + ": shape has a non-integer, negative or huge dimension");
      const uint64_t d = dim.get<uint64_t>();
      info.shape.push_back(static_cast<int64_t>(d));
      numel *= d;  // cannot overflow: bounded by extent, checked below
      if (d != 0 && __builtin_mul_overflow(extent, d, &extent)) extent = UINT64_MAX;
      if (extent > uint64_t{INT64_MAX}) throw FormatError(what + ": shape is too large");
    }
    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      throw FormatError(what + ": data_offsets must be [begin, end] with non-negative integers");
    info.begin = offsets[0].get<uint64_t>();
    info.end = offsets[1].get<uint64_t>();
    if (info.end < info.begin) throw FormatError(what + ": data_offsets end before they begin");
    if (info.end > data_size)
      throw FormatError(what + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                        "] run past the " + std::to_string(data_size) + " data bytes in the file (truncated?)");
    uint64_t expected = 0;
    if (__builtin_mul_overflow(numel, dtype_size(info.dtype), &expected)) throw FormatError(what + ": shape is too large");
    if (info.end - info.begin != expected)
      throw FormatError(what + ": holds " + std::to_string(info.end - info.begin) + " bytes but " +
                        dtype_name(info.dtype) + " with this shape needs " + std::to_string(expected));
    header.tensors.push_back(std::move(info));
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t position = 0;
  for (const auto& t : header.tensors) {
    if (t.begin < position) throw FormatError(tensor_label(t.name) + " overlaps the tensor before it");
    if (t.begin > position)
      throw FormatError(tensor_label(t.name) + " starts at " + std::to_string(t.begin) + ", leaving a gap after byte " +
                        std::to_string(position));
    position = t.end;
  }
  if (position != data_size)
    throw FormatError(std::to_string(data_size - position) + " bytes after the last tensor are not described by the header");
  return header;
}

std::string make_header(std::vector<TensorInfo>* tensors, const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json doc = nlohmann::ordered_json::object();
  if (!metadata.empty()) doc["__metadata__"] = metadata;
  uint64_t position = 0;
  for (auto& t : *tensors) {
    uint64_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) bytes *= static_cast<uint64_t>(d);
    t.begin = position;
    t.end = position + bytes;
    position = t.end;
    doc[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {t.begin, t.end}}};
  }
  std::string json = doc.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  uint64_t n = json.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + json;
}

}  // namespace safetensors
