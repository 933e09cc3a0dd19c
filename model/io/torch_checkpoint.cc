#include "model/io/torch_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "common/util/files.h"
#include "common/util/json.h"
#include "model/io/safetensors_format.h"

namespace i3 {
namespace {

// Limits of the pickle reader (docs/limits.md). A state dict's data.pkl is small (i3-80M's:
// ~20 KB for 208 tensors, depth 4, ~2,000 values); these bound the memory and the nesting a
// hostile pickle can make, far above any real checkpoint.
constexpr uint64_t kMaxPickleBytes = 64u << 20;
constexpr size_t kMaxPickleValues = size_t{1} << 22;  // values created, and memo slots
constexpr int kMaxPickleDepth = 128;                   // containers inside containers

// ---------------------------------------------------------------------------------------------
// Zip: only what torch.save writes (stored entries, no compression, no zip64). Only the central
// directory and the local headers are read here; entries are read when needed, storages
// straight into their tensors, so memory follows the storages, not the file twice.

uint32_t u16(const std::string& b, size_t at) { return uint8_t(b[at]) | uint8_t(b[at + 1]) << 8; }
uint32_t u32(const std::string& b, size_t at) { return u16(b, at) | u16(b, at + 2) << 16; }

struct ZipEntry {
  uint64_t offset = 0, size = 0;  // of the entry's data in the file
};
using ZipEntries = std::map<std::string, ZipEntry>;

std::string read_bytes(const util::RegularFile& file, uint64_t offset, uint64_t size) {
  std::string out(size, '\0');
  file.read_at(offset, out.data(), out.size());
  return out;
}

ZipEntries zip_entries(const util::RegularFile& file) {
  auto fail = [&](const std::string& what) { return CheckpointError(file.path() + ": " + what); };
  const uint64_t file_size = file.size();
  if (file_size < 22) throw fail("too short to be a torch.save zip archive");
  // The end-of-central-directory record is in the last 22 + 65535 bytes.
  const uint64_t tail_at = file_size - std::min<uint64_t>(file_size, 22 + 65535);
  const std::string tail = read_bytes(file, tail_at, file_size - tail_at);
  size_t eocd = std::string::npos;  // in `tail`
  for (size_t i = tail.size() - 22 + 1; i-- > 0;)
    if (u32(tail, i) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd == std::string::npos) throw fail("not a zip archive (the legacy pre-1.6 torch.save format is not supported)");
  const uint32_t count = u16(tail, eocd + 10), cd_size = u32(tail, eocd + 12), cd_offset = u32(tail, eocd + 16);
  if (count == 0xFFFF || cd_offset == 0xFFFFFFFF) throw fail("zip64 archives (over 4 GB) are not supported");
  const uint64_t eocd_at = tail_at + eocd;
  if (uint64_t(cd_offset) + cd_size > eocd_at) throw fail("zip central directory out of bounds");
  const std::string cd = read_bytes(file, cd_offset, cd_size);  // the directory as the record sizes it
  ZipEntries entries;
  size_t at = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (at + 46 > cd.size() || u32(cd, at) != 0x02014b50) throw fail("corrupt zip central directory");
    const uint32_t method = u16(cd, at + 10), size = u32(cd, at + 20);
    const uint32_t name_len = u16(cd, at + 28), extra_len = u16(cd, at + 30), comment_len = u16(cd, at + 32);
    const uint32_t local = u32(cd, at + 42);
    if (at + 46 + name_len > cd.size()) throw fail("corrupt zip central directory");
    std::string name = cd.substr(at + 46, name_len);
    if (method != 0) throw fail("zip entry " + name + " is compressed; torch.save writes stored entries");
    if (uint64_t(local) + 30 > file_size) throw fail("corrupt zip entry " + name);
    const std::string header = read_bytes(file, local, 30);
    if (u32(header, 0) != 0x04034b50) throw fail("corrupt zip entry " + name);
    // The local header has its own extra field (torch pads it to align the data).
    const uint64_t data = uint64_t(local) + 30 + u16(header, 26) + u16(header, 28);
    if (data + size > file_size) throw fail("zip entry " + name + " runs past the end of the file (truncated?)");
    entries[std::move(name)] = {data, size};
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

// ---------------------------------------------------------------------------------------------
// The pickle machine's values.

struct PyValue;
using Value = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Tensor, Global, Storage } kind;
  int64_t i = 0;  // Bool, Int
  double f = 0;
  std::string s;  // String; Global: "module.name"; Storage: its record key
  std::vector<Value> items;                     // Tuple, List
  std::vector<std::pair<Value, Value>> entries; // Dict, in insertion order
  torch::Tensor tensor;                         // Tensor; Storage: its data, flat
  int depth = 0;  // containers below this one, as far as the pickle's order shows

