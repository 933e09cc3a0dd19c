// Training checkpoints: the folder that is one version of a run's checkpoint artifact
// "ckpt-" + the first 8 characters of the run uid (aliases "latest" and "best").
//
//   config.json, model.safetensors, tokenizer.json  a model folder (model/io/model_folder.h):
//                                                   eval, generate and score use it as it is
//   optimizer.safetensors                           FlatAdamW::state()
//   trainer_state.json                              {"step", "tokens_seen", "sampler",
//                                                    "val_loss", "best_val_loss", "config",
//                                                    "interval", "skipped_steps"}
// Weights, optimizer moments and the sampler position are all the state training has (no
// dropout; samples are seeded by train.seed and the step), so resuming from one is exact.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "model/net/i3_model.h"
#include "model/text/tokenizer.h"
#include "model/optim/optimizer.h"

namespace i3 {

// trainer_state.json.
struct TrainerState {
  int64_t step = 0, tokens_seen = 0;               // updates done, tokens trained on
  nlohmann::json sampler;                          // the data sampler's position (trainer.cc)
  double val_loss = std::numeric_limits<double>::quiet_NaN();  // at `step`; NaN: not evaluated there
  double best_val_loss = std::numeric_limits<double>::infinity();
  nlohmann::json config;                           // the run's resolved training config
  // The log interval in progress: summed step losses and updates since the last train/loss
  // point, so the first point after a resume averages the same steps as without the break.
  double interval_loss_sum = 0;
  int64_t interval_updates = 0;
  int64_t skipped_steps = 0;                       // under on_nonfinite "skip", so far
};

// The checkpoint artifact's name for a run.
std::string checkpoint_artifact_name(const std::string& run_uid);

// Writes a checkpoint into the empty folder `dir`.
void write_checkpoint(const std::string& dir, const I3Model& model, const ChunkTokenizer& tokenizer,
                      const FlatAdamW& optimizer, const TrainerState& state);

// Restores `model`'s weights and `optimizer`'s moments from the checkpoint folder `dir` and
// returns its trainer state. Throws std::runtime_error starting with `origin` for a missing,
// damaged or mis-shaped part.
TrainerState read_checkpoint(const std::string& dir, I3Model& model, FlatAdamW& optimizer, const std::string& origin);

}  // namespace i3
