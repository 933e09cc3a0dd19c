#include "model/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <optional>

#include "common/util/clock.h"
#include "common/util/files.h"
#include "model/data/samplers.h"
#include "model/io/model_folder.h"
#include "model/io/safetensors.h"
#include "model/net/evaluate.h"
#include "model/net/generate.h"
#include "model/net/runtime.h"
#include "model/train/optimizer.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"
#include "tracker/run/system_metrics.h"

namespace i3 {
namespace {

namespace fs = std::filesystem;
using util::Clock;
using util::seconds_since;
using nlohmann::json;

// Under on_nonfinite "skip", this many skipped updates in a row stop the run: the model has
// diverged and more skipping only burns time.
constexpr int kMaxConsecutiveSkips = 20;

std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string format(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string duration_text(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long s = std::lround(seconds);
  if (s >= 3600) return format("%ldh%02ldm", s / 3600, s / 60 % 60);
  if (s >= 60) return format("%ldm%02lds", s / 60, s % 60);
  return format("%lds", s);
}

// Training batches from the configured sampler, whose position goes into checkpoints.
class Batches {
 public:
  Batches(const TrainConfig& c, const TokenCache& cache)
      : cache_(cache), window_(c.model.context + 1), batch_size_(c.batch_size) {
    if (c.sampler == "random") random_.emplace(cache, c.sources, window_, c.seed);
    else epoch_.emplace(cache, window_, c.seed);
  }

  // [batch_size, context + 1] token ids on `device`: inputs are [:, :-1], targets [:, 1:].
  torch::Tensor next(torch::Device device) {
    torch::Tensor out = torch::empty({batch_size_, window_}, torch::kLong);
    int64_t* p = out.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch_size_; ++b) cache_.copy(random_ ? random_->next() : epoch_->next(), window_, p + b * window_);
    return device.is_cpu() ? out : out.pin_memory().to(device, /*non_blocking=*/true);
  }

  json state() const {
    if (random_) return {{"kind", "random"}, {"draws", random_->draws()}};
    return {{"kind", "epoch"}, {"epoch", epoch_->epoch()}, {"position", epoch_->position()}};
  }

  void restore(const json& s, const std::string& origin) {
    const std::string kind = random_ ? "random" : "epoch";
    if (!s.is_object() || s.value("kind", "") != kind)
      throw std::runtime_error(origin + ": the checkpoint's sampler is " + s.dump() + ", the config's is \"" + kind + "\"");
    if (random_) random_->restore(s.at("draws").get<uint64_t>());
    else epoch_->restore(s.at("epoch").get<int64_t>(), s.at("position").get<int64_t>());
  }

 private:
  const TokenCache& cache_;
  const int64_t window_, batch_size_;
  std::optional<RandomWindows> random_;
  std::optional<EpochWindows> epoch_;
};

// What a checkpoint records besides weights and optimizer moments.
struct Progress {
  int64_t step = 0, tokens_seen = 0;
  double val_loss = std::numeric_limits<double>::quiet_NaN();  // at `val_step`
  int64_t val_step = -1;
  double best_val_loss = std::numeric_limits<double>::infinity();
};

// Copies checkpoint weights into the model's (flat-buffer) parameters.
void load_weights(I3Model& model, const std::vector<std::pair<std::string, torch::Tensor>>& weights, const std::string& origin) {
  std::map<std::string, torch::Tensor> by_name(weights.begin(), weights.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, p] : model->state_dict()) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::runtime_error(origin + ": no tensor " + name);
    if (it->second.sizes() != p.sizes()) throw std::runtime_error(origin + ": " + name + " has the wrong shape for this config");
    p.copy_(it->second);
    by_name.erase(it);
  }
  if (!by_name.empty()) throw std::runtime_error(origin + ": unexpected tensor " + by_name.begin()->first);
}

// A scratch folder under the database's artifact store (same file system as the store).
fs::path scratch_dir(const std::string& db_path, const std::string& what) {
  return fs::path(tracker::artifact_root(db_path)) / "tmp" / (what + "-" + std::to_string(getpid()));
}

