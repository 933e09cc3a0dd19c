#include "model/train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <optional>

#include "common/util/clock.h"
#include "common/util/json.h"
#include "model/data/samplers.h"
#include "model/data/token_cache.h"
#include "model/dist/data_parallel.h"
#include "model/net/evaluate.h"
#include "model/net/runtime.h"
#include "model/train/checkpoint.h"
#include "model/optim/optimizer.h"
#include "model/train/samples.h"
#include "tracker/db/content.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"
#include "tracker/run/system_metrics.h"

namespace i3 {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using util::Clock;
using util::seconds_since;

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

// Training batches from the configured sampler, whose position goes into checkpoints. With
// `ranks` ranks, each call draws a global batch of ranks × batch_size windows and keeps rank
// `rank`'s share, so the position is the same on every rank.
class Batches {
 public:
  Batches(const TrainConfig& c, const TokenCache& cache, int rank, int ranks)
      : cache_(cache), window_(c.model.context + 1), batch_size_(c.batch_size), rank_(rank), ranks_(ranks) {
    if (c.sampler == "random") random_.emplace(cache, c.sources, window_, c.seed);
    else epoch_.emplace(cache, window_, c.seed);
  }

  // [batch_size, context + 1] token ids on `device`: inputs are [:, :-1], targets [:, 1:].
  torch::Tensor next(torch::Device device) {
    torch::Tensor out = torch::empty({batch_size_, window_}, torch::kLong);
    int64_t* p = out.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch_size_ * ranks_; ++b) {
      const int64_t start = random_ ? random_->next() : epoch_->next();
      if (b / batch_size_ == rank_) cache_.copy(start, window_, p + (b % batch_size_) * window_);
    }
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
  const int64_t window_, batch_size_, rank_, ranks_;
  std::optional<RandomWindows> random_;
  std::optional<EpochWindows> epoch_;
};

// How far training has come, and the validation losses checkpoints record.
struct Progress {
  int64_t step = 0, tokens_seen = 0;
  double val_loss = std::numeric_limits<double>::quiet_NaN();  // at `val_step`
  int64_t val_step = -1;
  double best_val_loss = std::numeric_limits<double>::infinity();
};

// One training run, phase by phase in the order train() calls them.
class Trainer {
 public:
  // Set-up: everything that can fail on bad input fails here, before a run is touched. With
  // several ranks, joins their process group.
  Trainer(TrainConfig config, const TrainOptions& options);
  // Rank 0 (or the only process): it restores, tracks the run and writes checkpoints.
  bool leader() const { return !dp_ || dp_->rank() == 0; }
  // Weights, moments, sampler and progress from the checkpoint options.resume_from of run
  // options.resume_run.
  void restore();
  // With several ranks: rank 0's weights, moments, sampler and progress on every rank.
  void start_together();
  // The run in the tracker (rank 0): created, or re-opened with its history after the
  // checkpoint deleted.
  void open_run();
  // The loop; marks the run finished, stopped or failed.
  TrainResult loop();

 private:
  struct Update {
    torch::Tensor loss;       // mean over the micro-batches, 0-dim float64 on the device
    torch::Tensor grad_norm;  // before clipping, 0-dim float64 on the device
    torch::Tensor stop;       // 0-dim float64: > 0 when some rank asked to stop (several ranks only)
  };
  Update forward_backward(bool stop_requested);
  void log_progress(int64_t step, double lr, const torch::Tensor& grad_norm);
  void check_ranks_agree();
  void log_watch(int64_t step);
  void validate(int64_t step, bool samples);
  void checkpoint();
  std::vector<std::string> prune_checkpoints();
  void say(const std::string& line);

