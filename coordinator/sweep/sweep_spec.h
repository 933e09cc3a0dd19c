// What a sweep is: W&B's sweep configuration keys, so an existing sweep file works, plus
// i3lab's own `job`, `max_concurrent` and `seed`. JSON or YAML (common/config_file).
//
//   method: bayes                       # grid | random | bayes (TPE)
//   metric: {name: val/loss, goal: minimize, target: 2.5, impute: worst}
//   parameters:
//     optim.lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-2}
//     model.d_model: {values: [64, 128]}
//     optim: {parameters: {warmup: {value: 100}}}   # W&B's nested form: optim.warmup
//   early_terminate: {type: asha, min_steps: 50, eta: 3, max_steps: 450}
//   run_cap: 20
//   job: configs/demo.json              # the base job: a file, or a job spec object
//   max_concurrent: 2
//   seed: 1
//
// Top-level keys (anything else is an error naming it):
//   method          required: grid, random or bayes
//   metric          {name, goal: minimize (default) | maximize, target: the sweep starts no
//                   trial once one reached it, impute: latest | best | worst (default), what a
//                   failed trial counts as for TPE}; required for bayes and early_terminate
//   parameters      required: dot paths into the job's config, each one of
//                     {value: V}                                   constant
//                     {values: [...], probabilities: [...]}        categorical
//                     {min: A, max: B, distribution: D, q, mu, sigma}
//                   with D among constant, categorical, int_uniform, uniform,
//                   log_uniform_values, q_uniform, q_log_uniform_values, normal, log_normal.
//                   Without `distribution`, as W&B infers it: values -> categorical, value ->
//                   constant, integer bounds -> int_uniform, other bounds -> uniform.
//                   {parameters: {...}} nests: its keys continue the path.
//   early_terminate {type: asha, min_steps, eta (3), max_steps (0: none)}, or W&B's
//                   {type: hyperband, min_iter, eta (3)} or {type: hyperband, max_iter, s, eta}
//                   (min_iter = max_iter / eta^s), read as ASHA with min_steps = min_iter
//   run_cap         at most this many trials (grid: at most the grid's size); 0: no cap
//   job             the base job (coordinator/jobs/job_spec.h): a train, synthetic or command
//                   job, as an object or a file's path (relative to the sweep file); required
//                   unless `program` is given
//   max_concurrent  trials running at once (0: as many as workers take)
//   seed            the sweep's random seed (default 0)
//   name, description, project   for people; project names the trials' tracker project
//   program         W&B's: without `job`, each trial runs this program (relative to the sweep
//                   file; with python3 when it ends in .py) as a command job, its parameters
//                   given as --path=value arguments, as W&B's agent does
//   command         W&B's: the trial's command line, with the macros ${env} (dropped),
//                   ${interpreter}, ${program}, ${args} (--path=value ...), ${args_no_hyphens}
//                   (path=value ...) and ${args_json} (one JSON object)
//   entity          W&B's, accepted with a note
//
// A command job's trial also finds its parameters as JSON in $I3LAB_SWEEP_PARAMS (the Python
// client's init() puts them in config, as wandb.config holds a W&B sweep's), its tracker group
// and name in $I3LAB_RUN_GROUP and $I3LAB_RUN_NAME. Its parameter paths are not checked: a
// program takes what it takes.
//
// A parameter's path must exist in the job's config (a train job's `config`, or the config of
// a synthetic job), so a typo is an error before anything runs rather than a silently unused
// value.
//
// The argument macros a command job's argv may hold; each trial's argv has them expanded.
constexpr const char* kArgsMacro = "${args}";
constexpr const char* kArgsNoHyphensMacro = "${args_no_hyphens}";
constexpr const char* kArgsJsonMacro = "${args_json}";
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sweep {

// Limits (docs/limits.md): a grid larger than this is refused before it runs.
constexpr uint64_t kMaxGridSize = 100000;
constexpr size_t kMaxParameters = 256;

// A sweep definition that cannot run: names the file and the field.
struct SweepSpecError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

enum class Method { kGrid, kRandom, kBayes };

enum class Distribution {
  kConstant,
  kCategorical,
  kIntUniform,
  kUniform,
  kLogUniformValues,
  kQUniform,
  kQLogUniformValues,
  kNormal,
  kLogNormal,
};

struct Parameter {
  std::string path;  // "optim.lr": a dot path into the job's config
  Distribution distribution = Distribution::kConstant;
  std::vector<nlohmann::json> values;  // constant: one; categorical: each choice
  std::vector<double> probabilities;   // categorical: one per value, summing to 1 ("" : equal)
  double min = 0, max = 0;             // bounds (the values themselves, also for *_values)
  double q = 1;                        // q_*: the step values are rounded to
  double mu = 0, sigma = 1;            // normal, log_normal (of the value's log)
};

enum class Impute { kWorst, kBest, kLatest };

struct Metric {
  std::string name;  // "" : none
  bool maximize = false;
  std::optional<double> target;
  Impute impute = Impute::kWorst;
};

// Early termination by ASHA (asynchronous successive halving): rungs at min_steps * eta^k
// steps, up to max_steps.
struct EarlyTerminate {
  bool enabled = false;
  int64_t min_steps = 0;
  int eta = 3;
  int64_t max_steps = 0;  // 0: rungs go on while trials report
};

struct SweepSpec {
  std::string name, description, project;
  Method method = Method::kRandom;
  Metric metric;
  std::vector<Parameter> parameters;  // by path (a JSON object keeps no order)
  EarlyTerminate early_terminate;
  int64_t run_cap = 0;
  int max_concurrent = 0;
  uint64_t seed = 0;
  nlohmann::json job;              // the base job spec, its file read
  std::vector<std::string> notes;  // one line per key accepted but not used (W&B's `entity`)
};

// Reads and checks a definition. `origin` (the file's name) prefixes every error; `base_dir`
// is where a `job` path is read from. Throws SweepSpecError, or std::runtime_error when the
// job's file cannot be read.
SweepSpec parse_sweep_spec(const nlohmann::json& j, const std::string& origin, const std::string& base_dir);
// Reads a sweep file (JSON or YAML) and parses it.
SweepSpec read_sweep_file(const std::string& path);

// Every key, as parse_sweep_spec reads it back (the job inline): what the coordinator stores.
nlohmann::json to_json(const SweepSpec& spec);

const char* method_name(Method m);              // grid random bayes
const char* distribution_name(Distribution d);  // as W&B writes them

// The grid's size: the product of each parameter's number of values. Throws SweepSpecError
// naming a parameter that is not a finite set (a continuous distribution).
uint64_t grid_size(const SweepSpec& spec);

}  // namespace sweep
