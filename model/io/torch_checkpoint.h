// Reading the files Python's torch.save writes, without Python.
//
// torch.save (PyTorch ≥ 1.6) writes a zip archive, uncompressed:
//   ARCHIVE/data.pkl      a pickle (protocol 2) of the object, tensors as persistent ids
//   ARCHIVE/data/KEY      the raw little-endian bytes of each storage
//   ARCHIVE/version, ARCHIVE/byteorder, ...
// LibTorch 1.13's torch::pickle_load cannot read an ordinary torch.save(model.state_dict()):
// it lacks the SETITEM opcode that Python uses for one-item dicts (the state dict's
// `_metadata`). This reader implements the part of the pickle machine such files use and
// calls only a whitelist of constructors (OrderedDict, torch._utils._rebuild_tensor_v2,
// torch._utils._rebuild_parameter, and the type tag LibTorch's pickle_save adds): it never
// runs code named by the file.
#pragma once

#include <torch/torch.h>

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace i3 {

// A file that is not a readable torch.save archive; the message names the file and the problem.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The name → tensor pairs of a state dict, in file order. Tensors are views of the file's
// storages, as torch.load returns them: two may be slices of one storage (copy before writing
// into one), but all views together may not hold more elements than the storages, so weights
// tied to one storage (or expanded views) are refused as not a plain state dict. Accepts a flat
// dict (what torch.save(model.state_dict()) writes) or a dict holding one under
// "model_state_dict", "state_dict" or "model" (training checkpoints); other values in such a
// dict are skipped.
std::vector<std::pair<std::string, torch::Tensor>> load_torch_state_dict(const std::string& path);

}  // namespace i3