// Writes a checkpoint folder and logs it as the next version of the run's checkpoint artifact.
std::string write_checkpoint(tracker::Run& run, const std::string& db_path, I3Model& model, const ChunkTokenizer& tokenizer,
                             const FlatAdamW& optimizer, const Batches& batches, const Progress& progress,
                             const json& config, bool best) {
  const std::string name = checkpoint_artifact_name(run.uid());
  const fs::path dir = scratch_dir(db_path, name);
  fs::remove_all(dir);
  try {
    save_model_folder(dir.string(), model, &tokenizer);
    safetensors::save((dir / "optimizer.safetensors").string(), optimizer.state());
    const auto nan_as_null = [](double v) { return std::isfinite(v) ? json(v) : json(); };
    json state = {{"step", progress.step},
                  {"tokens_seen", progress.tokens_seen},
                  {"sampler", batches.state()},
                  {"val_loss", progress.val_step == progress.step ? nan_as_null(progress.val_loss) : json()},
                  {"best_val_loss", nan_as_null(progress.best_val_loss)},
                  {"config", config}};
    std::ofstream((dir / "trainer_state.json").string()) << state.dump(2) << "\n";
    json metadata = {{"step", progress.step}, {"tokens_seen", progress.tokens_seen}, {"val_loss", state["val_loss"]}};
    tracker::ArtifactVersion v =
        run.log_artifact(name, "checkpoint", dir.string(), metadata, best ? std::vector<std::string>{"best"} : std::vector<std::string>{});
    fs::remove_all(dir);
    return name + ":v" + std::to_string(v.version);
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    throw;
  }
}

// Deletes the versions of checkpoint artifact `name` older than its newest `keep`, except
// those an alias names (best) or another run used (an evaluation's lineage). Returns them.
std::vector<std::string> prune_checkpoints(tracker::Store& store, const std::string& name, int64_t keep) {
  std::vector<tracker::ArtifactVersion> versions;
  for (auto& v : tracker::list_artifacts(store.path()))
    if (v.name == name) versions.push_back(std::move(v));
  std::sort(versions.begin(), versions.end(), [](const auto& a, const auto& b) { return a.version > b.version; });
  std::vector<std::string> deleted;
  for (size_t i = static_cast<size_t>(keep); i < versions.size(); ++i) {
    if (!versions[i].aliases.empty() || !versions[i].used_by.empty()) continue;
    const std::string ref = name + ":v" + std::to_string(versions[i].version);
    tracker::delete_artifact_version(store, ref);
    deleted.push_back(ref);
  }
  return deleted;
}

// Restores model, optimizer, sampler and progress from checkpoint `ref` of a run.
Progress read_checkpoint(const std::string& db_path, const std::string& ref, I3Model& model, FlatAdamW& optimizer,
                         Batches& batches) {
  tracker::ArtifactVersion version = tracker::find_artifact(db_path, ref);
  const fs::path dir = scratch_dir(db_path, "resume");
  fs::remove_all(dir);
  try {
    tracker::fetch_artifact(db_path, version, dir.string());
    const std::string origin = "checkpoint " + ref;
    load_weights(model, read_weights(dir.string()), origin);
    optimizer.load_state(safetensors::load((dir / "optimizer.safetensors").string()).tensors);
    const json state = json::parse(util::read_file((dir / "trainer_state.json").string()));
    batches.restore(state.at("sampler"), origin);
    Progress p;
    p.step = state.at("step");
    p.tokens_seen = state.at("tokens_seen");
    if (state.at("best_val_loss").is_number()) p.best_val_loss = state["best_val_loss"];
    fs::remove_all(dir);
    return p;
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    throw;
  }
}

// Histograms of every parameter and its gradient, like W&B's watch().
void log_watch(tracker::Run& run, I3Model& model, int64_t step) {
  auto histogram = [&](const std::string& key, const torch::Tensor& t) {
    torch::Tensor v = t.detach().flatten().to(torch::kFloat32);
    v = v.masked_select(torch::isfinite(v)).cpu();
    if (v.numel() == 0) return run.log_histogram(key, step, 0.0, 0.0, {});
    const double lo = v.min().item<double>(), hi = v.max().item<double>();
    if (hi <= lo) return run.log_histogram(key, step, lo, hi, {v.numel()});
    torch::Tensor counts = torch::histc(v, 64, lo, hi).to(torch::kLong);
    run.log_histogram(key, step, lo, hi, std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + 64));
  };
  for (auto& [name, p] : model->state_dict()) {
    histogram("parameters/" + name, p);
    if (p.grad().defined()) histogram("gradients/" + name, p.grad());
  }
}

