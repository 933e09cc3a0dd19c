// `i3lab train` and `i3lab eval`.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <iostream>

#include "model/cli/handlers.h"
#include "model/train/evaluation.h"
#include "model/train/trainer.h"

namespace i3 {
namespace {

using cli::Args;
using cli::UsageError;
using Json = nlohmann::ordered_json;

// --- train -------------------------------------------------------------------------------------

std::atomic<bool> stop_requested{false};

// First SIGINT/SIGTERM: finish the step, checkpoint, mark the run stopped. A second one
// kills the process (the default action), for when that takes too long.
extern "C" void request_stop(int sig) {
  stop_requested.store(true);
  static const char message[] = "\ni3lab train: stopping after this step and writing a checkpoint (again to quit now)\n";
  ssize_t ignored = write(STDERR_FILENO, message, sizeof message - 1);
  (void)ignored;
  signal(sig, SIG_DFL);
}

int train_cmd(const Args& args) {
  if (args.has("print-defaults")) {
    std::cout << default_train_config().dump(2) << "\n";
    return 0;
  }
  if (args.has("print-keys")) {  // a Markdown table: docs/training.md holds it
    std::cout << "| key | default | meaning |\n|---|---|---|\n";
    for (const TrainConfigKey& k : train_config_keys())
      std::cout << "| `" << k.path << "` | `" << k.default_value.dump() << "` | " << k.meaning << " |\n";
    return 0;
  }
  if (args.positional().size() > 1) throw UsageError("give one CONFIG file");
  if (args.has("from") && !args.has("resume")) throw UsageError("--from needs --resume RUN_ID");
  if (!args.has("resume") && args.positional().empty()) throw UsageError("give a CONFIG file (see configs/), or --resume RUN_ID");
  TrainOptions options;
  options.db_path = args.get("db", "i3lab.db");
  options.resume_run = args.has("resume") ? args.get_int("resume", -1, 1) : -1;
  options.resume_from = args.get("from", "latest");
  const std::vector<std::string> overrides = args.get_all("set");
  // Resuming without a CONFIG trains on with the run's own stored config.
  const TrainConfig config = args.positional().empty() ? stored_config(options.db_path, options.resume_run, overrides)
                                                       : TrainConfig::load(args.positional()[0], overrides);
  if (args.has("print-config")) {
    std::cout << config.to_json().dump(2) << "\n";
    return 0;
  }
  signal(SIGINT, request_stop);
  signal(SIGTERM, request_stop);
  options.stop = &stop_requested;
  options.world = world_from_env();  // torchrun's or Slurm's variables: one rank of several
  options.on_start = [&](int64_t run_id, const std::string& checkpoint_name) {
    std::cout << run_id << std::endl;
    std::cerr << "run " << run_id << " in " << options.db_path << "; checkpoints: artifact " << checkpoint_name << "\n";
  };
  const TrainResult result = train(config, options);
  if (result.run_id == 0) {  // a rank other than 0: rank 0 tracks the run
    std::cerr << "rank " << options.world.rank << " " << result.status << " at step " << result.step << "\n";
    return 0;
  }
  std::cerr << "run " << result.run_id << " " << result.status << " at step " << result.step;
  if (std::isfinite(result.val_loss)) std::cerr << ", val loss " << result.val_loss;
  if (!result.checkpoint.empty()) std::cerr << "; last checkpoint " << result.checkpoint;
  std::cerr << "\n";
  return 0;
}

// --- eval --------------------------------------------------------------------------------------

int eval_cmd(const Args& args) {
  EvalJob job;
  job.model = args.require("model");
  job.db = args.get("db", "");
  const std::string split = args.get("split", "all");
  if (split != "all" && split != "val") throw UsageError("--split must be all or val");
  job.val_split = split == "val";
  job.data.path = args.require("data");
  job.data.format = args.get("format", "text");
  if (job.data.format != "text" && job.data.format != "jsonl") throw UsageError("--format must be text or jsonl");
  job.data.field = args.get("field", "text");
  job.data.separator = args.get("separator", "");
  job.split.val_fraction = args.get_double("val-fraction", job.split.val_fraction, 0, 0.999999);
  job.split.split_seed = static_cast<uint64_t>(args.get_int("split-seed", 0, 0));
  job.cache_dir = args.get("cache-dir", job.cache_dir);
  job.max_windows = args.get_int("max-windows", 0, 0);
  job.batch = args.get_int("batch", job.batch, 1, 1 << 20);
  job.device = args.get("device", job.device);
  job.project = args.get("project", job.project);
  job.name = args.get("name", "");
  if (args.has("prompt")) job.prompts = args.get_all("prompt");
  job.sample_tokens = args.get_int("sample-tokens", job.sample_tokens, 0);

  const EvalReport report = run_evaluation(job);
  for (const auto& w : report.warnings) std::cerr << "warning: " << w << "\n";
  if (args.has("json")) {
    Json out;
    out["loss"] = report.loss;
    out["perplexity"] = report.perplexity;
    out["tokens"] = report.tokens;
    out["windows"] = report.windows;
    out["model"] = job.model;
    if (report.run_id) out["run_id"] = report.run_id;
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "loss: " << report.loss << "\nperplexity: " << report.perplexity << "\ntokens: " << report.tokens << "\n";
    if (report.run_id) std::cout << "run: " << report.run_id << "\n";
  }
  return 0;
}

}  // namespace

std::map<std::string, cli::Handler> train_handlers() {
  return {
      {"train", train_cmd},
      {"eval", eval_cmd},
  };
}

}  // namespace i3
