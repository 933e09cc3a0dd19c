// `i3lab train` and `i3lab eval`.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <iostream>

#include "model/cli/handlers.h"
#include "model/io/model_folder.h"
#include "model/net/evaluate.h"
#include "model/net/generate.h"
#include "model/net/runtime.h"
#include "model/train/trainer.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"

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
  TrainOptions options;
  options.db_path = args.get("db", "i3lab.db");
  const std::vector<std::string> overrides = args.get_all("set");
  if (args.has("print-defaults")) {
    std::cout << default_train_config().dump(2) << "\n";
    return 0;
  }
  if (args.positional().size() > 1) throw UsageError("give one CONFIG file");
  if (args.has("from") && !args.has("resume")) throw UsageError("--from needs --resume RUN_ID");
  TrainConfig config;
  if (args.has("resume")) {
    options.resume_run = args.get_int("resume", -1);
    options.resume_from = args.get("from", "latest");
    if (!args.positional().empty()) {
      config = TrainConfig::load(args.positional()[0], overrides);
    } else {
      // The run's own stored config (every key resolved), with --set on top.
      const tracker::RunRecord record = tracker::Query(options.db_path).run(options.resume_run);
      config = TrainConfig::parse(record.config, options.db_path + ": run " + std::to_string(record.id) + "'s config",
                                  overrides);
    }
  } else {
    if (args.positional().empty()) throw UsageError("give a CONFIG file (see configs/), or --resume RUN_ID");
    config = TrainConfig::load(args.positional()[0], overrides);
  }
  if (args.has("print-config")) {
    std::cout << config.to_json().dump(2) << "\n";
    return 0;
  }
  signal(SIGINT, request_stop);
  signal(SIGTERM, request_stop);
  options.stop = &stop_requested;
  options.on_start = [&](int64_t run_id, const std::string& checkpoint_name) {
    std::cout << run_id << std::endl;
    std::cerr << "run " << run_id << " in " << options.db_path << "; checkpoints: artifact " << checkpoint_name << "\n";
  };
  const TrainResult result = train(config, options);
  std::cerr << "run " << result.run_id << " " << result.status << " at step " << result.step;
  if (std::isfinite(result.val_loss)) std::cerr << ", val loss " << result.val_loss;
  if (!result.checkpoint.empty()) std::cerr << "; last checkpoint " << result.checkpoint;
  std::cerr << "\n";
  return 0;
}

// --- eval --------------------------------------------------------------------------------------

int eval_cmd(const Args& args) {
  set_default_threads();
  const std::string model_ref = args.require("model"), db = args.get("db", "");
  const std::string split = args.get("split", "all");
  if (split != "all" && split != "val") throw UsageError("--split must be all or val");

  // The model: a folder, or a tracker artifact fetched into a scratch folder.
  ModelFolder folder;
  std::optional<tracker::ArtifactVersion> artifact;
  const std::string prefix = "artifact:";
  if (model_ref.rfind(prefix, 0) == 0) {
    const std::string db_path = db.empty() ? "i3lab.db" : db;
    artifact = tracker::find_artifact(db_path, model_ref.substr(prefix.size()));
    const std::filesystem::path dir =
        std::filesystem::path(tracker::artifact_root(db_path)) / "tmp" / ("eval-" + std::to_string(getpid()));
    tracker::fetch_artifact(db_path, *artifact, dir.string());
    try {
      folder = load_model_folder(dir.string());
    } catch (...) {
      std::filesystem::remove_all(dir);
      throw;
    }
    std::filesystem::remove_all(dir);
  } else {
    folder = load_model_folder(model_ref);
  }
  for (const auto& w : folder.warnings) std::cerr << "warning: " << w << "\n";
  if (!folder.tokenizer) throw std::runtime_error(model_ref + ": the model has no vocabulary (tokenizer.json)");
  folder.model->to(parse_device(args.get("device", "cpu")));

  // The tokens: the whole source, or the held-out part a training run with this source would use.
  DataSource source;
  source.path = args.require("data");
  source.format = args.get("format", "text");
  source.field = args.get("field", "text");
  source.separator = args.get("separator", "");
  if (source.format != "text" && source.format != "jsonl") throw UsageError("--format must be text or jsonl");
  DataOptions data_options;
  data_options.val_fraction = split == "val" ? args.get_double("val-fraction", 0.01) : 0.0;
  data_options.split_seed = static_cast<uint64_t>(args.get_int("split-seed", 0));
  auto cache = TokenCache::open(args.get("cache-dir", "data/cache"), {source}, *folder.tokenizer, data_options);
  const std::vector<int64_t> tokens = cache->gather(split == "val" ? cache->val() : cache->train());
  const torch::Tensor windows = eval_windows(tokens, folder.config.context + 1, args.get_int("max-windows", 0));
  if (windows.size(0) == 0) throw std::runtime_error(source.path + ": no tokens to evaluate in the " + split + " split");
  const EvalResult result = evaluate(folder.model, windows, args.get_int("batch", 8));

  Json out;
  out["loss"] = result.loss;
  out["perplexity"] = std::exp(result.loss);
  out["tokens"] = result.tokens;
  out["windows"] = windows.size(0);
  out["model"] = model_ref;
  if (!db.empty()) {
    // A tracked evaluation run: metrics at the checkpoint's step, samples, and lineage.
    tracker::Store store(db);
    tracker::RunSpec spec;
    spec.project = args.get("project", "i3");
    spec.name = args.get("name", "");
    spec.tags = {"eval"};
    spec.config = {{"job", "eval"}, {"model", model_ref}, {"data", source.path}, {"split", split},
                   {"windows", windows.size(0)}, {"tokens", result.tokens}};
    tracker::Run run = tracker::Run::create(store, spec);
    int64_t step = 0;
    if (artifact) {
      run.use_artifact(artifact->name + ":v" + std::to_string(artifact->version));
      step = artifact->metadata.value("step", int64_t{0});
    }
    run.log(step, {{"val/loss", result.loss}, {"val/perplexity", std::exp(result.loss)}});
    std::vector<std::string> prompts = args.get_all("prompt");
    if (prompts.empty()) prompts = {"hello", "user: tell me", "once upon a time"};
    nlohmann::json rows = nlohmann::json::array();
    SamplingOptions sampling;
    sampling.max_new_tokens = args.get_int("sample-tokens", 50);
    sampling.temperature = 0.8;
    sampling.top_k = 40;
    for (const auto& prompt : prompts) {
      std::vector<int64_t> ids;
      for (int32_t id : folder.tokenizer->encode(std::string_view(prompt))) ids.push_back(id);
      rows.push_back({step, prompt, generate(folder.model, *folder.tokenizer, ids, sampling).text, sampling.temperature,
                      sampling.top_k});
    }
    run.log_table("samples", step, {"step", "prompt", "output", "temperature", "top_k"}, rows);
    run.finish();
    out["run_id"] = run.id();
  }
  if (args.has("json")) {
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "loss: " << result.loss << "\nperplexity: " << std::exp(result.loss) << "\ntokens: " << result.tokens
              << "\n";
    if (out.contains("run_id")) std::cout << "run: " << out["run_id"] << "\n";
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
