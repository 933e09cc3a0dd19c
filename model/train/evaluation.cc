#include "model/train/evaluation.h"

#include <cmath>
#include <filesystem>
#include <optional>

#include "common/util/files.h"
#include "model/io/model_folder.h"
#include "model/net/evaluate.h"
#include "model/net/generate.h"
#include "model/net/runtime.h"
#include "model/train/samples.h"
#include "tracker/db/content.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"

namespace i3 {
namespace {

constexpr const char* kArtifactPrefix = "artifact:";

// The model of `job`: a folder as it is, or an artifact copied out of the database first.
ModelFolder load_model(const EvalJob& job, std::optional<tracker::ArtifactVersion>* artifact) {
  if (job.model.rfind(kArtifactPrefix, 0) != 0) return load_model_folder(job.model);
  const std::string db = job.db.empty() ? job.artifact_db : job.db;
  tracker::Query query(db);
  *artifact = query.artifact(job.model.substr(std::string(kArtifactPrefix).size()));
  const std::string dir = tracker::ContentStore(db).scratch_dir("eval");
  try {
    query.fetch_artifact(**artifact, dir);
    ModelFolder folder = load_model_folder(dir);
    std::filesystem::remove_all(dir);
    return folder;
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
    throw;
  }
}

// A folder of its own under $TMPDIR (or /tmp), removed with everything in it when done: the
// token cache of an evaluation given no --cache-dir, which must not litter the working
// directory.
}  // namespace

EvalReport run_evaluation(const EvalJob& job) {
  if (job.data.format != "text" && job.data.format != "jsonl") throw std::invalid_argument("the data format must be text or jsonl");
  if (job.batch < 1) throw std::invalid_argument("the batch size must be at least 1");
  if (job.max_windows < 0) throw std::invalid_argument("max windows must be ≥ 0 (0: all)");
  set_default_threads();
  std::optional<tracker::ArtifactVersion> artifact;
  ModelFolder folder = load_model(job, &artifact);
  EvalReport report;
  report.warnings = folder.warnings;
  if (!folder.tokenizer) throw std::runtime_error(job.model + ": the model has no vocabulary (tokenizer.json)");
  folder.model->to(parse_device(job.device));

  DataOptions split = job.split;
  if (!job.val_split) split.val_fraction = 0;
  std::optional<util::TempDir> scratch;  // outlives the cache, which maps a file in it
  if (job.cache_dir.empty()) scratch.emplace("i3lab-eval");
  auto cache = TokenCache::open(scratch ? scratch->path() : job.cache_dir, {job.data}, *folder.tokenizer, split);
  const std::vector<int64_t> tokens = cache->gather(job.val_split ? cache->val() : cache->train());
  const torch::Tensor windows = eval_windows(tokens, folder.config.context + 1, job.max_windows);
  if (windows.size(0) == 0)
    throw std::runtime_error(job.data.path + ": no tokens to evaluate in the " + (job.val_split ? "val" : "all") + " split");
  const EvalResult result = evaluate(folder.model, windows, job.batch);
  report.loss = result.loss;
  report.perplexity = std::exp(result.loss);
  report.tokens = result.tokens;
  report.windows = windows.size(0);
  if (job.db.empty()) return report;

  // The tracked run: metrics at the checkpoint's step, samples, and lineage.
  tracker::Store store(job.db);
  tracker::RunSpec spec;
  spec.project = job.project;
  spec.name = job.name;
  spec.tags = {"eval"};
  spec.config = {{"job", "eval"},          {"model", job.model},     {"data", job.data.path},
                 {"split", job.val_split ? "val" : "all"}, {"windows", report.windows}, {"tokens", report.tokens}};
  tracker::Run run = tracker::Run::create(store, spec);
  int64_t step = 0;
  if (artifact) {
    run.use_artifact(artifact->name + ":v" + std::to_string(artifact->version));
    step = artifact->metadata.value("step", int64_t{0});
  }
  run.log(step, {{"val/loss", report.loss}, {"val/perplexity", report.perplexity}});
  SamplingOptions sampling;
  sampling.max_new_tokens = job.sample_tokens;
  sampling.temperature = 0.8;
  sampling.top_k = 40;
  run.log_table(kSamplesTable, step, sample_columns(),
                sample_rows(folder.model, *folder.tokenizer, job.prompts, sampling, step, [](size_t) { return 0; }));
  run.finish();
  report.run_id = run.id();
  return report;
}

}  // namespace i3
