#include "model/net/runtime.h"

#include <ATen/autocast_mode.h>

#include <dlfcn.h>

#include <torch/version.h>

#include "common/util/json.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>

namespace i3 {
namespace {

using SetThreadsFn = void (*)(int);
using GetThreadsFn = int (*)();

// OpenBLAS is found at run time (Debian switches BLAS implementations by alternatives).
SetThreadsFn openblas_set() { return reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")); }
GetThreadsFn openblas_get() { return reinterpret_cast<GetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads")); }

int cores() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

}  // namespace

void set_threads(int torch_threads, int blas_threads) {
  at::set_num_threads(torch_threads > 0 ? torch_threads : cores());
  if (auto fn = openblas_set()) fn(blas_threads > 0 ? blas_threads : cores());
}

void set_default_threads() {
  int torch_threads = 0, blas_threads = 0;
  if (const char* env = std::getenv("I3LAB_THREADS")) {
    if (std::sscanf(env, "%d,%d", &torch_threads, &blas_threads) != 2)
      throw std::invalid_argument(std::string("I3LAB_THREADS='") + env + "': expected TORCH,BLAS such as 1,2");
  }
  set_threads(torch_threads, blas_threads);
}

std::string runtime_summary() {
  std::ostringstream out;
  out << "torch " << TORCH_VERSION << ", " << at::get_num_threads() << " torch threads, ";
  if (auto fn = openblas_get()) {
    out << "OpenBLAS " << fn() << " threads";
  } else {
    out << "BLAS is not OpenBLAS (install libopenblas0-pthread: the reference BLAS is ~8x slower)";
  }
  out << ", " << cores() << " cores";
  return out.str();
}

torch::Device parse_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  torch::Device device(torch::kCPU);
  try {
    device = torch::Device(name);
  } catch (const std::exception&) {
    throw std::invalid_argument("unknown device '" + util::cut(name) + "' (use cpu, cuda, cuda:N or auto)");
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw std::invalid_argument("device '" + name + "' asked for, but this build or machine has no CUDA");
  if (device.is_cuda() && device.has_index() && device.index() >= static_cast<int>(torch::cuda::device_count()))
    throw std::invalid_argument("device '" + name + "' asked for, but this machine has " +
                                std::to_string(torch::cuda::device_count()) + " GPU(s): cuda:0 .. cuda:" +
                                std::to_string(torch::cuda::device_count() - 1));
  return device;
}

// LibTorch 2.4 gave autocast's switches a device argument and deprecated the CUDA-only ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
namespace {
bool autocast_enabled() { return at::autocast::is_autocast_enabled(at::kCUDA); }
void set_autocast(bool enabled) { at::autocast::set_autocast_enabled(at::kCUDA, enabled); }
at::ScalarType autocast_dtype() { return at::autocast::get_autocast_dtype(at::kCUDA); }
void set_autocast_dtype(at::ScalarType dtype) { at::autocast::set_autocast_dtype(at::kCUDA, dtype); }
}  // namespace
#else
namespace {
bool autocast_enabled() { return at::autocast::is_enabled(); }
void set_autocast(bool enabled) { at::autocast::set_enabled(enabled); }
at::ScalarType autocast_dtype() { return at::autocast::get_autocast_gpu_dtype(); }
void set_autocast_dtype(at::ScalarType dtype) { at::autocast::set_autocast_gpu_dtype(dtype); }
}  // namespace
#endif

CudaBf16Autocast::CudaBf16Autocast(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  was_enabled_ = autocast_enabled();
  was_dtype_ = autocast_dtype();
  set_autocast_dtype(at::kBFloat16);
  set_autocast(true);
  at::autocast::increment_nesting();
}

CudaBf16Autocast::~CudaBf16Autocast() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(was_enabled_);
  set_autocast_dtype(was_dtype_);
}

}  // namespace i3
