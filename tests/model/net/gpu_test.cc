// The CUDA path against the CPU (built only with a CUDA LibTorch; scripts/gpu-check runs it on
// a GPU machine): a training step, incremental generation, bf16 autocast and NCCL's process
// group. The scan kernels themselves are checked in hybrid_scan_test, which runs on every
// device. Without a visible GPU every test here fails: a CUDA build run on a CPU-only machine
// has nothing to prove.
#include <gtest/gtest.h>

#include "model/dist/data_parallel.h"
#include "model/net/i3_model.h"
#include "model/net/runtime.h"
#include "model/optim/optimizer.h"
#include "tests/free_port.h"

namespace i3 {
namespace {

const torch::Device kGpu(torch::kCUDA, 0);

double rel_err(const torch::Tensor& a, const torch::Tensor& ref) {
  const torch::Tensor x = a.to(torch::kCPU, torch::kFloat64), r = ref.to(torch::kCPU, torch::kFloat64);
  const double diff = (x - r).norm().item<double>(), norm = r.norm().item<double>();
  return norm == 0 ? diff : diff / norm;
}

// A small i3 (both layer kinds, the published d_state of 32) with the published init.
ModelConfig small_config() {
  ModelConfig c = preset("i3-demo");
  c.vocab_size = 512;
  c.d_state = 32;
  return c;
}

// Same weights on `device`: built on the CPU from one seed, then moved.
I3Model build(torch::Device device) {
  torch::manual_seed(11);
  I3Model model(small_config());
  model->to(device);
  return model;
}

// [B, T+1] random token ids: inputs [:, :-1], targets [:, 1:].
torch::Tensor batch(int64_t B, int64_t T) {
  torch::manual_seed(5);
  return torch::randint(0, small_config().vocab_size, {B, T + 1}, torch::kLong);
}

struct StepResult {
  double loss_before, loss_after;
  torch::Tensor grad_norm;
};

// One forward, backward, clip and AdamW update on `device`, then the loss again.
StepResult train_step(torch::Device device, bool bf16) {
  I3Model model = build(device);
  FlatAdamW optimizer(model->named_parameters().pairs(), AdamWOptions{});
  const torch::Tensor ids = batch(4, 128).to(device);
  const torch::Tensor x = ids.narrow(1, 0, 128), y = ids.narrow(1, 1, 128);
  auto loss_of = [&] {
    CudaBf16Autocast autocast(bf16 && device.is_cuda());
    return I3ModelImpl::loss(model->forward(x), y);
  };
  StepResult r;
  optimizer.zero_grad();
  torch::Tensor loss = loss_of();
  loss.backward();
  r.grad_norm = optimizer.clip_grad_norm(1.0).to(torch::kCPU);
  optimizer.step(1e-3);
  r.loss_before = loss.item<double>();
  torch::NoGradGuard no_grad;
  r.loss_after = loss_of().item<double>();
  return r;
}

// Every test needs the GPU: without one, each fails here.
class Gpu : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(torch::cuda::is_available()) << "a CUDA build run without a visible GPU"; }
};

TEST_F(Gpu, IsVisible) {
  EXPECT_EQ(parse_device("auto"), torch::Device(torch::kCUDA));
}

TEST_F(Gpu, ATrainingStepGivesTheLossOfTheCpu) {
  const StepResult cpu = train_step(torch::kCPU, false), gpu = train_step(kGpu, false);
  EXPECT_NEAR(gpu.loss_before, cpu.loss_before, 1e-4 * std::abs(cpu.loss_before));
  EXPECT_NEAR(gpu.loss_after, cpu.loss_after, 1e-4 * std::abs(cpu.loss_after));
  EXPECT_LE(rel_err(gpu.grad_norm, cpu.grad_norm), 1e-4);
  EXPECT_LT(cpu.loss_after, cpu.loss_before);
  RecordProperty("cpu_loss", ::testing::PrintToString(cpu.loss_before));
  RecordProperty("gpu_loss", ::testing::PrintToString(gpu.loss_before));
}

