// The parallel scan of the hybrid layer against the published per-token loop, in float64:
// outputs and every gradient agree to a relative 1e-12, also for w outside [0, 1] and A with
// spectral radius at or above 1. In float32, on every device this build and machine have (the
// CUDA kernels of model/net/cuda/ on a GPU), to a relative 1e-5 over many random shapes.
#include <gtest/gtest.h>

#include <random>

#include "model/net/i3_model.h"

namespace i3 {
namespace {

// An undefined gradient is a parameter the output does not depend on: zero.
torch::Tensor grad_of(const torch::Tensor& t) { return t.grad().defined() ? t.grad() : torch::zeros_like(t); }

double rel_err(const torch::Tensor& a, const torch::Tensor& ref) {
  const double diff = (a - ref).norm().item<double>(), norm = ref.norm().item<double>();
  return norm == 0 ? diff : diff / norm;
}

// A = Q · r with Q orthogonal: spectral radius exactly r.
torch::Tensor matrix_with_radius(int64_t n, double r) {
  auto qr = torch::linalg_qr(torch::randn({n, n}, torch::kFloat64));
  return std::get<0>(qr) * r;
}

// Random parameters in the published regime or beyond: w_mix uniform in [w_low, w_high], A of
// spectral radius `radius`, B and C normal with std 0.3, D standard normal; then the same
// values copied into `copy` (any device and dtype).
void randomize(HybridMix& layer, double radius, double w_low, double w_high, HybridMix& copy) {
  torch::NoGradGuard no_grad;
  layer->w_mix.uniform_(w_low, w_high);
  layer->A.copy_(matrix_with_radius(layer->A.size(0), radius));
  layer->B.normal_(0, 0.3);
  layer->C.normal_(0, 0.3);
  layer->D.normal_(0, 1);
  for (auto& p : copy->named_parameters()) p.value().copy_(layer->named_parameters()[p.key()]);
}

struct Case {
  int64_t batch, T, d, n;
  double radius;
  double w_low, w_high;  // w_mix drawn uniformly from this range
};

std::ostream& operator<<(std::ostream& out, const Case& c) {
  return out << "B" << c.batch << "_T" << c.T << "_d" << c.d << "_n" << c.n << "_radius" << c.radius << "_w[" << c.w_low
             << "," << c.w_high << "]";
}

class ScanVsLoop : public ::testing::TestWithParam<Case> {};

TEST_P(ScanVsLoop, OutputsAndGradientsAgree) {
  const Case c = GetParam();
  torch::manual_seed(7);
  HybridMix scan(c.d, c.n), loop(c.d, c.n);
  scan->to(torch::kFloat64);
  loop->to(torch::kFloat64);
  randomize(scan, c.radius, c.w_low, c.w_high, loop);
  torch::Tensor u = torch::randn({c.batch, c.T, c.d}, torch::kFloat64);
  torch::Tensor u1 = u.clone().requires_grad_(true), u2 = u.clone().requires_grad_(true);
  torch::Tensor y_scan = scan->forward(u1);
  torch::Tensor y_loop = loop->forward_loop(u2);
  EXPECT_LE(rel_err(y_scan, y_loop), 1e-12);
  RecordProperty("forward_rel_err", ::testing::PrintToString(rel_err(y_scan, y_loop)));

  torch::Tensor g = torch::randn_like(y_loop);
  (y_scan * g).sum().backward();
  (y_loop * g).sum().backward();
  EXPECT_LE(rel_err(u1.grad(), u2.grad()), 1e-12) << "grad of u";
  for (const char* name : {"w_mix", "A", "B", "C", "D"}) {
    EXPECT_LE(rel_err(grad_of(scan->named_parameters()[name]), grad_of(loop->named_parameters()[name])), 1e-12)
        << "grad of " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ScanVsLoop,
    ::testing::Values(Case{2, 256, 16, 8, 0.999, 0.0, 1.0},   // the training length, radius near 1
                      Case{3, 37, 12, 5, 1.0, -0.5, 1.5},     // odd length, w outside [0, 1]
                      Case{2, 64, 8, 4, 1.02, 0.9, 1.05},     // growing state and average
                      Case{1, 1, 4, 3, 0.5, 0.2, 0.8},        // a single step
                      Case{2, 100, 32, 32, 0.99, -1.2, 1.2}),
    [](const ::testing::TestParamInfo<Case>& info) {
      const Case& c = info.param;
      return "T" + std::to_string(c.T) + "_d" + std::to_string(c.d) + "_n" + std::to_string(c.n) + "_case" +
             std::to_string(info.index);
    });

std::vector<torch::Device> devices() {
  std::vector<torch::Device> out = {torch::kCPU};
  if (torch::cuda::is_available()) out.emplace_back(torch::kCUDA, 0);
  return out;
}

// Float32 on `device` against the float64 per-token loop on the CPU, for random shapes (state
// sizes up to 48, so a GPU also runs the LibTorch fallback above the kernel's 32), w in [0, 1]
// and A with spectral radius in [0.9, 1]: the published regime, where errors build up longest.
TEST(ScanFloat32, MatchesTheFloat64LoopOnEveryDevice) {
  std::mt19937_64 rng(2026);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  for (const torch::Device& device : devices()) {
    for (int i = 0; i < 24; ++i) {
      const int64_t batch = pick(1, 5), T = i == 0 ? 1 : pick(2, 700), d = pick(1, 96), n = i < 4 ? 32 : pick(1, 48);
      const double radius = 0.9 + 0.1 * std::uniform_real_distribution<double>(0, 1)(rng);
      SCOPED_TRACE(device.str() + " B" + std::to_string(batch) + " T" + std::to_string(T) + " d" + std::to_string(d) +
                   " n" + std::to_string(n) + " radius " + std::to_string(radius));
      torch::manual_seed(100 + i);
      HybridMix ref(d, n), fast(d, n);
      ref->to(torch::kFloat64);
      randomize(ref, radius, 0, 1, fast);
      fast->to(device);
      torch::Tensor u = torch::randn({batch, T, d}, torch::kFloat64);
      torch::Tensor u_ref = u.clone().requires_grad_(true);
      torch::Tensor u_fast = u.to(torch::kFloat32).to(device).requires_grad_(true);
      torch::Tensor y_ref = ref->forward_loop(u_ref), y_fast = fast->forward(u_fast);
      ASSERT_TRUE(y_fast.device() == device);
      EXPECT_LE(rel_err(y_fast.to(torch::kCPU, torch::kFloat64), y_ref), 1e-5);

      torch::Tensor g = torch::randn_like(y_ref);
      (y_ref * g).sum().backward();
      (y_fast * g.to(torch::kFloat32).to(device)).sum().backward();
      EXPECT_LE(rel_err(u_fast.grad().to(torch::kCPU, torch::kFloat64), u_ref.grad()), 1e-5) << "grad of u";
      for (const char* name : {"w_mix", "A", "B", "C", "D"}) {
        EXPECT_LE(rel_err(grad_of(fast->named_parameters()[name]).to(torch::kCPU, torch::kFloat64),
                          grad_of(ref->named_parameters()[name])),
                  1e-5)
            << "grad of " << name;
      }
    }
  }
}

TEST(HybridState, CarryingTheStateEqualsOneLongCall) {
  torch::manual_seed(3);
  HybridMix layer(8, 4);
  layer->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    layer->A.copy_(matrix_with_radius(4, 0.95));
    layer->w_mix.uniform_(-0.3, 1.2);
  }
  torch::NoGradGuard no_grad;
  torch::Tensor u = torch::randn({2, 23, 8}, torch::kFloat64);
  torch::Tensor whole = layer->forward(u);
  HybridState state;
  torch::Tensor a = layer->forward(u.narrow(1, 0, 10), &state);
  torch::Tensor b = layer->forward(u.narrow(1, 10, 1), &state);
  torch::Tensor c = layer->forward(u.narrow(1, 11, 12), &state);
  EXPECT_LE(rel_err(torch::cat({a, b, c}, 1), whole), 1e-12);
}

}  // namespace
}  // namespace i3