  // Frees what hangs below iteratively: the default destructor would recurse once per level
  // and overflow the stack on a pickle nested 100,000 deep. (A container the pickle made part
  // of itself through the memo is a cycle, never freed before the process ends: memory the
  // file described, bounded by kMaxPickleValues.)
  ~PyValue() {
    std::vector<Value> pending;
    release_into(pending);
    while (!pending.empty()) {
      Value v = std::move(pending.back());
      pending.pop_back();
      if (v && v.use_count() == 1) v->release_into(pending);
    }  // v dies here with nothing below it
  }
  void release_into(std::vector<Value>& pending) {
    for (auto& item : items) pending.push_back(std::move(item));
    for (auto& [k, v] : entries) pending.push_back(std::move(k)), pending.push_back(std::move(v));
    items.clear();
    entries.clear();
  }
};

// `container` now holds `child`: refuses nesting past kMaxPickleDepth.
void note_child(PyValue& container, const Value& child) {
  if (child->depth + 1 > container.depth) container.depth = child->depth + 1;
  if (container.depth > kMaxPickleDepth)
    throw std::runtime_error("pickle nests containers more than " + std::to_string(kMaxPickleDepth) +
                             " deep; a state dict needs 4");
}

torch::Dtype storage_dtype(const std::string& global) {
  static const std::map<std::string, torch::Dtype> types = {
      {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool}};
  auto it = types.find(global);
  if (it == types.end()) throw std::runtime_error("unsupported storage type " + global);
  return it->second;
}

class Unpickler {
 public:
  // `pickle`: the bytes of ARCHIVE/data.pkl; storages are read from `file` when the pickle
  // names them.
  Unpickler(std::string pickle, const util::RegularFile& file, const ZipEntries& entries, const std::string& archive)
      : pickle_(std::move(pickle)), file_(file), entries_(entries), archive_(archive), end_(pickle_.size()) {}