TEST_F(Gpu, Bf16AutocastStaysNearFloat32) {
  const StepResult f32 = train_step(kGpu, false), bf16 = train_step(kGpu, true);
  // bf16 operands: a relative 1e-3..1e-2 on the loss (docs/gpu.md).
  EXPECT_NEAR(bf16.loss_before, f32.loss_before, 2e-2 * f32.loss_before);
  EXPECT_NEAR(bf16.loss_after, f32.loss_after, 2e-2 * f32.loss_after);
  EXPECT_LT(bf16.loss_after, bf16.loss_before);
}

// Greedy decoding one token at a time with the carried state against recomputing the whole
// sequence for every token, on the GPU: the same tokens, and logits within float32 rounding.
TEST_F(Gpu, IncrementalDecodingEqualsFullRecomputation) {
  I3Model model = build(kGpu);
  model->eval();
  torch::NoGradGuard no_grad;
  const int64_t B = 3, prompt = 17, steps = 64;
  torch::Tensor seq = batch(B, prompt - 1).to(kGpu);  // [B, prompt]
  DecodeState state;
  torch::Tensor logits = model->last_logits(seq, &state);  // [B, V]
  double worst = 0;
  for (int64_t i = 0; i < steps; ++i) {
    const torch::Tensor full = model->last_logits(seq);
    worst = std::max(worst, rel_err(logits, full));
    ASSERT_TRUE(torch::equal(logits.argmax(-1), full.argmax(-1))) << "token " << i;
    const torch::Tensor next = logits.argmax(-1, /*keepdim=*/true);  // [B, 1]
    seq = torch::cat({seq, next}, 1);
    logits = model->last_logits(next, &state);
  }
  EXPECT_LE(worst, 1e-5);
  RecordProperty("worst_logit_rel_err", ::testing::PrintToString(worst));
}

// NCCL, one rank (one GPU here: NCCL refuses two ranks on one device): the process group
// forms, a sum over one rank is the identity, and a step with gradients averaged through NCCL
// buckets equals the step without.
TEST_F(Gpu, NcclProcessGroupAveragesGradients) {
  World world;
  world.master_addr = "127.0.0.1";
  world.master_port = free_port();
  world.launcher = "torchrun";
  world.store_prefix = "gpu_test";
  DistributedConfig options;
  options.backend = "auto";
  options.first_bucket_mb = 0.25;
  options.bucket_mb = 1;
  DataParallel dp(world, options, kGpu);
  EXPECT_EQ(dp.backend(), "nccl");
  torch::Tensor t = torch::randn({1000}, torch::TensorOptions().device(kGpu));
  torch::Tensor sum = t.clone();
  dp.all_reduce_sum(sum);
  EXPECT_TRUE(torch::equal(sum, t));

  I3Model model = build(kGpu);
  FlatAdamW optimizer(model->named_parameters().pairs(), AdamWOptions{});
  dp.attach(optimizer);
  const torch::Tensor ids = batch(4, 128).to(kGpu);
  optimizer.zero_grad();
  dp.begin_backward(/*last=*/true);
  torch::Tensor loss = I3ModelImpl::loss(model->forward(ids.narrow(1, 0, 128)), ids.narrow(1, 1, 128));
  loss.backward();
  torch::Tensor values = loss.detach().to(torch::kFloat64).view({1}).clone();
  dp.end_backward(values);
  const torch::Tensor norm = optimizer.clip_grad_norm(1.0);
  EXPECT_GT(dp.take_stats().steps, 0);

  const StepResult alone = train_step(kGpu, false);
  EXPECT_NEAR(values.item<double>(), alone.loss_before, 1e-6 * alone.loss_before);
  EXPECT_LE(rel_err(norm, alone.grad_norm), 1e-6);
}

}  // namespace
}  // namespace i3