// One row per prompt: [step, prompt, output, temperature, top_k].
json sample_rows(I3Model& model, const ChunkTokenizer& tokenizer, const TrainConfig& c, int64_t step) {
  json rows = json::array();
  for (size_t i = 0; i < c.prompts.size(); ++i) {
    const std::string& prompt = c.prompts[i];
    std::vector<int64_t> ids;
    for (int32_t id : tokenizer.encode(std::string_view(prompt))) ids.push_back(id);
    SamplingOptions options;
    options.max_new_tokens = c.sample_tokens;
    options.temperature = c.temperature;
    options.top_k = c.top_k;
    options.seed = (c.seed * 1000003 + static_cast<uint64_t>(step)) * 131 + i;  // a draw per seed, step and prompt
    rows.push_back({step, prompt, generate(model, tokenizer, ids, options).text, c.temperature, c.top_k});
  }
  model->train();
  return rows;
}

}  // namespace

std::string checkpoint_artifact_name(const std::string& run_uid) { return "ckpt-" + run_uid.substr(0, 8); }

TrainResult train(TrainConfig c, const TrainOptions& options) {
  // --- Set-up: everything that can fail on bad input fails here, before a run is touched. ---
  set_default_threads();
  const torch::Device device = parse_device(c.device);
  const bool bf16 = c.dtype == "bfloat16";
  if (bf16 && !device.is_cuda())
    throw std::invalid_argument("train.dtype \"bfloat16\" needs a CUDA device; train.device is \"" + c.device + "\"");
  ChunkTokenizer tokenizer = ChunkTokenizer::load(c.vocab);
  if (c.model.vocab_size == 0) c.set_vocab_size(tokenizer.vocab_size());
  if (c.model.vocab_size < tokenizer.vocab_size())
    throw std::invalid_argument("model.vocab_size " + std::to_string(c.model.vocab_size) + " is smaller than the " +
                                std::to_string(tokenizer.vocab_size()) + " ids of " + c.vocab);
  c.model.validate();
  const int64_t T = c.model.context;
  std::unique_ptr<TokenCache> cache = TokenCache::open(c.cache_dir, c.sources, tokenizer, c.data);
  Batches batches(c, *cache);
  const torch::Tensor val_windows = eval_windows(cache->gather(cache->val()), T + 1, c.eval_batches * c.batch_size);
  const bool has_val = val_windows.size(0) > 0;

  torch::manual_seed(c.seed);
  I3Model model(c.model);
  model->to(device);
  model->train();
  FlatAdamW optimizer(model->state_dict(), c.adamw);

  Progress progress;
  int64_t system_samples = 0;  // a resumed run's system/* metrics continue after these
  if (options.resume_run >= 0) {
    const tracker::RunRecord record = tracker::Query(options.db_path).run(options.resume_run);
    for (auto it = record.summary.begin(); it != record.summary.end(); ++it)
      if (it.key().rfind("system/", 0) == 0 && it.value()["last_step"].is_number_integer())
        system_samples = std::max(system_samples, it.value()["last_step"].get<int64_t>() + 1);
    const std::string ref = checkpoint_artifact_name(record.uid) + ":" + options.resume_from;
    try {
      progress = read_checkpoint(options.db_path, ref, model, optimizer, batches);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("run " + std::to_string(record.id) + " has no checkpoint " + ref + " to resume from (" +
                                  e.what() + ")");
    }
  }
  tracker::Store store(options.db_path);
  std::optional<tracker::Run> run_holder;
  if (options.resume_run >= 0) {
    run_holder.emplace(tracker::Run::resume(store, options.resume_run, progress.step));
    run_holder->set_config(c.to_json());  // with any --set changes (e.g. a larger max_iters)
  } else {
    tracker::RunSpec spec;
    spec.project = c.project;
    spec.name = c.name;
    spec.group = c.group;
    spec.tags = c.tags;
    spec.notes = c.notes;
    spec.config = c.to_json();
    run_holder.emplace(tracker::Run::create(store, spec));
  }
  tracker::Run& run = *run_holder;
  run.define_metric("train/loss", tracker::Goal::kMinimize);
  run.define_metric("val/loss", tracker::Goal::kMinimize);
  run.define_metric("val/perplexity", tracker::Goal::kMinimize);
  if (options.on_start) options.on_start(run.id(), checkpoint_artifact_name(run.uid()));
  auto say = [&](const std::string& line) {
    std::cerr << line << std::endl;
    run.log_console("stderr", line);
  };

  TrainResult result;
  result.run_id = run.id();
  try {
    tracker::SystemMonitor system_monitor(run, std::chrono::seconds(10), system_samples);  // system/* and the heartbeat
    const int64_t tokens_per_step = c.batch_size * c.grad_accum * T;
    say(format("training %s (%lld parameters) on %s%s: %lld tokens per step, steps %lld → %lld", c.model_preset.c_str(),
               static_cast<long long>(c.model.parameter_count()), device.str().c_str(), bf16 ? " in bf16 autocast" : "",
               static_cast<long long>(tokens_per_step), static_cast<long long>(progress.step),
               static_cast<long long>(c.max_iters)));
    say(format("data: %lld training and %lld validation documents, %lld tokens in %s", static_cast<long long>(cache->documents(false)),
               static_cast<long long>(cache->documents(true)), static_cast<long long>(cache->size()), cache->path().c_str()));
    if (options.resume_run >= 0)
      say(format("resumed from checkpoint %s:%s at step %lld; history after it was replaced",
                 checkpoint_artifact_name(run.uid()).c_str(), options.resume_from.c_str(),
                 static_cast<long long>(progress.step)));
    if (!has_val)
      say("warning: no validation tokens (data.val_fraction is 0 or the data is tiny): no val/loss and no \"best\" checkpoint");

    // Held-out loss and samples at `step`; updates progress.
    auto validate = [&](int64_t step, bool samples) {
      if (has_val) {
        const EvalResult e = evaluate(model, val_windows, c.batch_size, bf16);
        model->train();
        progress.val_loss = e.loss;
        progress.val_step = step;
        run.log(step, {{"val/loss", e.loss}, {"val/perplexity", std::exp(e.loss)}});
        say(format("step %lld: val loss %.4f, perplexity %.2f (%lld tokens)", static_cast<long long>(step), e.loss,
                   std::exp(e.loss), static_cast<long long>(e.tokens)));
      }
      if (samples && !c.prompts.empty() && c.sample_tokens > 0)
        run.log_table("samples", step, {"step", "prompt", "output", "temperature", "top_k"},
                      sample_rows(model, tokenizer, c, step));
    };
    auto checkpoint = [&] {
      const bool best = progress.val_step == progress.step && progress.val_loss < progress.best_val_loss;
      if (best) progress.best_val_loss = progress.val_loss;
      result.checkpoint = write_checkpoint(run, options.db_path, model, tokenizer, optimizer, batches, progress, c.to_json(), best);
      say("checkpoint " + result.checkpoint + (best ? " (best)" : ""));
      if (c.checkpoint_keep_last > 0)
        for (const std::string& ref : prune_checkpoints(store, checkpoint_artifact_name(run.uid()), c.checkpoint_keep_last))
          say("deleted checkpoint " + ref + " (checkpoint.keep_last " + std::to_string(c.checkpoint_keep_last) + ")");
    };

    if (progress.step == 0 && c.eval_interval > 0) validate(0, true);

    // Accumulated since the last log line.
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
    int64_t updates = 0, steps = 0, skipped_total = 0;
    // Training time since the last log line: wall time less evaluation, samples and
    // checkpoints. Read after the log step's item() has waited for the device, so on a GPU
    // it counts the queued work too.
    auto interval_start = Clock::now();
    double excluded_seconds = 0;
    int consecutive_skips = 0;
    int64_t last_checkpoint = options.resume_run >= 0 ? progress.step : -1;
    bool stopped = false;

    while (progress.step < c.max_iters) {
      if (options.stop && options.stop->load()) {
        stopped = true;
        break;
      }
      const double lr = c.schedule.at(progress.step);
      optimizer.zero_grad();
      torch::Tensor step_loss = torch::zeros({}, loss_sum.options());
      for (int64_t micro = 0; micro < c.grad_accum; ++micro) {
        torch::Tensor batch = batches.next(device);  // [B, T+1]
        torch::Tensor loss;
        {
          CudaBf16Autocast autocast(bf16);
          loss = I3ModelImpl::loss(model->forward(batch.narrow(1, 0, T)), batch.narrow(1, 1, T));
        }
        (loss / static_cast<double>(c.grad_accum)).backward();
        step_loss += loss.detach().to(torch::kFloat64);
      }
      step_loss /= static_cast<double>(c.grad_accum);
      const torch::Tensor grad_norm = optimizer.clip_grad_norm(c.grad_clip);

      const int64_t step = progress.step + 1;
      const bool last = step == c.max_iters;
      const bool log_now = step % c.log_interval == 0 || step == 1 || last;
      const bool eval_now = c.eval_interval > 0 && (step % c.eval_interval == 0 || last);
      const bool checkpoint_now = (c.checkpoint_interval > 0 && step % c.checkpoint_interval == 0) || last;
      // On a CPU the check is free; on an accelerator it waits for the device, so it happens
      // only where the host waits anyway, unless skipping needs it every step.
      bool finite = true;
      if (device.is_cpu() || c.on_nonfinite == "skip" || log_now || eval_now || checkpoint_now)
        finite = torch::isfinite(loss_sum + step_loss + grad_norm).item<bool>();
      if (finite) {
        optimizer.step(lr);
        loss_sum += step_loss;
        ++updates;
        consecutive_skips = 0;
      } else if (c.on_nonfinite == "stop") {
        throw std::runtime_error(format("non-finite loss or gradient norm by step %lld (lr %.3g): lower optim.lr, check "
                                        "the data, or set train.on_nonfinite to \"skip\"; the last checkpoint is intact",
                                        static_cast<long long>(step), lr));
      } else {
        ++skipped_total;
        if (++consecutive_skips > kMaxConsecutiveSkips)
          throw std::runtime_error(format("%d updates in a row skipped for a non-finite loss (last at step %lld): the "
                                          "model has diverged; lower optim.lr and resume from an earlier checkpoint",
                                          consecutive_skips, static_cast<long long>(step)));
        say(format("step %lld: non-finite loss or gradient norm, update skipped", static_cast<long long>(step)));
      }
      progress.step = step;
      progress.tokens_seen += tokens_per_step;
      ++steps;

      if (log_now) {
        const double loss = updates > 0 ? loss_sum.item<double>() / updates : std::numeric_limits<double>::quiet_NaN();
        const double norm = grad_norm.item<double>();
        const double busy_seconds = seconds_since(interval_start) - excluded_seconds;
        const double tokens_per_sec = steps * tokens_per_step / std::max(busy_seconds, 1e-9);
        std::vector<std::pair<std::string, double>> metrics = {
            {"train/loss", loss},
            {"train/perplexity", std::exp(loss)},
            {"train/grad_norm", norm},
            {"train/learning_rate", lr},
            {"train/tokens_per_sec", tokens_per_sec},
            {"train/tokens_seen", static_cast<double>(progress.tokens_seen)}};
        if (skipped_total > 0) metrics.emplace_back("train/skipped_steps", static_cast<double>(skipped_total));
        run.log(step, metrics);
        const double eta = (c.max_iters - step) * busy_seconds / steps;
        say(format("step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s | ETA %s",
                   static_cast<long long>(step), static_cast<long long>(c.max_iters), loss, lr, norm, tokens_per_sec,
                   duration_text(eta).c_str()));
        loss_sum.zero_();
        updates = steps = 0;
        interval_start = Clock::now();
        excluded_seconds = 0;
      }
      const auto extras_start = Clock::now();
      if (c.watch_interval > 0 && step % c.watch_interval == 0) log_watch(run, model, step);
      if (eval_now || checkpoint_now) validate(step, eval_now);
      if (checkpoint_now) {
        checkpoint();
        last_checkpoint = step;
      }
      excluded_seconds += seconds_since(extras_start);
    }

    if (stopped) {
      say(format("stopping at step %lld", static_cast<long long>(progress.step)));
      if (progress.step != last_checkpoint) checkpoint();
    }
    result.status = stopped ? "stopped" : "finished";
    result.step = progress.step;
    result.val_loss = progress.val_loss;
  } catch (const std::exception& e) {
    say(std::string("error: ") + e.what());
    run.finish("failed");
    throw;
  }
  run.finish(result.status);
  return result;
}

}  // namespace i3
