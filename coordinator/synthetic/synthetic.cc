#include "coordinator/synthetic/synthetic.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <thread>

#include "common/util/json.h"
#include "tracker/run/run.h"

namespace synthetic {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& origin, const std::string& key, const std::string& what) {
  throw std::invalid_argument(origin + ": " + key + " " + what);
}

double number(const json& v, const std::string& origin, const std::string& key) {
  if (!v.is_number() || !std::isfinite(v.get<double>())) fail(origin, key, "must be a finite number, got " + util::brief(v, util::kQuoteChars));
  return v.get<double>();
}

int64_t integer(const json& v, const std::string& origin, const std::string& key, int64_t lo, int64_t hi) {
  const std::optional<int64_t> i = util::as_int64(v);
  if (!i || *i < lo || *i > hi)
    fail(origin, key, "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + util::brief(v, util::kQuoteChars));
  return *i;
}

std::string text(const json& v, const std::string& origin, const std::string& key) {
  if (!v.is_string()) fail(origin, key, "must be a string, got " + util::brief(v, util::kQuoteChars));
  return v.get<std::string>();
}

void set_key(Config& c, const std::string& k, const json& v, const std::string& origin) {
  if (k == "x") c.x = number(v, origin, k);
  else if (k == "y") c.y = number(v, origin, k);
  else if (k == "lr") {
    c.lr = number(v, origin, k);
    if (c.lr <= 0) fail(origin, k, "must be above 0");
  } else if (k == "n") c.n = integer(v, origin, k, -1000000, 1000000);
  else if (k == "choice") c.choice = text(v, origin, k);
  else if (k == "steps") c.steps = integer(v, origin, k, 1, 100000000);
  else if (k == "step_ms") {
    c.step_ms = number(v, origin, k);
    if (c.step_ms < 0 || c.step_ms > 60000) fail(origin, k, "must be in [0, 60000]");
  } else if (k == "noise") {
    c.noise = number(v, origin, k);
    if (c.noise < 0) fail(origin, k, "must not be negative");
  } else if (k == "seed") c.seed = integer(v, origin, k, 0, INT64_MAX);
  else if (k == "fail_if_exists") c.fail_if_exists = text(v, origin, k);
  else if (k == "project") c.project = text(v, origin, k);
  else if (k == "name") c.name = text(v, origin, k);
  else if (k == "group") c.group = text(v, origin, k);
  else fail(origin, k, "is not a synthetic job key (x, y, lr, n, choice, steps, step_ms, noise, seed, fail_if_exists, project, name, group)");
}

}  // namespace

Config parse_config(const json& j, const std::string& origin, const std::vector<std::string>& overrides) {
  if (!j.is_object()) throw std::invalid_argument(origin + ": a synthetic job's config must be an object, got " + util::brief(j, util::kQuoteChars));
  Config c;
  for (const auto& [k, v] : j.items()) set_key(c, k, v, origin);
  for (const std::string& o : overrides) {
    const size_t eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument("--set " + util::cut(o, 60) + ": give key=value");
    const std::string value = o.substr(eq + 1);
    set_key(c, o.substr(0, eq), util::try_parse_json(value).value_or(json(value)), "--set");
  }
  return c;
}

json to_json(const Config& c) {
  return {{"x", c.x}, {"y", c.y}, {"lr", c.lr}, {"n", c.n}, {"choice", c.choice}, {"steps", c.steps},
          {"step_ms", c.step_ms}, {"noise", c.noise}, {"seed", c.seed}, {"fail_if_exists", c.fail_if_exists},
          {"project", c.project}, {"name", c.name}, {"group", c.group}};
}

const json& default_config() {
  static const json kDefaults = to_json(Config{});
  return kDefaults;
}

double objective(const Config& c, int64_t step) {
  const double choice = c.choice == "a" ? 0 : c.choice == "b" ? 0.1 : 0.2;
  const double lr = std::log10(c.lr) + 3, n = static_cast<double>(c.n - 4);
  return (c.x - 0.3) * (c.x - 0.3) + (c.y + 0.2) * (c.y + 0.2) + 0.1 * lr * lr + 0.01 * n * n + choice +
         1 / std::sqrt(static_cast<double>(std::max<int64_t>(step, 1)));
}

Result run(const Config& c, const std::string& db_path, const std::atomic<bool>& stop) {
  tracker::Store store(db_path);
  tracker::RunSpec spec;
  spec.project = c.project;
  spec.name = c.name;
  spec.group = c.group;
  spec.config = to_json(c);
  tracker::Run run = tracker::Run::create(store, spec);
  run.define_metric("loss", tracker::Goal::kMinimize);
  Result r;
  r.run_id = run.id();
  std::mt19937_64 rng(static_cast<uint64_t>(c.seed));
  std::normal_distribution<double> normal(0, 1);
  const auto step_time = std::chrono::duration<double, std::milli>(c.step_ms);
  auto next = std::chrono::steady_clock::now();
  for (int64_t step = 1; step <= c.steps; ++step) {
    if (step == 1 && !c.fail_if_exists.empty() && std::filesystem::exists(c.fail_if_exists)) {
      run.finish("failed");
      throw std::runtime_error("failing on purpose: " + c.fail_if_exists + " exists (fail_if_exists)");
    }
    next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(step_time);
    std::this_thread::sleep_until(next);
    r.step = step;
    r.loss = objective(c, step) + (c.noise > 0 ? c.noise * normal(rng) : 0);
    run.log(step, {{"loss", r.loss}});
    if (stop.load()) break;
  }
  r.status = r.step < c.steps ? "stopped" : "finished";
  run.finish(r.status);
  return r;
}

}  // namespace synthetic
