// Data-parallel training over PyTorch's c10d: every rank holds the whole model, trains on its
// own shard of each batch, and the ranks average their gradients with c10d's collectives
// (Gloo on CPUs, NCCL on GPUs in CUDA builds), never through i3lab's control channel.
//
//   rendezvous   rank 0 serves a c10d::TCPStore at MASTER_ADDR:MASTER_PORT; every rank
//                connects, and the process group meets through it (world.h names the
//                launchers' variables)
//   start        rank 0's parameters, optimizer moments and trainer state reach every rank
//                (broadcast; the small state through the store), so a run resumed on rank 0
//                resumes everywhere and no other rank needs the tracker database
//   each step    gradients are summed in buckets: contiguous slices of the optimizer's flat
//                gradient buffers, walked from the last parameter to the first (the order
//                backward produces them), the first bucket first_bucket_mb and the others
//                bucket_mb (DDP's 1 MiB and 25 MiB). A bucket is sent the moment backward has
//                written its last gradient (a post-hook on each parameter's gradient
//                accumulator), in bucket order on every rank, so communication overlaps the
//                rest of backward; then every gradient is divided by the rank count
//   after step 1 every rank compares a checksum of its parameters with the others'
//
// Failures: a collective that does not complete within `timeout_s` (a peer hung or cut off)
// or whose peer went away (its connection closed: a killed rank) throws PeerLost on every
// surviving rank. Waiting for rank 0's solo work (start-up, checkpoints, samples) is bounded by
// leader_timeout_s instead; a dead rank 0 is noticed at once either way. c10d's own default
// is 30 minutes for everything.
#pragma once

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "model/config/train_config.h"
#include "model/dist/world.h"
#include "model/optim/optimizer.h"

namespace i3 {

// A collective failed: a peer is gone or did not answer within the timeout.
class PeerLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Communication of the steps since the last call to take_stats().
struct CommStats {
  int64_t steps = 0;
  double seconds = 0;          // from each bucket's launch to its completion, summed (at most one at a time)
  double exposed_seconds = 0;  // spent waiting after backward: the part that did not overlap
};

class DataParallel {
 public:
  // Joins the process group of `world` on `device` with the train config's "distributed"
  // settings (`ranks` is the launcher's business and not read here). Throws PeerLost when the other ranks do not
  // all arrive within the timeout, std::invalid_argument for a backend this build lacks.
  DataParallel(const World& world, const DistributedConfig& options, torch::Device device);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return world_.rank; }
  int size() const { return world_.size; }
  std::string backend() const { return backend_; }

  // Rank 0's `value` on every rank (the argument is ignored elsewhere), through the store.
  std::string share(const std::string& key, const std::string& value);
  // After rank 0 worked alone (restored, checkpointed, wrote samples: `what` says, for errors),
  // the others wait here for it, up to leader_timeout_s, instead of inside the next collective
  // (timeout_s). A rank 0 that died is noticed at once: its store goes with it.
  void wait_for_leader(const std::string& what);
  // Rank 0's contents of `tensors` copied into every rank's, in place.
  void broadcast(std::vector<torch::Tensor> tensors);
  // The element-wise sum over the ranks of `t` (on the group's device), in place.
  void all_reduce_sum(torch::Tensor& t);
  // Every rank's `values` (the same count on each), rank by rank.
  std::vector<std::vector<double>> all_gather(const std::vector<double>& values);
  // Throws std::runtime_error naming the ranks whose `checksum` differs from rank 0's.
  void check_same(uint64_t checksum, const std::string& what);

  // Averages `optimizer`'s gradients from now on (buckets over its flat gradient buffers).
  void attach(FlatAdamW& optimizer);
  // Before each backward of a step; `last` is true for the step's last micro-batch, the one
  // whose backward sends gradients (the others only accumulate).
  void begin_backward(bool last);
  // After the last backward: sends what backward did not, waits for every bucket, divides the
  // gradients by the rank count, and averages `values` (1-D, contiguous, on the device: the
  // loss, say) likewise, in place.
  void end_backward(torch::Tensor& values);
  CommStats take_stats();

  // A checksum of the tensors' bytes (identical tensors, identical checksum), or of a string.
  static uint64_t checksum(const std::vector<torch::Tensor>& tensors);
  static uint64_t checksum(const std::string& bytes);

 private:
  struct Impl;
  World world_;
  std::string backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace i3
