#include "coordinator/sweep/sweep_spec.h"

#include <cmath>
#include <filesystem>
#include <map>

#include "common/config_file/config_file.h"
#include "common/util/json.h"
#include "coordinator/synthetic/synthetic.h"
#include "model/config/train_config.h"

namespace sweep {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& origin, const std::string& field, const std::string& what) {
  throw SweepSpecError(origin + ": " + field + " " + what);
}

std::string shown(const json& v) { return util::brief(v, util::kQuoteChars); }

double number(const json& v, const std::string& origin, const std::string& field) {
  if (!v.is_number() || !std::isfinite(v.get<double>())) fail(origin, field, "must be a finite number, got " + shown(v));
  return v.get<double>();
}

int64_t integer(const json& v, const std::string& origin, const std::string& field, int64_t lo, int64_t hi) {
  const std::optional<int64_t> i = util::as_int64(v);
  if (!i || *i < lo || *i > hi)
    fail(origin, field, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + shown(v));
  return *i;
}

std::string text(const json& v, const std::string& origin, const std::string& field) {
  if (!v.is_string()) fail(origin, field, "must be a string, got " + shown(v));
  return v.get<std::string>();
}

const std::map<std::string, Distribution>& distributions() {
  static const std::map<std::string, Distribution> kByName = {
      {"constant", Distribution::kConstant},
      {"categorical", Distribution::kCategorical},
      {"int_uniform", Distribution::kIntUniform},
      {"uniform", Distribution::kUniform},
      {"log_uniform_values", Distribution::kLogUniformValues},
      {"q_uniform", Distribution::kQUniform},
      {"q_log_uniform_values", Distribution::kQLogUniformValues},
      {"normal", Distribution::kNormal},
      {"log_normal", Distribution::kLogNormal}};
  return kByName;
}

