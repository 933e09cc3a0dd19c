// The training loop: an i3 model trained by a TrainConfig and tracked in a tracker database.
//
// Per step (it = 0, 1, …, max_iters−1), as the published recipe does:
//   lr = schedule(it); zero the gradients;
//   grad_accum × { draw batch_size windows; loss = CE(model(x), y); backward(loss / grad_accum) }
//   norm = global gradient norm (logged before clipping); clip to grad_clip; AdamW(lr).
// "step N" means N updates done. Logged: train/* every log_interval steps (the loss is the
// mean over the steps since the last log) and at step 1; val/loss, val/perplexity and the
// `samples` table at step 0, every eval_interval and at the end; watch histograms
// (parameters/NAME, gradients/NAME) every watch_interval; system metrics every 10 s.
//
// Checkpoints (checkpoint.h) are written every checkpoint.interval steps, at the end and when
// stopped, as versions of the run's checkpoint artifact; "best" is the one with the lowest
// validation loss (every checkpoint is evaluated). Resuming from one is exact: on one thread,
// 10 steps + resume + 10 steps give the losses of 20 steps straight.
//
// Data parallel (options.world of R > 1 ranks, model/dist/data_parallel.h): each micro-batch
// is one global batch of R × batch_size windows drawn from the one seeded stream, of which
// rank r trains on windows r·batch_size … (r+1)·batch_size − 1, so R ranks see exactly the
// data one process with batch R × batch_size sees, and the sampler position is the same on
// every rank. Gradients and the loss are averaged over the ranks; validation is split between
// them. Rank 0 alone restores checkpoints (and hands every rank its state), writes the run,
// its metrics, samples and checkpoints; it logs every rank's rank/R/* metrics (CPU, memory,
// tokens/s) at each log step. A stop request on any rank stops all of them after the same
// step (on an accelerator, the next log step: the request is read where the host waits).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/config/train_config.h"
#include "model/dist/world.h"

namespace i3 {

struct TrainOptions {
  std::string db_path = "i3lab.db";
  // ≥ 0: continue this run from one of its checkpoints ("latest", "best" or "vN"). Its
  // history after the checkpoint's step is deleted first, so the curves stay one line.
  int64_t resume_run = -1;
  std::string resume_from = "latest";
  // Polled between steps; when it becomes true (SIGINT/SIGTERM): checkpoint, status "stopped".
  const std::atomic<bool>* stop = nullptr;
  // Called with the run id once the run exists (the CLI prints it). Rank 0 only.
  std::function<void(int64_t run_id, const std::string& checkpoint_artifact)> on_start;
  // This process's place in a data-parallel job (world_from_env()); one process by default.
  World world;
};

struct TrainResult {
  int64_t run_id = 0;      // 0 on ranks other than 0
  std::string status;      // "finished" or "stopped"
  int64_t step = 0;        // updates done
  double val_loss = 0;     // at the last evaluation (NaN without validation data)
  std::string checkpoint;  // "ckpt-…:vN" of the last checkpoint
};

// Trains. Throws for bad input (unreadable vocabulary or data, no checkpoint to resume from,
// a device that is not there) before any run is created or changed; for errors during
// training (a non-finite loss under on_nonfinite "stop", a full disk) after marking the run
// "failed" with the reason in its console log. The last checkpoint stays intact.
TrainResult train(TrainConfig config, const TrainOptions& options);

// The config a resumed run trains on when no config file is given: the one run `run_id` of
// `db_path` stored (every key resolved), with `overrides` ("train.max_iters=2000") on top.
// Throws NotFound for an unknown run, std::invalid_argument for a bad override.
TrainConfig stored_config(const std::string& db_path, int64_t run_id, const std::vector<std::string>& overrides);

}  // namespace i3