  Value run() {
    while (true) {
      const uint8_t op = byte();
      switch (op) {
        case 0x80: byte(); break;                 // PROTO
        case 0x95: take(8); break;                // FRAME
        case '.': return pop();                   // STOP
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case 'N': stack_.push_back(make(PyValue::Kind::None)); break;
        case 0x88: case 0x89: {                   // NEWTRUE, NEWFALSE
          auto v = make(PyValue::Kind::Bool);
          v->i = op == 0x88;
          stack_.push_back(v);
          break;
        }
        case 'K': push_int(byte()); break;        // BININT1
        case 'M': push_int(le(2)); break;         // BININT2
        case 'J': push_int(static_cast<int32_t>(le(4))); break;  // BININT
        case 0x8a: {                              // LONG1: n-byte two's complement
          const size_t n = byte();
          if (n > 8) throw std::runtime_error("integer too large");
          uint64_t v = le(n);
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t(0) << (8 * n);
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {                               // BINFLOAT, big-endian
          uint64_t bits = 0;
          for (char c : take(8)) bits = bits << 8 | uint8_t(c);
          auto v = make(PyValue::Kind::Float);
          std::memcpy(&v->f, &bits, 8);
          stack_.push_back(v);
          break;
        }
        case 'X': push_string(take(le(4))); break;      // BINUNICODE
        case 0x8c: push_string(take(byte())); break;    // SHORT_BINUNICODE
        case 0x8d: push_string(take(le(8))); break;     // BINUNICODE8
        case 'c': {                               // GLOBAL "module\nname\n"
          std::string module = line(), name = line();
          push_global(module + "." + name);
          break;
        }
        case 0x93: {                              // STACK_GLOBAL
          Value name = pop(), module = pop();
          push_global(module->s + "." + name->s);
          break;
        }
        case 'q': memo(byte()); break;            // BINPUT
        case 'r': memo(le(4)); break;             // LONG_BINPUT
        case 0x94: memo(memo_.size()); break;     // MEMOIZE
        case 'h': push_memo(byte()); break;       // BINGET
        case 'j': push_memo(le(4)); break;        // LONG_BINGET
        case ')': stack_.push_back(make(PyValue::Kind::Tuple)); break;
        case 't': stack_.push_back(collect(PyValue::Kind::Tuple, pop_mark())); break;
        case 0x85: case 0x86: case 0x87: {        // TUPLE1..3
          const size_t n = op - 0x84;
          if (stack_.size() < floor() + n) throw std::runtime_error("stack underflow");
          std::vector<Value> items(stack_.end() - n, stack_.end());
          stack_.resize(stack_.size() - n);
          stack_.push_back(collect(PyValue::Kind::Tuple, items));
          break;
        }
        case ']': stack_.push_back(make(PyValue::Kind::List)); break;
        case 'a': {                               // APPEND
          Value v = pop();
          const Value& list = expect(top(), PyValue::Kind::List);
          note_child(*list, v);
          list->items.push_back(v);
          break;
        }
        case 'e': {                               // APPENDS
          auto items = pop_mark();
          const Value& list = expect(top(), PyValue::Kind::List);
          for (const auto& v : items) note_child(*list, v);
          list->items.insert(list->items.end(), items.begin(), items.end());
          break;
        }
        case '}': stack_.push_back(make(PyValue::Kind::Dict)); break;
        case 's': {                               // SETITEM
          Value v = pop(), k = pop();
          const Value& dict = expect(top(), PyValue::Kind::Dict);
          note_child(*dict, k);
          note_child(*dict, v);
          dict->entries.emplace_back(k, v);
          break;
        }
        case 'u': {                               // SETITEMS
          auto items = pop_mark();
          if (items.size() % 2) throw std::runtime_error("odd SETITEMS");
          const Value& dict = expect(top(), PyValue::Kind::Dict);
          for (const auto& v : items) note_child(*dict, v);
          for (size_t i = 0; i < items.size(); i += 2) dict->entries.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'Q': stack_.push_back(persistent_load(pop())); break;  // BINPERSID
        case 'R': case 0x81: {                    // REDUCE, NEWOBJ
          Value args = pop(), callable = pop();
          stack_.push_back(call(callable, args));
          break;
        }
        case 'b': {                               // BUILD: OrderedDict's `_metadata` only
          pop();
          if (top()->kind != PyValue::Kind::Dict) throw std::runtime_error("BUILD on an unsupported object");
          break;
        }
        default: {
          std::ostringstream msg;
          msg << "unsupported pickle opcode 0x" << std::hex << int(op) << " at byte " << std::dec << pos_ - 1;
          throw std::runtime_error(msg.str());
        }
      }
    }
  }

 private:
  uint8_t byte() {
    if (pos_ >= end_) throw std::runtime_error("pickle ends early");
    return static_cast<uint8_t>(pickle_[pos_++]);
  }
  std::string take(uint64_t n) {
    if (n > end_ - pos_) throw std::runtime_error("pickle ends early");
    std::string out = pickle_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint64_t le(size_t n) {
    uint64_t v = 0;
    std::string b = take(n);
    for (size_t i = n; i-- > 0;) v = v << 8 | uint8_t(b[i]);
    return v;
  }
  std::string line() {
    std::string out;
    for (char c; (c = static_cast<char>(byte())) != '\n';) out += c;
    return out;
  }
  // As in Python's unpickler, a MARK starts a new stack: what lies below the last mark is out
  // of reach until POP_MARK-like opcodes (t, e, u) end it.
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Value pop() {
    if (stack_.size() <= floor()) throw std::runtime_error("stack underflow at byte " + std::to_string(pos_ - 1));
    Value v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Value& top() {
    if (stack_.size() <= floor()) throw std::runtime_error("stack underflow at byte " + std::to_string(pos_ - 1));
    return stack_.back();
  }
  std::vector<Value> pop_mark() {
    if (marks_.empty()) throw std::runtime_error("no MARK before the opcode at byte " + std::to_string(pos_ - 1));
    std::vector<Value> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  static const Value& expect(const Value& v, PyValue::Kind kind) {
    if (v->kind != kind) throw std::runtime_error("unexpected value type in pickle");
    return v;
  }
  Value make(PyValue::Kind kind) {
    if (++values_ > kMaxPickleValues)
      throw std::runtime_error("pickle makes more than " + std::to_string(kMaxPickleValues) + " values");
    auto v = std::make_shared<PyValue>();
    v->kind = kind;
    return v;
  }
  Value collect(PyValue::Kind kind, std::vector<Value> items) {
    Value v = make(kind);
    for (const auto& item : items) note_child(*v, item);
    v->items = std::move(items);
    return v;
  }
  void push_int(int64_t i) {
    Value v = make(PyValue::Kind::Int);
    v->i = i;
    stack_.push_back(v);
  }
  void push_string(std::string s) {
    Value v = make(PyValue::Kind::String);
    v->s = std::move(s);
    stack_.push_back(v);
  }
  void push_global(std::string name) {
    Value v = make(PyValue::Kind::Global);
    v->s = std::move(name);
    stack_.push_back(v);
  }
  void memo(uint64_t index) {
    if (index >= kMaxPickleValues) throw std::runtime_error("memo index " + std::to_string(index) + " is too large");
    if (memo_.size() <= index) memo_.resize(index + 1);
    memo_[index] = top();
  }
  void push_memo(uint64_t index) {
    if (index >= memo_.size() || !memo_[index]) throw std::runtime_error("memo entry " + std::to_string(index) + " is unset");
    stack_.push_back(memo_[index]);
  }

  // ('storage', torch.XStorage, key, location, numel) → the storage's data as a flat tensor.
  Value persistent_load(const Value& pid) {
    using K = PyValue::Kind;
    const auto& p = pid->items;
    if (pid->kind != K::Tuple || p.size() < 5 || p[0]->kind != K::String || p[0]->s != "storage" ||
        p[1]->kind != K::Global || p[2]->kind != K::String || p[4]->kind != K::Int)
      throw std::runtime_error("unsupported persistent id (expected ('storage', torch.XStorage, key, location, numel))");
    const std::string key = p[2]->s;
    auto cached = storages_.find(key);
    if (cached != storages_.end()) return cached->second;
    const torch::Dtype dtype = storage_dtype(p[1]->s);
    const int64_t numel = p[4]->i;
    auto entry = entries_.find(archive_ + "/data/" + key);
    if (entry == entries_.end()) throw std::runtime_error("storage record data/" + util::cut(key, util::kQuoteChars) + " is missing");
    // Compared by division: numel × element size may overflow for a hostile numel.
    const size_t element = torch::elementSize(dtype), bytes = entry->second.size;
    if (numel < 0 || bytes % element != 0 || static_cast<uint64_t>(numel) != bytes / element)
      throw std::runtime_error("storage data/" + util::cut(key, util::kQuoteChars) + " holds " + std::to_string(bytes) + " bytes, but the pickle says " +
                               std::to_string(numel) + " elements of " + std::to_string(element) + " bytes");
    Value v = make(K::Storage);
    v->s = key;
    v->tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    file_.read_at(entry->second.offset, v->tensor.data_ptr(), bytes);
    storage_elements_ += static_cast<uint64_t>(numel);
    storages_[key] = v;
    return v;
  }

  static std::vector<int64_t> ints(const Value& tuple) {
    if (tuple->kind != PyValue::Kind::Tuple) throw std::runtime_error("expected a tuple of integers");
    std::vector<int64_t> out;
    for (const auto& item : tuple->items) {
      if (item->kind != PyValue::Kind::Int) throw std::runtime_error("expected a tuple of integers");
      out.push_back(item->i);
    }
    return out;
  }

  Value call(const Value& callable, const Value& args) {
    const std::string& name = callable->s;
    if (callable->kind != PyValue::Kind::Global) throw std::runtime_error("call of a non-global");
    if (name == "collections.OrderedDict") return make(PyValue::Kind::Dict);
    if (name == "torch._utils._rebuild_tensor_v2") {
      // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
      const auto& a = args->items;
      if (args->kind != PyValue::Kind::Tuple || a.size() < 4 || a[0]->kind != PyValue::Kind::Storage ||
          a[1]->kind != PyValue::Kind::Int)
        throw std::runtime_error("bad _rebuild_tensor_v2 call");
      const torch::Tensor& storage = a[0]->tensor;
      const std::string where = "tensor view of storage data/" + util::cut(a[0]->s, util::kQuoteChars);
      const int64_t offset = a[1]->i;
      const std::vector<int64_t> size = ints(a[2]), stride = ints(a[3]);
      if (size.size() != stride.size() || size.size() > safetensors::kMaxTensorRank)
        throw std::runtime_error(where + ": " + std::to_string(size.size()) + " sizes but " +
                                 std::to_string(stride.size()) + " strides (at most " +
                                 std::to_string(safetensors::kMaxTensorRank) + ")");
      // The furthest element the view reaches must lie inside the storage, and the view may
      // hold no more elements than the storage: a stride of 0 would let 4 bytes in the file
      // describe gigabytes (state dicts hold no expanded tensors).
      int64_t last = offset, numel = 1;
      bool empty = false;
      for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] < 0 || stride[d] < 0) throw std::runtime_error(where + ": negative size or stride");
        if (size[d] == 0) empty = true;
        int64_t reach = 0;
        if (__builtin_mul_overflow(size[d] == 0 ? 0 : size[d] - 1, stride[d], &reach) ||
            __builtin_add_overflow(last, reach, &last) || __builtin_mul_overflow(numel, size[d], &numel))
          throw std::runtime_error(where + ": sizes and strides overflow");
      }
      if (offset < 0 || (!empty && last >= storage.numel()))
        throw std::runtime_error(where + " runs outside the storage's " + std::to_string(storage.numel()) + " elements");
      view_elements_ += static_cast<uint64_t>(numel);
      if (numel > storage.numel() || view_elements_ > storage_elements_)
        throw std::runtime_error(where + ": the tensors hold more elements than the file's storages (" +
                                 std::to_string(view_elements_) + " > " + std::to_string(storage_elements_) +
                                 "); expanded or shared views are not a state dict");
      // A view, as torch.load returns it: no copy, so memory stays that of the storages.
      Value v = make(PyValue::Kind::Tensor);
      v->tensor = storage.as_strided(size, stride, offset);
      return v;
    }
    if (name == "torch._utils._rebuild_parameter") {
      if (args->kind != PyValue::Kind::Tuple || args->items.empty() || args->items[0]->kind != PyValue::Kind::Tensor)
        throw std::runtime_error("bad _rebuild_parameter call");
      return args->items[0];
    }
    if (name == "torch.jit._pickle.restore_type_tag") {
      // LibTorch's pickle_save annotates containers with their type: (obj, "Dict[str, Tensor]").
      if (args->kind != PyValue::Kind::Tuple || args->items.empty()) throw std::runtime_error("bad restore_type_tag call");
      return args->items[0];
    }
    throw std::runtime_error("the file asks to build a " + name + ", which a state dict never holds");
  }

  const std::string pickle_;
  const util::RegularFile& file_;
  const ZipEntries& entries_;
  const std::string archive_;
  size_t pos_ = 0, end_ = 0;
  std::vector<Value> stack_;
  std::vector<size_t> marks_;
  std::vector<Value> memo_;
  std::map<std::string, Value> storages_;
  size_t values_ = 0;
  uint64_t storage_elements_ = 0, view_elements_ = 0;  // of the storages loaded, of the tensor views
};

// The dict's string → tensor entries; REQUIRES every value be a tensor.
std::vector<std::pair<std::string, torch::Tensor>> as_state_dict(const Value& dict, const std::string& path) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [k, v] : dict->entries) {
    if (k->kind != PyValue::Kind::String || v->kind != PyValue::Kind::Tensor) return {};
    if (k->s.size() > safetensors::kMaxTensorNameBytes)
      throw CheckpointError(path + ": a tensor name is " + std::to_string(k->s.size()) + " bytes, over the limit of " +
                               std::to_string(safetensors::kMaxTensorNameBytes) + " (it starts " +
                               util::cut(k->s, util::kQuoteChars) + ")");
    out.emplace_back(k->s, v->tensor);
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> load_torch_state_dict(const std::string& path) {
  std::optional<util::RegularFile> file;
  try {
    file.emplace(path);
  } catch (const std::runtime_error& e) {
    throw CheckpointError(e.what());
  }
  const ZipEntries entries = zip_entries(*file);
  std::string archive;
  for (const auto& [name, where] : entries) {
    const auto slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash) == "/data.pkl") archive = name.substr(0, slash);
  }
  if (archive.empty()) throw CheckpointError(path + ": no data.pkl in the archive: not written by torch.save");
  const ZipEntry pickle = entries.at(archive + "/data.pkl");
  if (pickle.size > kMaxPickleBytes)
    throw CheckpointError(path + ": data.pkl is " + std::to_string(pickle.size) + " bytes, over the limit of " +
                          std::to_string(kMaxPickleBytes) + " (a state dict's is a few KB)");
  Value root;
  try {
    if (auto order = entries.find(archive + "/byteorder");
        order != entries.end() && (order->second.size != 6 || read_bytes(*file, order->second.offset, 6) != "little"))
      throw CheckpointError(path + ": big-endian checkpoints are not supported");
    root = Unpickler(read_bytes(*file, pickle.offset, pickle.size), *file, entries, archive).run();
  } catch (const CheckpointError&) {
    throw;
  } catch (const std::exception& e) {
    // util::RegularFile's errors (the file shrank) name the path already.
    const std::string what = e.what();
    throw CheckpointError(what.rfind(path + ": ", 0) == 0 ? what : path + ": " + what);
  }
  if (root->kind != PyValue::Kind::Dict) throw CheckpointError(path + ": holds no dict of tensors");
  auto flat = as_state_dict(root, path);
  if (!flat.empty() || root->entries.empty()) return flat;
  for (const char* key : {"model_state_dict", "state_dict", "model"})
    for (const auto& [k, v] : root->entries)
      if (k->kind == PyValue::Kind::String && k->s == key && v->kind == PyValue::Kind::Dict) {
        auto nested = as_state_dict(v, path);
        if (!nested.empty()) return nested;
      }
  throw CheckpointError(path + ": neither a name → tensor state dict nor a checkpoint holding one under "
                        "model_state_dict, state_dict or model");
}

}  // namespace i3