  const TrainOptions& options_;
  const World world_;
  const torch::Device device_;
  const bool bf16_;
  const ChunkTokenizer tokenizer_;
  const TrainConfig c_;
  std::unique_ptr<TokenCache> cache_;
  std::optional<Batches> batches_;
  torch::Tensor val_windows_;  // [N, context + 1]
  I3Model model_{nullptr};
  std::optional<FlatAdamW> optimizer_;
  std::unique_ptr<DataParallel> dp_;
  std::optional<tracker::SystemSampler> rank_sampler_;  // several ranks: each rank's rank/R/* metrics
  Progress progress_;
  int64_t system_samples_ = 0;  // a resumed run's system/* metrics continue after these
  std::optional<tracker::Store> store_;
  std::optional<tracker::Run> run_;
  TrainResult result_;

  // Since the last log line: the summed step losses (restored across a resume as
  // interval_loss_sum_), updates, steps, and the training time (wall time less evaluation,
  // samples and checkpoints).
  double interval_loss_sum_ = 0;
  torch::Tensor loss_sum_;
  int64_t updates_ = 0, steps_ = 0, skipped_total_ = 0;
  Clock::time_point interval_start_;
  double excluded_seconds_ = 0;
};

// The config with the vocabulary's size filled in and the shape checked.
TrainConfig with_vocabulary(TrainConfig c, const ChunkTokenizer& tokenizer) {
  if (c.model.vocab_size == 0) c.set_vocab_size(tokenizer.vocab_size());
  if (c.model.vocab_size < tokenizer.vocab_size())
    throw std::invalid_argument("model.vocab_size " + std::to_string(c.model.vocab_size) + " is smaller than the " +
                                std::to_string(tokenizer.vocab_size()) + " ids of " + c.vocab);
  if (c.data.separator_token >= c.model.vocab_size)
    throw std::invalid_argument("data.separator_token " + std::to_string(c.data.separator_token) +
                                " is not an id of the model's vocabulary (0.." + std::to_string(c.model.vocab_size - 1) + ")");
  c.model.validate();
  return c;
}

// The device to train on, once LibTorch's threads are set (they must be before any work). Ranks
// of one machine given "cuda" or "auto" each take GPU LOCAL_RANK (modulo the GPUs it sees).
torch::Device training_device(const TrainConfig& c, const World& world) {
  set_default_threads();
  torch::Device device = parse_device(c.device);
  if (device.is_cuda() && !device.has_index() && world.distributed())
    device = torch::Device(torch::kCUDA, static_cast<torch::DeviceIndex>(world.local_rank % torch::cuda::device_count()));
  if (c.dtype == "bfloat16" && !device.is_cuda())
    throw std::invalid_argument("train.dtype \"bfloat16\" needs a CUDA device; train.device is \"" + c.device + "\"");
  return device;
}

// The launcher's world checked against the config's distributed.ranks.
World checked_world(const World& world, const TrainConfig& c) {
  const int64_t ranks = c.distributed.ranks;
  if (ranks > 1 && !world.distributed())
    throw std::invalid_argument("distributed.ranks is " + std::to_string(ranks) +
                                ", but this process was started alone (no RANK/WORLD_SIZE, not a task of an srun step): "
                                "submit the config to a coordinator (i3lab submit), or start " + std::to_string(ranks) +
                                " copies with srun -n " + std::to_string(ranks) + " or a torchrun-style launcher");
  if (ranks > 1 && world.size != ranks)
    throw std::invalid_argument("distributed.ranks is " + std::to_string(ranks) + ", but the launcher started " +
                                std::to_string(world.size) + " ranks (" + world.launcher + "); make them agree");
  return world;
}

Trainer::Trainer(TrainConfig config, const TrainOptions& options)
    : options_(options),
      world_(checked_world(options.world, config)),
      device_(training_device(config, world_)),
      bf16_(config.dtype == "bfloat16"),
      tokenizer_(ChunkTokenizer::load(config.vocab)),
      c_(with_vocabulary(std::move(config), tokenizer_)) {
  cache_ = TokenCache::open(c_.cache_dir, c_.sources, tokenizer_, c_.data);
  batches_.emplace(c_, *cache_, world_.rank, world_.size);
  val_windows_ = eval_windows(cache_->gather(cache_->val()), c_.model.context + 1, c_.eval_batches * c_.batch_size * world_.size);
  torch::manual_seed(c_.seed);
  model_ = I3Model(c_.model);
  model_->to(device_);
  model_->train();
  optimizer_.emplace(model_->state_dict(), c_.adamw);
  if (world_.distributed()) {
    std::cerr << format("rank %d of %d (%s): meeting the others at %s:%d", world_.rank, world_.size, world_.launcher.c_str(),
                        world_.master_addr.c_str(), world_.master_port)
              << std::endl;
    dp_ = std::make_unique<DataParallel>(world_, c_.distributed, device_);
    dp_->attach(*optimizer_);
    rank_sampler_.emplace();
  }
}

void Trainer::start_together() {
  if (!dp_) return;
  json state;
  if (leader())
    state = {{"step", progress_.step},
             {"tokens_seen", progress_.tokens_seen},
             {"best_val_loss", std::isfinite(progress_.best_val_loss) ? json(progress_.best_val_loss) : json()},
             {"sampler", batches_->state()},
             {"interval_loss_sum", interval_loss_sum_},
             {"interval_updates", updates_},
             {"skipped_steps", skipped_total_},
             {"optimizer_steps", optimizer_->steps_taken()}};
  // Every rank must train on the same settings, or their collectives would not match.
  dp_->check_same(DataParallel::checksum(c_.to_json().dump()), "the training config (--set or the file differs between ranks)");
  state = util::parse_json(dp_->share("trainer_state", state.dump()), "rank 0's trainer state");
  if (!leader()) {
    progress_.step = state["step"];
    progress_.tokens_seen = state["tokens_seen"];
    if (state["best_val_loss"].is_number()) progress_.best_val_loss = state["best_val_loss"];
    batches_->restore(state["sampler"], "rank 0's sampler");
    interval_loss_sum_ = state["interval_loss_sum"];
    updates_ = state["interval_updates"];
    skipped_total_ = state["skipped_steps"];
    optimizer_->set_steps_taken(state["optimizer_steps"]);
  }
  dp_->broadcast(optimizer_->state_buffers());
  say(format("rank %d of %d: %s process group formed; starting at step %lld", dp_->rank(), dp_->size(), dp_->backend().c_str(),
             static_cast<long long>(progress_.step)));
}

void Trainer::restore() {
  tracker::Query query(options_.db_path);
  const tracker::RunRecord record = query.run(options_.resume_run);
  for (auto it = record.summary.begin(); it != record.summary.end(); ++it)
    if (it.key().rfind("system/", 0) == 0 && it.value()["last_step"].is_number_integer())
      system_samples_ = std::max(system_samples_, it.value()["last_step"].get<int64_t>() + 1);
  const std::string ref = checkpoint_artifact_name(record.uid) + ":" + options_.resume_from;
  tracker::ArtifactVersion version;
  try {
    version = query.artifact(ref);
  } catch (const tracker::NotFound& e) {
    throw tracker::NotFound("run " + std::to_string(record.id) + " has no checkpoint " + ref + " to resume from (" +
                            e.what() + ")");
  }
  const std::string dir = tracker::ContentStore(options_.db_path).scratch_dir("resume");
  try {
    query.fetch_artifact(version, dir);
    const std::string origin = "checkpoint " + ref;
    // The ids of the data must mean what they meant when the checkpoint was trained.
    const ChunkTokenizer trained_with = ChunkTokenizer::load((fs::path(dir) / "tokenizer.json").string());
    if (trained_with.vocab_size() != tokenizer_.vocab_size() || trained_with.to_json() != tokenizer_.to_json())
      throw std::invalid_argument(origin + " was trained with a vocabulary of " + std::to_string(trained_with.vocab_size()) +
                                  " ids, and data.vocab (" + c_.vocab + ") is another one of " +
                                  std::to_string(tokenizer_.vocab_size()) + " ids: resume with the vocabulary it was trained with");
    const TrainerState state = read_checkpoint(dir, model_, *optimizer_, origin);
    batches_->restore(state.sampler, origin);
    progress_.step = state.step;
    progress_.tokens_seen = state.tokens_seen;
    progress_.best_val_loss = state.best_val_loss;
    interval_loss_sum_ = state.interval_loss_sum;
    updates_ = state.interval_updates;
    skipped_total_ = state.skipped_steps;
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    throw;
  }
  fs::remove_all(dir);
}

void Trainer::open_run() {
  if (!leader()) return;
  store_.emplace(options_.db_path);
  if (options_.resume_run >= 0) {
    run_.emplace(tracker::Run::resume(*store_, options_.resume_run, progress_.step));
    run_->set_config(c_.to_json());  // with any --set changes (e.g. a larger max_iters)
  } else {
    tracker::RunSpec spec;
    spec.project = c_.project;
    spec.name = c_.name;
    spec.group = c_.group;
    spec.tags = c_.tags;
    spec.notes = c_.notes;
    spec.config = c_.to_json();
    run_.emplace(tracker::Run::create(*store_, spec));
  }
  run_->define_metric("train/loss", tracker::Goal::kMinimize);
  run_->define_metric("val/loss", tracker::Goal::kMinimize);
  run_->define_metric("val/perplexity", tracker::Goal::kMinimize);
  result_.run_id = run_->id();
  if (options_.on_start) options_.on_start(run_->id(), checkpoint_artifact_name(run_->uid()));
}

void Trainer::say(const std::string& line) {
  std::cerr << line << std::endl;
  if (run_) run_->log_console("stderr", line);
}

TrainResult Trainer::loop() {
  try {
    std::optional<tracker::SystemMonitor> system_monitor;  // system/* and the heartbeat
    if (run_) system_monitor.emplace(*run_, std::chrono::seconds(10), system_samples_);
    const int64_t tokens_per_step = c_.batch_size * c_.grad_accum * c_.model.context * world_.size;
    say(format("training %s (%lld parameters) on %s%s: %lld tokens per step%s, steps %lld → %lld", c_.model_preset.c_str(),
               static_cast<long long>(c_.model.parameter_count()), device_.str().c_str(), bf16_ ? " in bf16 autocast" : "",
               static_cast<long long>(tokens_per_step),
               dp_ ? format(" over %d ranks", world_.size).c_str() : "", static_cast<long long>(progress_.step),
               static_cast<long long>(c_.max_iters)));
    say(format("data: %lld training and %lld validation documents, %lld tokens in %s",
               static_cast<long long>(cache_->documents(false)), static_cast<long long>(cache_->documents(true)),
               static_cast<long long>(cache_->size()), cache_->path().c_str()));
    if (options_.resume_run >= 0 && run_)
      say(format("resumed from checkpoint %s:%s at step %lld; history after it was replaced",
                 checkpoint_artifact_name(run_->uid()).c_str(), options_.resume_from.c_str(),
                 static_cast<long long>(progress_.step)));
    if (val_windows_.size(0) == 0)
      say("warning: no validation tokens (data.val_fraction is 0 or the data is tiny): no val/loss and no \"best\" checkpoint");

    if (dp_) dp_->wait_for_leader("opens the run");
    if (progress_.step == 0 && c_.eval_interval > 0) validate(0, true);

    loss_sum_ = torch::full({}, interval_loss_sum_, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
    interval_start_ = Clock::now();
    int consecutive_skips = 0;
    int64_t last_checkpoint = options_.resume_run >= 0 ? progress_.step : -1;
    bool stopped = false;
    const int64_t first_step = progress_.step + 1;
    while (progress_.step < c_.max_iters) {
      const bool stop_requested = options_.stop && options_.stop->load();
      if (stop_requested && !dp_) {
        stopped = true;
        break;
      }
      const double lr = c_.schedule.at(progress_.step);
      const Update update = forward_backward(stop_requested);

      const int64_t step = progress_.step + 1;
      const bool last = step == c_.max_iters;
      const bool log_now = step % c_.log_interval == 0 || step == 1 || last;
      const bool eval_now = c_.eval_interval > 0 && (step % c_.eval_interval == 0 || last);
      const bool checkpoint_now = (c_.checkpoint_interval > 0 && step % c_.checkpoint_interval == 0) || last;
      // On a CPU the check is free; on an accelerator it waits for the device, so it happens
      // only where the host waits anyway, unless skipping needs it every step.
      bool finite = true;
      if (device_.is_cpu() || c_.on_nonfinite == "skip" || log_now || eval_now || checkpoint_now)
        finite = torch::isfinite(loss_sum_ + update.loss + update.grad_norm).item<bool>();
      if (finite) {
        optimizer_->step(lr);
        loss_sum_ += update.loss;
        ++updates_;
        consecutive_skips = 0;
      } else if (c_.on_nonfinite == "stop") {
        throw std::runtime_error(format("non-finite loss or gradient norm by step %lld (lr %.3g): lower optim.lr, check "
                                        "the data, or set train.on_nonfinite to \"skip\"; the last checkpoint is intact",
                                        static_cast<long long>(step), lr));
      } else {
        ++skipped_total_;
        if (++consecutive_skips > kMaxConsecutiveSkips)
          throw std::runtime_error(format("%d updates in a row skipped for a non-finite loss (last at step %lld): the "
                                          "model has diverged; lower optim.lr and resume from an earlier checkpoint",
                                          consecutive_skips, static_cast<long long>(step)));
        say(format("step %lld: non-finite loss or gradient norm, update skipped", static_cast<long long>(step)));
      }
      progress_.step = step;
      progress_.tokens_seen += tokens_per_step;
      ++steps_;

      if (dp_ && step == first_step) check_ranks_agree();
      if (log_now) log_progress(step, lr, update.grad_norm);
      const auto extras_start = Clock::now();
      const bool watch_now = c_.watch_interval > 0 && step % c_.watch_interval == 0;
      if (watch_now && run_) log_watch(step);
      if (eval_now || checkpoint_now) validate(step, eval_now);
      if (checkpoint_now) {
        if (run_) checkpoint();
        last_checkpoint = step;
      }
      if (dp_ && (watch_now || eval_now || checkpoint_now)) dp_->wait_for_leader("writes a checkpoint, samples or histograms");
      excluded_seconds_ += seconds_since(extras_start);
      // Ranks agree on stopping through the step's averaged values: read on a CPU every step, on
      // an accelerator where the host waits anyway. Every rank reads it at the same steps.
      if (dp_ && (device_.is_cpu() || log_now) && update.stop.item<double>() > 0) {
        stopped = true;
        break;
      }
    }

    if (stopped) {
      say(format("stopping at step %lld", static_cast<long long>(progress_.step)));
      if (progress_.step != last_checkpoint && run_) checkpoint();
    }
    result_.status = stopped ? "stopped" : "finished";
    result_.step = progress_.step;
    result_.val_loss = progress_.val_loss;
  } catch (const std::exception& e) {
    say(std::string("error: ") + e.what());
    if (run_) run_->finish("failed");
    throw;
  }
  if (run_) run_->finish(result_.status);
  return result_;
}

// grad_accum micro-batches forward and backward; the gradients clipped, not yet applied.
// With several ranks the gradients and the loss are averaged over them before clipping (the
// last micro-batch's backward sends them), so every rank clips and updates alike.
Trainer::Update Trainer::forward_backward(bool stop_requested) {
  const int64_t T = c_.model.context;
  optimizer_->zero_grad();
  torch::Tensor step_loss = torch::zeros({}, loss_sum_.options());
  for (int64_t micro = 0; micro < c_.grad_accum; ++micro) {
    torch::Tensor batch = batches_->next(device_);  // [B, T+1]
    torch::Tensor loss;
    {
      CudaBf16Autocast autocast(bf16_);
      loss = I3ModelImpl::loss(model_->forward(batch.narrow(1, 0, T)), batch.narrow(1, 1, T));
    }
    if (dp_) dp_->begin_backward(micro == c_.grad_accum - 1);
    (loss / static_cast<double>(c_.grad_accum)).backward();
    step_loss += loss.detach().to(torch::kFloat64);
  }
  step_loss /= static_cast<double>(c_.grad_accum);
  torch::Tensor stop;
  if (dp_) {
    // [loss, stop vote] averaged together: one small collective per step.
    torch::Tensor values = torch::stack({step_loss, torch::full({}, stop_requested ? 1.0 : 0.0, step_loss.options())});
    dp_->end_backward(values);
    step_loss = values[0];
    stop = values[1];
  }
  return {step_loss, optimizer_->clip_grad_norm(c_.grad_clip), stop};
}

// After the first step: every rank must hold the very same parameters.
void Trainer::check_ranks_agree() {
  std::vector<torch::Tensor> params;
  for (const auto& item : model_->named_parameters()) params.push_back(item.value());
  dp_->check_same(DataParallel::checksum(params), "the parameters after the first step");
}

// train/* metrics and the progress line; starts the next interval.
void Trainer::log_progress(int64_t step, double lr, const torch::Tensor& grad_norm) {
  const double loss = updates_ > 0 ? loss_sum_.item<double>() / updates_ : std::numeric_limits<double>::quiet_NaN();
  const double norm = grad_norm.item<double>();
  // Read after item() waited for the device, so on a GPU this counts the queued work too.
  const double busy_seconds = seconds_since(interval_start_) - excluded_seconds_;
  const int64_t tokens_per_step = c_.batch_size * c_.grad_accum * c_.model.context * world_.size;
  const double tokens_per_sec = steps_ * tokens_per_step / std::max(busy_seconds, 1e-9);
  std::string comm_text;
  std::vector<std::pair<std::string, double>> rank_metrics;
  if (dp_) {
    // Every rank's CPU, memory, speed and communication, gathered by rank 0 (a collective:
    // every rank logs at the same steps).
    const CommStats comm = dp_->take_stats();
    double cpu = 0, rss = 0;
    for (const auto& [key, value] : rank_sampler_->sample()) {
      if (key == "system/cpu_percent") cpu = value;
      if (key == "system/rss_bytes") rss = value;
    }
    const double per_step = 1000.0 / std::max<int64_t>(comm.steps, 1);
    const auto all = dp_->all_gather({cpu, rss, tokens_per_sec / world_.size, comm.seconds * per_step, comm.exposed_seconds * per_step});
    for (size_t r = 0; r < all.size(); ++r) {
      const std::string prefix = "rank/" + std::to_string(r) + "/";
      rank_metrics.insert(rank_metrics.end(), {{prefix + "cpu_percent", all[r][0]},
                                               {prefix + "rss_bytes", all[r][1]},
                                               {prefix + "tokens_per_sec", all[r][2]},
                                               {prefix + "comm_ms", all[r][3]},
                                               {prefix + "comm_exposed_ms", all[r][4]}});
    }
    rank_metrics.insert(rank_metrics.end(), {{"train/comm_ms", all[0][3]}, {"train/comm_exposed_ms", all[0][4]}});
    const double hidden = all[0][3] > 0 ? 100.0 * std::max(0.0, 1.0 - all[0][4] / all[0][3]) : 0;
    comm_text = format(" | comm %.1f ms/step, %.0f%% hidden", all[0][3], hidden);
  }
  if (run_) {  // ranks other than 0 log nothing themselves
    std::vector<std::pair<std::string, double>> metrics = {{"train/loss", loss},
                                                           {"train/perplexity", std::exp(loss)},
                                                           {"train/grad_norm", norm},
                                                           {"train/learning_rate", lr},
                                                           {"train/tokens_per_sec", tokens_per_sec},
                                                           {"train/tokens_seen", static_cast<double>(progress_.tokens_seen)}};
    if (skipped_total_ > 0) metrics.emplace_back("train/skipped_steps", static_cast<double>(skipped_total_));
    metrics.insert(metrics.end(), rank_metrics.begin(), rank_metrics.end());
    run_->log(step, metrics);
    const double eta = (c_.max_iters - step) * busy_seconds / steps_;
    say(format("step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | %.0f tok/s%s | ETA %s", static_cast<long long>(step),
               static_cast<long long>(c_.max_iters), loss, lr, norm, tokens_per_sec, comm_text.c_str(), duration_text(eta).c_str()));
  }
  loss_sum_.zero_();
  updates_ = steps_ = 0;
  interval_start_ = Clock::now();
  excluded_seconds_ = 0;
}

// Histograms of every parameter and its gradient, like W&B's watch().
void Trainer::log_watch(int64_t step) {
  auto histogram = [&](const std::string& key, const torch::Tensor& t) {
    torch::Tensor v = t.detach().flatten().to(torch::kFloat32);
    v = v.masked_select(torch::isfinite(v)).cpu();
    if (v.numel() == 0) return run_->log_histogram(key, step, 0.0, 0.0, {});
    const double lo = v.min().item<double>(), hi = v.max().item<double>();
    if (hi <= lo) return run_->log_histogram(key, step, lo, hi, {v.numel()});
    torch::Tensor counts = torch::histc(v, 64, lo, hi).to(torch::kLong);
    run_->log_histogram(key, step, lo, hi, std::vector<int64_t>(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + 64));
  };
  for (auto& [name, p] : model_->state_dict()) {
    histogram("parameters/" + name, p);
    if (p.grad().defined()) histogram("gradients/" + name, p.grad());
  }
}

// Held-out loss at `step` (and, with `samples`, the samples table). Several ranks each evaluate
// an equal share of the windows and add up their token losses.
void Trainer::validate(int64_t step, bool samples) {
  if (val_windows_.size(0) > 0) {
    EvalResult e;
    if (!dp_) {
      e = evaluate(model_, val_windows_, c_.batch_size, bf16_);
    } else {
      const int64_t n = val_windows_.size(0), lo = n * dp_->rank() / dp_->size(), hi = n * (dp_->rank() + 1) / dp_->size();
      if (hi > lo) e = evaluate(model_, val_windows_.narrow(0, lo, hi - lo), c_.batch_size, bf16_);
      torch::Tensor sums = torch::tensor({e.loss * static_cast<double>(e.tokens), static_cast<double>(e.tokens)},
                                         torch::TensorOptions().dtype(torch::kFloat64)).to(device_);
      dp_->all_reduce_sum(sums);
      const torch::Tensor total = sums.cpu();
      e.tokens = static_cast<int64_t>(total[1].item<double>());
      e.loss = total[0].item<double>() / std::max<double>(total[1].item<double>(), 1);
    }
    model_->train();
    progress_.val_loss = e.loss;
    progress_.val_step = step;
    if (run_) {
      run_->log(step, {{"val/loss", e.loss}, {"val/perplexity", std::exp(e.loss)}});
      say(format("step %lld: val loss %.4f, perplexity %.2f (%lld tokens)", static_cast<long long>(step), e.loss,
                 std::exp(e.loss), static_cast<long long>(e.tokens)));
    }
  }
  if (samples && run_ && !c_.prompts.empty() && c_.sample_tokens > 0) {
    SamplingOptions options;
    options.max_new_tokens = c_.sample_tokens;
    options.temperature = c_.temperature;
    options.top_k = c_.top_k;
    options.interrupt = options_.stop;  // a stop request ends long samples (then: checkpoint, stopped)
    // A draw of its own per seed, step and prompt.
    auto seed_of = [&](size_t i) { return (c_.seed * 1000003 + static_cast<uint64_t>(step)) * 131 + i; };
    run_->log_table(kSamplesTable, step, sample_columns(), sample_rows(model_, tokenizer_, c_.prompts, options, step, seed_of));
    model_->train();
  }
}

// Writes a checkpoint and logs it as the next version of the run's checkpoint artifact.
void Trainer::checkpoint() {
  tracker::Run& run = *run_;
  const bool best = progress_.val_step == progress_.step && progress_.val_loss < progress_.best_val_loss;
  if (best) progress_.best_val_loss = progress_.val_loss;
  TrainerState state;
  state.step = progress_.step;
  state.tokens_seen = progress_.tokens_seen;
  state.sampler = batches_->state();
  if (progress_.val_step == progress_.step) state.val_loss = progress_.val_loss;
  state.best_val_loss = progress_.best_val_loss;
  state.config = c_.to_json();
  state.interval_loss_sum = loss_sum_.item<double>();
  state.interval_updates = updates_;
  state.skipped_steps = skipped_total_;
  const std::string name = checkpoint_artifact_name(run.uid());
  const std::string dir = run.scratch_dir(name);
  tracker::ArtifactVersion version;
  try {
    write_checkpoint(dir, model_, tokenizer_, *optimizer_, state);
    const json metadata = {{"step", state.step},
                           {"tokens_seen", state.tokens_seen},
                           {"val_loss", std::isfinite(state.val_loss) ? json(state.val_loss) : json()}};
    version = run.log_artifact(name, "checkpoint", dir, metadata, best ? std::vector<std::string>{"best"} : std::vector<std::string>{});
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    throw;
  }
  fs::remove_all(dir);
  result_.checkpoint = name + ":v" + std::to_string(version.version);
  say("checkpoint " + result_.checkpoint + (best ? " (best)" : ""));
  if (c_.checkpoint_keep_last > 0)
    for (const std::string& ref : prune_checkpoints())
      say("deleted checkpoint " + ref + " (checkpoint.keep_last " + std::to_string(c_.checkpoint_keep_last) + ")");
}

// Deletes the checkpoints older than the newest checkpoint.keep_last, except those an alias
// names (best) or another run used (an evaluation's lineage). Returns them.
std::vector<std::string> Trainer::prune_checkpoints() {
  std::vector<tracker::ArtifactVersion> versions = tracker::Query(options_.db_path).artifacts(checkpoint_artifact_name(run_->uid()));
  std::sort(versions.begin(), versions.end(), [](const auto& a, const auto& b) { return a.version > b.version; });
  std::vector<std::string> deleted;
  for (size_t i = static_cast<size_t>(c_.checkpoint_keep_last); i < versions.size(); ++i) {
    if (!versions[i].aliases.empty() || !versions[i].used_by.empty()) continue;
    const std::string ref = versions[i].name + ":v" + std::to_string(versions[i].version);
    run_->delete_artifact_version(ref);
    deleted.push_back(ref);
  }
  return deleted;
}

}  // namespace

TrainResult train(TrainConfig config, const TrainOptions& options) {
  Trainer trainer(std::move(config), options);
  if (options.resume_run >= 0 && trainer.leader()) trainer.restore();
  trainer.start_together();
  trainer.open_run();
  return trainer.loop();
}

TrainConfig stored_config(const std::string& db_path, int64_t run_id, const std::vector<std::string>& overrides) {
  const tracker::RunRecord record = tracker::Query(db_path).run(run_id);
  if (!record.config_error.empty())
    throw std::runtime_error(db_path + ": run " + std::to_string(record.id) + "'s " + record.config_error +
                             " (the database is damaged); start a new run from a config file instead");
  return TrainConfig::parse(record.config, db_path + ": run " + std::to_string(record.id) + "'s config", overrides);
}

}  // namespace i3