std::string distribution_list() {
  std::string out;
  for (const auto& [name, d] : distributions()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

Parameter parse_parameter(const std::string& path, const json& v, const std::string& origin) {
  const std::string field = "parameters." + path;
  Parameter p;
  p.path = path;
  for (const auto& [k, x] : v.items())
    if (k != "value" && k != "values" && k != "probabilities" && k != "distribution" && k != "min" && k != "max" &&
        k != "q" && k != "mu" && k != "sigma")
      fail(origin, field + "." + k, "is not a parameter key (value, values, probabilities, distribution, min, max, q, mu, sigma)");
  // W&B's inference when no distribution is named.
  if (v.contains("distribution")) {
    const std::string name = text(v["distribution"], origin, field + ".distribution");
    auto it = distributions().find(name);
    if (it == distributions().end())
      fail(origin, field + ".distribution", "\"" + util::cut(name, 40) + "\" is not one of " + distribution_list());
    p.distribution = it->second;
  } else if (v.contains("values")) {
    p.distribution = Distribution::kCategorical;
  } else if (v.contains("value")) {
    p.distribution = Distribution::kConstant;
  } else if (v.contains("min") && v.contains("max")) {
    p.distribution = v["min"].is_number_integer() && v["max"].is_number_integer() ? Distribution::kIntUniform : Distribution::kUniform;
  } else {
    fail(origin, field, "needs value, values, or min and max");
  }
  const auto need = [&](const char* key) -> const json& {
    if (!v.contains(key)) fail(origin, field, std::string("needs \"") + key + "\" for the " + distribution_name(p.distribution) + " distribution");
    return v[key];
  };
  switch (p.distribution) {
    case Distribution::kConstant:
      p.values = {need("value")};
      break;
    case Distribution::kCategorical: {
      const json& values = need("values");
      if (!values.is_array() || values.empty()) fail(origin, field + ".values", "must be a non-empty array, got " + shown(values));
      p.values.assign(values.begin(), values.end());
      if (v.contains("probabilities")) {
        const json& probs = v["probabilities"];
        if (!probs.is_array() || probs.size() != values.size())
          fail(origin, field + ".probabilities", "must be an array of " + std::to_string(values.size()) + " numbers, one per value");
        double sum = 0;
        for (size_t i = 0; i < probs.size(); ++i) {
          const double x = number(probs[i], origin, field + ".probabilities[" + std::to_string(i) + "]");
          if (x < 0) fail(origin, field + ".probabilities[" + std::to_string(i) + "]", "must not be negative");
          p.probabilities.push_back(x);
          sum += x;
        }
        if (std::abs(sum - 1) > 1e-6) fail(origin, field + ".probabilities", "must sum to 1, not " + std::to_string(sum));
      }
      break;
    }
    case Distribution::kIntUniform: {
      const int64_t lo = integer(need("min"), origin, field + ".min", -(int64_t{1} << 53), int64_t{1} << 53);
      const int64_t hi = integer(need("max"), origin, field + ".max", -(int64_t{1} << 53), int64_t{1} << 53);
      if (lo > hi) fail(origin, field, "is an empty range: min " + std::to_string(lo) + " > max " + std::to_string(hi));
      p.min = static_cast<double>(lo);
      p.max = static_cast<double>(hi);
      break;
    }
    case Distribution::kUniform:
    case Distribution::kLogUniformValues:
    case Distribution::kQUniform:
    case Distribution::kQLogUniformValues: {
      p.min = number(need("min"), origin, field + ".min");
      p.max = number(need("max"), origin, field + ".max");
      if (!(p.min < p.max)) fail(origin, field, "is an empty range: min " + shown(v["min"]) + " is not below max " + shown(v["max"]));
      const bool log = p.distribution == Distribution::kLogUniformValues || p.distribution == Distribution::kQLogUniformValues;
      if (log && p.min <= 0) fail(origin, field + ".min", "must be above 0 for " + std::string(distribution_name(p.distribution)));
      if (v.contains("q")) p.q = number(v["q"], origin, field + ".q");
      if (p.q <= 0) fail(origin, field + ".q", "must be above 0");
      break;
    }
    case Distribution::kNormal:
    case Distribution::kLogNormal:
      if (v.contains("mu")) p.mu = number(v["mu"], origin, field + ".mu");
      if (v.contains("sigma")) p.sigma = number(v["sigma"], origin, field + ".sigma");
      if (p.sigma <= 0) fail(origin, field + ".sigma", "must be above 0");
      break;
  }
  return p;
}

// W&B's nested form ({parameters: {...}} inside a parameter) continues the path.
void parse_parameters(const json& v, const std::string& prefix, const std::string& origin, std::vector<Parameter>& out) {
  const std::string field = prefix.empty() ? "parameters" : "parameters." + prefix;
  if (!v.is_object() || v.empty()) fail(origin, field, "must be a non-empty object of parameters, got " + shown(v));
  for (const auto& [k, x] : v.items()) {
    if (k.empty() || k.front() == '.' || k.back() == '.' || k.find("..") != std::string::npos)
      fail(origin, field, "has a malformed path \"" + util::cut(k, 60) + "\"");
    const std::string path = prefix.empty() ? k : prefix + "." + k;
    if (!x.is_object()) fail(origin, "parameters." + path, "must be an object such as {values: [...]}, got " + shown(x));
    if (x.contains("parameters")) {
      if (x.size() != 1) fail(origin, "parameters." + path, "holds nested parameters and other keys; give one or the other");
      parse_parameters(x["parameters"], path, origin, out);
      continue;
    }
    out.push_back(parse_parameter(path, x, origin));
    if (out.size() > kMaxParameters) fail(origin, "parameters", "has more than " + std::to_string(kMaxParameters));
  }
}

Metric parse_metric(const json& v, const std::string& origin) {
  if (!v.is_object()) fail(origin, "metric", "must be an object such as {name: val/loss, goal: minimize}, got " + shown(v));
  Metric m;
  for (const auto& [k, x] : v.items()) {
    if (k == "name") {
      m.name = text(x, origin, "metric.name");
    } else if (k == "goal") {
      const std::string goal = text(x, origin, "metric.goal");
      if (goal != "minimize" && goal != "maximize") fail(origin, "metric.goal", "must be minimize or maximize, got \"" + util::cut(goal, 40) + "\"");
      m.maximize = goal == "maximize";
    } else if (k == "target") {
      m.target = number(x, origin, "metric.target");
    } else if (k == "impute") {
      const std::string impute = text(x, origin, "metric.impute");
      if (impute == "worst") m.impute = Impute::kWorst;
      else if (impute == "best") m.impute = Impute::kBest;
      else if (impute == "latest") m.impute = Impute::kLatest;
      else fail(origin, "metric.impute", "must be latest, best or worst, got \"" + util::cut(impute, 40) + "\"");
    } else {
      fail(origin, "metric." + k, "is not a metric key (name, goal, target, impute)");
    }
  }
  if (m.name.empty()) fail(origin, "metric.name", "is missing: name the metric the trials log");
  return m;
}

EarlyTerminate parse_early_terminate(const json& v, const std::string& origin) {
  if (!v.is_object()) fail(origin, "early_terminate", "must be an object such as {type: asha, min_steps: 50}, got " + shown(v));
  EarlyTerminate e;
  e.enabled = true;
  const std::string type = text(v.value("type", json()), origin, "early_terminate.type");
  const auto field = [](const std::string& k) { return "early_terminate." + k; };
  const int64_t kMaxSteps = int64_t{1} << 40;
  if (type == "asha") {
    for (const auto& [k, x] : v.items()) {
      if (k == "type") continue;
      if (k == "min_steps") e.min_steps = integer(x, origin, field(k), 1, kMaxSteps);
      else if (k == "eta") e.eta = static_cast<int>(integer(x, origin, field(k), 2, 100));
      else if (k == "max_steps") e.max_steps = integer(x, origin, field(k), 0, kMaxSteps);
      else fail(origin, field(k), "is not an asha key (min_steps, eta, max_steps)");
    }
    if (!e.min_steps) fail(origin, "early_terminate.min_steps", "is missing: the first rung's step");
  } else if (type == "hyperband") {
    int64_t min_iter = 0, max_iter = 0, s = 0;
    for (const auto& [k, x] : v.items()) {
      if (k == "type" || k == "strict") continue;
      if (k == "min_iter") min_iter = integer(x, origin, field(k), 1, kMaxSteps);
      else if (k == "max_iter") max_iter = integer(x, origin, field(k), 1, kMaxSteps);
      else if (k == "s") s = integer(x, origin, field(k), 1, 30);
      else if (k == "eta") e.eta = static_cast<int>(integer(x, origin, field(k), 2, 100));
      else fail(origin, field(k), "is not a hyperband key (min_iter, max_iter, s, eta, strict)");
    }
    if (min_iter) {
      e.min_steps = min_iter;
    } else if (max_iter && s) {
      e.min_steps = std::max<int64_t>(1, static_cast<int64_t>(max_iter / std::pow(e.eta, s)));
      e.max_steps = max_iter;
    } else {
      fail(origin, "early_terminate", "of type hyperband needs min_iter, or max_iter and s");
    }
  } else {
    fail(origin, "early_terminate.type", "must be asha or hyperband, got " + shown(v.value("type", json())));
  }
  if (e.max_steps && e.max_steps < e.min_steps) fail(origin, "early_terminate.max_steps", "is below the first rung's step");
  return e;
}

// The base job: an object, or a file; a file without "kind" is a training config.
json read_job(const json& v, const std::string& origin, const std::string& base_dir) {
  json job = v;
  if (v.is_string()) {
    const std::filesystem::path file = std::filesystem::path(base_dir) / v.get<std::string>();
    job = config_file::read(file.string());
    if (job.is_object() && !job.contains("kind")) job = {{"kind", "train"}, {"config", std::move(job)}};
  }
  if (!job.is_object()) fail(origin, "job", "must be a job (an object with \"kind\") or a file's path, got " + shown(v));
  if (!job.contains("kind") || !job["kind"].is_string())
    fail(origin, "job.kind", "is missing: a sweep runs train jobs (or synthetic ones)");
  const std::string kind = job["kind"].get<std::string>();
  if (kind != "train" && kind != "synthetic" && kind != "command")
    fail(origin, "job.kind", "is \"" + util::cut(kind, 40) + "\"; a sweep runs train, synthetic or command jobs");
  if (kind == "command") {
    if (!job.contains("argv") || !job["argv"].is_array() || job["argv"].empty())
      fail(origin, "job.argv", "must name the program a trial runs");
    // W&B's default command ends with the arguments.
    bool has_args = false;
    for (const json& a : job["argv"])
      has_args = has_args || a == kArgsMacro || a == kArgsNoHyphensMacro || a == kArgsJsonMacro;
    if (!has_args) job["argv"].push_back(kArgsMacro);
    return job;
  }
  if (!job.contains("config")) job["config"] = json::object();
  if (!job["config"].is_object()) fail(origin, "job.config", "must be an object, got " + shown(job["config"]));
  return job;
}

// W&B's program and command as a command job's argv, the arguments left as macros for each
// trial. The program's path becomes absolute (from the sweep file's folder), since a worker
// runs it from a folder of its own.
json program_argv(const std::string& program, std::vector<std::string> command, const std::string& base_dir, const std::string& origin) {
  if (program.empty()) fail(origin, "program", "is empty");
  namespace fs = std::filesystem;
  const std::string path = fs::path(program).is_absolute() ? program : (fs::absolute(base_dir) / program).lexically_normal().string();
  const bool python = program.size() > 3 && program.compare(program.size() - 3, 3, ".py") == 0;
  if (command.empty()) command = {"${env}", "${interpreter}", "${program}", kArgsMacro};  // W&B's default
  json argv = json::array();
  for (const std::string& word : command) {
    if (word == "${env}") continue;  // W&B's `/usr/bin/env`: the worker gives the environment
    if (word == "${interpreter}") {
      if (python) argv.push_back("python3");
    } else if (word == "${program}") {
      argv.push_back(path);
    } else if (word == kArgsMacro || word == kArgsNoHyphensMacro || word == kArgsJsonMacro || word.find("${") == std::string::npos) {
      argv.push_back(word);
    } else {
      fail(origin, "command", "has " + util::cut(word, 40) + ", which i3lab does not know (${env}, ${interpreter}, ${program}, ${args}, "
                              "${args_no_hyphens}, ${args_json})");
    }
  }
  if (argv.empty()) fail(origin, "command", "names no program");
  return argv;
}

// A value the parameter can take, to check its path and type against the job's config.
json sample_value(const Parameter& p) {
  if (!p.values.empty()) return p.values.front();
  if (p.distribution == Distribution::kIntUniform) return static_cast<int64_t>(p.min);
  if (p.distribution == Distribution::kNormal) return p.mu;
  if (p.distribution == Distribution::kLogNormal) return std::exp(p.mu);
  const bool quantized = p.distribution == Distribution::kQUniform || p.distribution == Distribution::kQLogUniformValues;
  if (quantized && std::floor(p.q) == p.q) return static_cast<int64_t>(std::llround(std::round(p.min / p.q) * p.q));  // as sampler.h
  return p.min;
}

// Parameters must be settings of the job's config, checked by the same parser that will read
// each trial's config.
void check_paths(const SweepSpec& spec, const std::string& origin) {
  if (spec.job["kind"] == "command") return;  // a program takes what it takes
  if (spec.job["kind"] == "synthetic") {
    for (const Parameter& p : spec.parameters) {
      if (!synthetic::default_config().contains(p.path))
        fail(origin, "parameters." + p.path, "is not a key of the synthetic job's config (x, y, lr, n, choice, steps, ...)");
      json config = spec.job["config"];
      config[p.path] = sample_value(p);
      try {
        synthetic::parse_config(config, "job.config");
      } catch (const std::invalid_argument& e) {
        fail(origin, "parameters." + p.path, std::string("does not fit the synthetic job's config: ") + e.what());
      }
    }
    return;
  }
  const json& config = spec.job["config"];
  try {
    i3::TrainConfig::parse(config, "job.config");
  } catch (const std::invalid_argument& e) {
    throw SweepSpecError(origin + ": " + e.what());
  }
  for (const Parameter& p : spec.parameters) {
    try {
      i3::TrainConfig::parse(config, "job.config", {p.path + "=" + util::dump_json(sample_value(p))});
    } catch (const std::invalid_argument& e) {
      fail(origin, "parameters." + p.path, std::string("does not fit the training config: ") + e.what());
    }
  }
}

}  // namespace

const char* method_name(Method m) {
  switch (m) {
    case Method::kGrid: return "grid";
    case Method::kRandom: return "random";
    case Method::kBayes: return "bayes";
  }
  return "?";
}

const char* distribution_name(Distribution d) {
  for (const auto& [name, each] : distributions())
    if (each == d) return name.c_str();
  return "?";
}

SweepSpec parse_sweep_spec(const json& j, const std::string& origin, const std::string& base_dir) {
  if (!j.is_object()) fail(origin, "the sweep", "must be an object of keys (method, metric, parameters, job, ...)");
  SweepSpec spec;
  bool have_method = false, have_parameters = false, have_job = false;
  std::string program;
  std::vector<std::string> command;
  for (const auto& [k, v] : j.items()) {
    if (k == "method") {
      const std::string m = text(v, origin, "method");
      if (m == "grid") spec.method = Method::kGrid;
      else if (m == "random") spec.method = Method::kRandom;
      else if (m == "bayes") spec.method = Method::kBayes;
      else fail(origin, "method", "must be grid, random or bayes, got \"" + util::cut(m, 40) + "\"");
      have_method = true;
    } else if (k == "metric") {
      spec.metric = parse_metric(v, origin);
    } else if (k == "parameters") {
      parse_parameters(v, "", origin, spec.parameters);
      have_parameters = true;
    } else if (k == "early_terminate") {
      spec.early_terminate = parse_early_terminate(v, origin);
    } else if (k == "run_cap") {
      spec.run_cap = integer(v, origin, "run_cap", 0, 1000000);
    } else if (k == "max_concurrent") {
      spec.max_concurrent = static_cast<int>(integer(v, origin, "max_concurrent", 0, 100000));
    } else if (k == "seed") {
      spec.seed = static_cast<uint64_t>(integer(v, origin, "seed", 0, INT64_MAX));
    } else if (k == "job") {
      spec.job = read_job(v, origin, base_dir);
      have_job = true;
    } else if (k == "name") {
      spec.name = text(v, origin, "name");
    } else if (k == "description") {
      spec.description = text(v, origin, "description");
    } else if (k == "project") {
      spec.project = text(v, origin, "project");
    } else if (k == "program") {
      program = text(v, origin, "program");
    } else if (k == "command") {
      if (!v.is_array() || v.empty()) fail(origin, "command", "must be a non-empty list such as [${env}, ${interpreter}, ${program}, ${args}]");
      for (size_t i = 0; i < v.size(); ++i) command.push_back(text(v[i], origin, "command[" + std::to_string(i) + "]"));
    } else if (k == "entity") {
      spec.notes.push_back(origin + ": entity is W&B's and is not used: the trials track into this coordinator's database");
    } else {
      fail(origin, k, "is not a sweep key (method, metric, parameters, early_terminate, run_cap, job, max_concurrent, seed, "
                      "name, description, project)");
    }
  }
  if (!have_method) fail(origin, "method", "is missing: grid, random or bayes");
  if (!have_parameters) fail(origin, "parameters", "is missing: the settings to search");
  if (have_job && (!program.empty() || !command.empty()))
    fail(origin, "program", "and job are both given: a trial runs one or the other");
  if (!have_job && !program.empty()) {
    spec.job = {{"kind", "command"}, {"argv", program_argv(program, command, base_dir, origin)}};
    have_job = true;
  } else if (!command.empty()) {
    fail(origin, "command", "needs program (W&B's form), or give a job");
  }
  if (!have_job) fail(origin, "job", "is missing: the job each trial runs (a train job, a training config's file, or W&B's program)");
  if (spec.method == Method::kBayes && spec.metric.name.empty()) fail(origin, "metric", "is needed by method bayes");
  if (spec.early_terminate.enabled && spec.metric.name.empty()) fail(origin, "metric", "is needed by early_terminate");
  if (spec.method == Method::kGrid) grid_size(spec);  // every parameter a finite set, and not too many
  check_paths(spec, origin);
  return spec;
}

SweepSpec read_sweep_file(const std::string& path) {
  const std::filesystem::path p(path);
  return parse_sweep_spec(config_file::read(path), path, p.has_parent_path() ? p.parent_path().string() : ".");
}

uint64_t grid_size(const SweepSpec& spec) {
  uint64_t n = 1;
  for (const Parameter& p : spec.parameters) {
    uint64_t k = 0;
    if (p.distribution == Distribution::kConstant || p.distribution == Distribution::kCategorical) k = p.values.size();
    else if (p.distribution == Distribution::kIntUniform) k = static_cast<uint64_t>(p.max - p.min) + 1;
    else
      throw SweepSpecError("parameters." + p.path + ": a " + distribution_name(p.distribution) +
                           " distribution has no grid; give values, or an int_uniform range");
    if (k > kMaxGridSize || n * k > kMaxGridSize)
      throw SweepSpecError("the grid has more than " + std::to_string(kMaxGridSize) + " points; use method random or bayes");
    n *= k;
  }
  return n;
}

json to_json(const SweepSpec& spec) {
  json params = json::object();
  for (const Parameter& p : spec.parameters) {
    json v = {{"distribution", distribution_name(p.distribution)}};
    if (p.distribution == Distribution::kConstant) v["value"] = p.values.front();
    else if (p.distribution == Distribution::kCategorical) v["values"] = p.values;
    else if (p.distribution == Distribution::kNormal || p.distribution == Distribution::kLogNormal) v["mu"] = p.mu, v["sigma"] = p.sigma;
    else if (p.distribution == Distribution::kIntUniform) v["min"] = static_cast<int64_t>(p.min), v["max"] = static_cast<int64_t>(p.max);
    else v["min"] = p.min, v["max"] = p.max;
    if (!p.probabilities.empty()) v["probabilities"] = p.probabilities;
    if (p.distribution == Distribution::kQUniform || p.distribution == Distribution::kQLogUniformValues) v["q"] = p.q;
    params[p.path] = v;
  }
  json out = {{"method", method_name(spec.method)}, {"parameters", params}, {"job", spec.job},
              {"run_cap", spec.run_cap}, {"max_concurrent", spec.max_concurrent}, {"seed", spec.seed}};
  if (!spec.metric.name.empty()) {
    out["metric"] = {{"name", spec.metric.name}, {"goal", spec.metric.maximize ? "maximize" : "minimize"},
                     {"impute", spec.metric.impute == Impute::kWorst ? "worst" : spec.metric.impute == Impute::kBest ? "best" : "latest"}};
    if (spec.metric.target) out["metric"]["target"] = *spec.metric.target;
  }
  if (spec.early_terminate.enabled)
    out["early_terminate"] = {{"type", "asha"}, {"min_steps", spec.early_terminate.min_steps}, {"eta", spec.early_terminate.eta},
                              {"max_steps", spec.early_terminate.max_steps}};
  for (const char* k : {"name", "description", "project"}) {
    const std::string& v = k == std::string("name") ? spec.name : k == std::string("description") ? spec.description : spec.project;
    if (!v.empty()) out[k] = v;
  }
  return out;
}

}  // namespace sweep
